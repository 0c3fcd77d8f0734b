"""Writes that never leave a half-written file or folder behind, and bounded reads of untrusted files."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.errors import UnreadableFileError


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_regular(path: str | Path, limit: int, kind: str) -> bytes:
    """The bytes of the regular file at ``path`` (links followed), at most ``limit`` of them.

    A FIFO, a device, a socket or a folder is refused before it is read: the file is opened with
    ``O_NONBLOCK`` (a FIFO without a writer never blocks) and checked with ``fstat`` on the open file, so
    it cannot be swapped in between. ``kind`` names the file in the messages ("sidecar", "torrent"...).

    Raises:
        UnreadableFileError: not a regular file, or larger than ``limit`` (also if it grows while read).
        OSError: the file cannot be opened or read (``FileNotFoundError`` where it does not exist).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    _check_regular(os.stat(path).st_mode, kind)  # no open() of devices at all
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        _check_regular(st.st_mode, kind)
        if st.st_size > limit:
            raise UnreadableFileError(f"the {kind} is larger than {_size(limit)} ({st.st_size:,} bytes)")
        chunks, left = [], limit + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    if left <= 0:
        raise UnreadableFileError(f"the {kind} is larger than {_size(limit)} (it grew while being read)")
    return b"".join(chunks)


def _check_regular(mode: int, kind: str) -> None:
    if not stat.S_ISREG(mode):
        what = ("a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "not a file")
        raise UnreadableFileError(f"the {kind} is not a regular file but {what}")


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


@contextlib.contextmanager
def staged_dir(target: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside ``target``; on success it replaces ``target``, on failure it is removed.

    The swap is two renames on the same filesystem, so a reader sees the old tree or the new one,
    and a failed or interrupted build leaves the previous ``target`` untouched.
    """
    target = Path(target).resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-new-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        os.replace(target, old / "tree")
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass
class Stage:
    """A folder being rebuilt: new and changed files go to ``dir``; unchanged live files are ``keep``-ed.

    ``target`` is the live folder when it is updated in place, None when ``dir`` replaces it whole.
    """

    dir: Path
    target: Path | None = None
    kept: set[str] = field(default_factory=set)

    def keep(self, rel: str) -> None:
        """Keep the live file at ``rel`` (a POSIX path relative to the folder) as it is."""
        self.kept.add(rel)


@contextlib.contextmanager
def staged_update(target: str | Path, state: str | Path | None = None) -> Iterator[Stage]:
    """Rebuild ``target`` so that a failed build changes nothing and a finished one changes only what differs.

    The build writes its new and changed files into a staging folder and names the live files it keeps.
    Nothing touches ``target`` until the build has finished. Then a journal in ``state`` records the
    update, the staged files are renamed into place, files of the old tree the build did not produce
    are deleted, and the journal becomes the record of the files ``target`` holds (which spares walking
    the tree next time). An update interrupted half-way is rolled forward by the next call. Without a
    ``state`` folder, or where ``target`` does not exist yet, the staging folder replaces ``target``
    whole (:func:`staged_dir`). One build at a time per ``target``.
    """
    target = Path(target).resolve()
    if state is None or not target.is_dir():
        if state is not None:
            Path(state, "files.json").unlink(missing_ok=True)
        with staged_dir(target) as staging:
            yield Stage(staging)
        return
    state = Path(state)
    journal, record = state / "journal.json", state / "files.json"
    recover(target, state)
    stage = Stage(Path(tempfile.mkdtemp(prefix=f".{target.name}-new-", dir=target.parent)), target)
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage.dir, ignore_errors=True)
        raise
    previous = _read_record(record)
    files = stage.kept | set(_files(stage.dir))
    delete = sorted((set(_files(target)) if previous is None else previous) - files)
    state.mkdir(parents=True, exist_ok=True)
    record.unlink(missing_ok=True)  # stale from the moment the tree starts to change
    atomic_write_bytes(journal, json.dumps({"staging": str(stage.dir), "delete": delete,
                                            "files": sorted(files)}).encode())
    _apply(target, stage.dir, delete)
    os.replace(journal, record)


def recover(target: Path, state: Path) -> None:
    """Finish an in-place update of ``target`` that was interrupted; remove staging folders of dead builds."""
    journal = state / "journal.json"
    if journal.exists():
        pending = json.loads(journal.read_text())
        _apply(target, Path(pending["staging"]), pending["delete"])
        os.replace(journal, state / "files.json")
    for prefix in (f".{target.name}-new-", f".{target.name}-old-"):
        for orphan in target.parent.glob(prefix + "*"):
            shutil.rmtree(orphan, ignore_errors=True)


def _read_record(record: Path) -> set[str] | None:
    """The files the target held after the last update, or None where unknown (then the tree is walked)."""
    try:
        return set(json.loads(record.read_text())["files"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _files(root: Path) -> Iterator[str]:
    """Every file below ``root`` as a POSIX path relative to it."""
    for folder, _, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in files:
            yield prefix + name


def _apply(target: Path, staging: Path, delete: list[str]) -> None:
    """Rename every staged file into ``target``, delete the files in ``delete``, then drop ``staging``."""
    made: set[str] = set()
    for rel in _files(staging) if staging.is_dir() else ():
        dst = target / rel
        if dst.parent.as_posix() not in made:
            _make_folder(target, dst.parent)
            made.add(dst.parent.as_posix())
        if dst.is_dir() and not dst.is_symlink():
            shutil.rmtree(dst)  # a folder where the new build has a file
        os.replace(staging / rel, dst)
    for rel in delete:
        path = target / rel
        with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
            path.unlink()  # already gone, or the new build made a folder there
        for folder in path.parents:  # drop folders the deletions emptied
            if folder == target or not folder.is_relative_to(target):
                break
            try:
                folder.rmdir()
            except OSError:
                break
    shutil.rmtree(staging, ignore_errors=True)


def _make_folder(target: Path, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        # A file where the new build has a folder: remove it, then make the folder.
        for parent in reversed([folder, *folder.parents]):
            if parent.is_relative_to(target) and parent != target and parent.is_file():
                parent.unlink()
        folder.mkdir(parents=True, exist_ok=True)
