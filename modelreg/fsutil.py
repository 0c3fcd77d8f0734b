"""Writes that never leave a half-written file or folder behind, and bounded reads of untrusted files.

A site folder is updated by :func:`staged_update`: it is a symbolic link to one complete version of the
tree, switched to the next version in one atomic rename (see there).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import fcntl
import marshal
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from itertools import filterfalse
from pathlib import Path
from typing import Any

from modelreg.errors import SiteSwitchError, UnreadableFileError
from modelreg.paths import path_problem

#: ``(st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns)``: what tells a file's version without reading it
#: (a write in place or a rename over it changes one of them; no program can set the change time back).
Identity = tuple[int, int, int, int, int]


def identity_of(st: os.stat_result) -> Identity:
    """A file's :data:`Identity` from its ``stat``."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def atomic_write_bytes(path: str | Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``: a reader
    sees the old file or the new one, never a part. With ``durable`` (the default) the data is fsynced
    before the rename, so after a crash the file is whole too; caches that may be lost skip that.

    Raises:
        OSError: the folder or the file cannot be written (the temporary file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to the file descriptor ``fd`` (``os.write`` may write less than asked).

    Raises:
        OSError: the write fails.
    """
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


#: ``os.open`` flags for reading a file that may not be what its name says: a FIFO without a writer does
#: not block the open, a terminal does not become this process's, and the descriptor is not inherited.
READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)


def read_regular(path: str | Path, limit: int, kind: str) -> bytes:
    """The bytes of the regular file at ``path`` (links followed), at most ``limit`` of them.

    A FIFO, a device, a socket or a folder is refused before it is read: the file is opened with
    ``O_NONBLOCK`` (a FIFO without a writer never blocks) and checked with ``fstat`` on the open file, so
    it cannot be swapped in between. ``kind`` names the file in the messages ("sidecar", "torrent"...).

    Raises:
        UnreadableFileError: not a regular file, or larger than ``limit`` (also if it grows while read).
        OSError: the file cannot be opened or read (``FileNotFoundError`` where it does not exist).
    """
    _check_regular(os.stat(path).st_mode, kind)  # no open() of devices at all
    fd = os.open(path, READ_FLAGS)
    try:
        st = os.fstat(fd)
        _check_regular(st.st_mode, kind)
        if st.st_size > limit:
            raise UnreadableFileError(f"the {kind} is larger than {_size(limit)} ({st.st_size:,} bytes)")
        # the first read asks for the size the stat told and one byte more: a file that keeps its size is
        # read in one call, into a buffer of its size (not a megabyte's), and the next call finds its end
        chunks, left, ask = [], limit + 1, min(limit + 1, st.st_size + 1)
        while left > 0:
            chunk = os.read(fd, ask)
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
            ask = min(left, 1 << 16)
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


@dataclass
class Stage:
    """A folder being rebuilt: new and changed files go to ``dir``; unchanged live files are ``keep``-ed.

    ``target`` is the live tree the kept files are taken from (None on a first build).
    """

    dir: Path
    target: Path | None = None
    kept: set[str] = field(default_factory=set)

    def keep(self, rel: str) -> None:
        """Keep the live file at ``rel`` (a POSIX path relative to the folder) as it is."""
        self.kept.add(rel)


def versions_dir(target: Path) -> Path:
    """Where the versions of the site folder ``target`` live: ``.<name>-versions/`` beside it."""
    return target.parent / f".{target.name}-versions"


def switch_path(path: str | Path) -> Path:
    """The absolute path of the site link for ``path``: its parent resolved, its name kept.

    A ``path`` that is a link to something other than one of its versions (``site -> /var/www/html``) is
    followed, as before: then that folder becomes the link.
    """
    path = Path(os.path.abspath(path))
    for _ in range(40):
        if not path.is_symlink():
            break
        target = os.readlink(path)
        if Path(target).parent == Path(versions_dir(path).name):
            break
        path = Path(os.path.abspath(path.parent / target))
    return path.parent.resolve() / path.name


@contextlib.contextmanager
def staged_update(target: str | Path, state: str | Path | None = None) -> Iterator[Stage]:
    """Rebuild the site folder ``target`` so that a reader sees the old tree or the new one, nothing between.

    ``target`` is a symbolic link to ``.<name>-versions/<id>/``, one complete version of the tree. The build
    writes new and changed files into a staging folder and names the live files it keeps. Once it has finished,
    the next version is assembled from them: the version readers left at the last switch (the one before the
    live one) is renamed to a new id and brought up to date in place (staged files moved in, kept files
    hard-linked from the live version where they are not already the same file, others deleted), or, where there
    is none or it would have half as many paths replaced as kept files linked, or more (a build that changed
    most files, and the one after it), the staging folder itself becomes it, with the kept files linked. Then
    one ``rename`` of a new link over ``target`` switches readers to it. A failed or interrupted build never
    touches the live version; the previous one is kept and older ones are deleted (in the background:
    :func:`_collect`). ``state`` (a folder, optional) keeps a record of each version: its files, and the version
    it was made from with the paths that build changed. They spare walking a tree to update it, and where the
    recycled version is the one the live one was made from (as it is after every build that switched), looking
    at any file that neither that build nor this one changed. A damaged or missing record only makes the update
    slower. A real folder at ``target`` (from an older modelreg, or made by hand) is switched to the link in one
    exchange too, and becomes the previous version. One build at a time per ``target``: another one fails.

    Raises:
        SiteSwitchError: another build of ``target`` runs, or ``target`` is a file.
    """
    target = switch_path(target)
    if target.name in ("", "..", "."):
        raise SiteSwitchError(f"{target}: the site folder needs a name of its own")
    versions = versions_dir(target)
    versions.mkdir(parents=True, exist_ok=True)
    state = Path(state) if state is not None else None
    with _locked(versions):
        current = _current(target, versions)
        stage = Stage(Path(tempfile.mkdtemp(prefix=".new-", dir=versions)), current)
        try:
            yield stage
        except BaseException:
            shutil.rmtree(stage.dir, ignore_errors=True)
            raise
        new = _assemble(versions, current, stage, state)
        previous = _switch(target, versions, new)
        _collect(target, versions, {new.name, previous.name if previous else ""}, state)


@contextlib.contextmanager
def _locked(versions: Path) -> Iterator[None]:
    fd = os.open(versions / ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SiteSwitchError(f"{versions}: another build of this site is running") from None
        yield
    finally:
        os.close(fd)  # also releases the lock; the kernel does it for a killed build


def _current(target: Path, versions: Path) -> Path | None:
    """The live tree: the version ``target`` links to, a real folder at ``target``, or None."""
    if target.is_symlink():
        live = versions / Path(os.readlink(target)).name
        return live if live.is_dir() else None
    if target.is_dir():
        return target
    if target.exists():
        raise SiteSwitchError(f"{target}: is a file, not a site folder")
    return None


def _assemble(versions: Path, current: Path | None, stage: Stage, state: Path | None) -> Path:
    """The next version, complete: a recycled old version brought up to date, or the staging folder.

    A version's record (:class:`_Record`) names the version it was made from and the paths where the two
    may differ: the files its build staged or dropped. Where the recycled version and the live one are
    linked so (the live one was made from it, or it from the live one, as after a build killed before its
    switch), every other path is the very same file in both: only the paths changed by that build and by
    this one are touched, and the rest costs a few set operations at C speed over the live record's paths
    (to find the live files not kept). Without such a link the recycled version's files are listed (from
    its record, or by walking it) and each kept file is compared with the live one.
    """
    staged = set(_files(stage.dir))
    kept = stage.kept
    live = _read_record(state, current.name) if current is not None and current.parent == versions else None
    paths: list[str] = []
    dropped: set[str] = set()  # the live files the new version has not
    extra: set[str] = set()  # kept files the live record lacks (it is damaged): linked with a check
    appended: set[str] = set()  # the new version's files the live one has not
    if live is not None:
        paths = live.files()
        known = set(paths)
        if len(known) != len(paths):  # a damaged record: its paths once each
            paths = list(dict.fromkeys(paths))
        notkept = known.difference(kept)  # the staged files it has, and those dropped
        dropped = notkept.difference(staged)
        # the kept paths it lacks, if any: counted, not looked up (one pass over the live files is enough)
        if len(kept) > len(known) - len(notkept):
            extra = kept.difference(known).difference(staged)
        appended = {rel for rel in staged if rel not in known} | extra
    base = _recyclable(versions, current, state)
    new = versions / _new_id()
    diff: list[str] | None = None  # the paths where the recycled version and the live one may differ
    held = None
    if base is not None:
        # a version without its record may be half updated (records are dropped before a version changes)
        held = _read_record(state, base.name, files=False)
        if held is not None and live is not None and current is not None:
            if live.base == base.name:  # the live version was made from it
                diff = live.changed
            elif held.base == current.name:  # it was made from the live one (a build killed before its switch)
                diff = held.changed
        # brought up to date, it would have half as many paths replaced as the new version has files linked
        # from the live one, or more (during a build that changed most files, and the one after it): the
        # staging folder becomes the new version instead, and the old one is deleted in the background
        # (_collect), not replaced file by file inside the build (a replaced file is freed: it costs the
        # disk more than a link)
        touched = len(staged) + (len(diff) + len(dropped) if diff is not None else len(paths) or len(kept))
        if touched >= FRESH_FROM and 2 * touched > len(kept.difference(staged)):
            base, diff = None, None
    if base is None:
        os.rename(stage.dir, new)
    else:
        if diff is None and held is not None:
            held = _read_record(state, base.name)  # its files are listed by its record, not by a walk
        _drop_record(state, base.name)
        os.rename(base, new)
        if diff is not None:
            gone: Iterable[str] = filterfalse(kept.__contains__, filterfalse(staged.__contains__, {*diff, *dropped}))
        else:
            gone = filterfalse(staged.__contains__, filterfalse(kept.__contains__, _files(new) if held is None
                                                                else held.files()))
        for rel in sorted(gone, reverse=True):
            if path_problem(rel.split("/")) is None:  # the record is read from disk: never a path out of it
                _remove(new, rel)
        for rel in sorted(staged):
            _place(stage.dir / rel, new, rel)
        shutil.rmtree(stage.dir, ignore_errors=True)
    if diff is not None:  # every other kept path is the live file already
        _link_kept(current, new, {rel for rel in diff if rel in kept and rel not in staged} | extra, fresh=False)
    else:
        _link_kept(current, new, kept.difference(staged), fresh=base is None)
    if live is None or current is None:  # the live files not kept are unknown: no link to the live version
        files = [*kept.union(staged)]
        _write_record(state, new.name, _Record("", _join(files), len(files), None))
    else:
        changed = [*staged, *dropped, *extra]
        if dropped or appended or len(paths) != live.count:
            files = [*filterfalse(dropped.__contains__, paths), *sorted(appended)]
            _write_record(state, new.name, _Record(current.name, _join(files), len(files), changed))
        else:  # the same files as the live version: its list, shared
            _write_record(state, new.name, replace(live, base=current.name, changed=changed), current.name)
    return new


#: A version is made afresh (:func:`_assemble`) only where recycling the old one would replace at least
#: this many paths: below, either way takes a moment, and the old version's folders are reused.
FRESH_FROM = 10_000


def _recyclable(versions: Path, current: Path | None, state: Path | None) -> Path | None:
    """The newest version no reader is on (one with a record of its files first), if any."""
    live = current.name if current is not None and current.parent == versions else None
    found = [p for p in versions.iterdir() if not p.name.startswith(".") and p.name != live and p.is_dir()
             and not p.is_symlink()]
    if not found:
        return None
    recorded = {p.name for p in found if state is not None and (state / f"{p.name}.files").exists()}
    return max(found, key=lambda p: (p.name in recorded, p.name))


def _link_kept(current: Path | None, new: Path, kept: set[str], fresh: bool) -> None:
    """Hard-link each of the ``kept`` files of the live tree into ``new``, unless it is that very file
    already (``fresh``: ``new`` has none of them)."""
    if current is None:
        return
    for rel in sorted(kept):
        src = os.path.join(current, rel)
        if not fresh:
            s = os.stat(src)
            try:
                d = os.lstat(os.path.join(new, rel))
                if (d.st_ino, d.st_dev) == (s.st_ino, s.st_dev):
                    continue
            except FileNotFoundError:
                pass
        _place(Path(src), new, rel, link=True)


def _place(src: Path, root: Path, rel: str, link: bool = False) -> None:
    """Move (or hard-link) ``src`` to ``root/rel``, replacing what is there, making folders as needed."""
    dst = os.path.join(root, rel)
    for _ in range(4):
        try:
            if link:
                try:
                    os.link(src, dst)
                except FileExistsError:
                    os.unlink(dst)
                    os.link(src, dst)
            else:
                os.replace(src, dst)
            return
        except (FileNotFoundError, NotADirectoryError):
            if not os.path.lexists(src):
                raise
            _make_folder(root, Path(dst).parent)  # missing, or a file where the new version has a folder
        except OSError:
            if not os.path.isdir(dst) or os.path.islink(dst):
                raise
            shutil.rmtree(dst)  # a folder where the new version has a file
    raise SiteSwitchError(f"{dst}: cannot be written")


def _make_folder(root: Path, folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        for parent in reversed([folder, *folder.parents]):  # a file where the new version has a folder
            if parent.is_relative_to(root) and parent != root and (parent.is_file() or parent.is_symlink()):
                parent.unlink()
        folder.mkdir(parents=True, exist_ok=True)


def _remove(root: Path, rel: str) -> None:
    """Delete ``root/rel`` and the folders that leaves empty."""
    path = root / rel
    with contextlib.suppress(FileNotFoundError, NotADirectoryError, IsADirectoryError):
        path.unlink()
    for folder in path.parents:
        if folder == root or not folder.is_relative_to(root):
            break
        try:
            folder.rmdir()
        except OSError:
            break


_RENAME_EXCHANGE = 2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux ``renameat2``); False where the system cannot."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    at_fdcwd = -100
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _switch(target: Path, versions: Path, new: Path) -> Path | None:
    """Point ``target`` at ``new`` in one rename; the version readers leave (None on a first build)."""
    before = versions / Path(os.readlink(target)).name if target.is_symlink() else None
    link = target.parent / f".{target.name}-link-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(link)
    os.symlink(f"{versions.name}/{new.name}", link)
    if target.is_dir() and not target.is_symlink():  # a real folder becomes the previous version
        before = versions / _new_id()
        if _exchange(link, target):
            os.rename(link, before)
            return before
        os.rename(target, before)  # without an exchange, readers miss the site for a moment
    os.replace(link, target)
    return before


def _collect(target: Path, versions: Path, keep: set[str], state: Path | None) -> None:
    """Delete every version but ``keep``, and what dead builds left (staging folders, links, records).

    Folders are renamed out of the way (``.trash-*``, which no build reads) and deleted by a process of
    their own that the build does not wait for: a version of a large site holds hundreds of thousands of
    files, and freeing them takes the disk minutes. One left half deleted (the process killed) is
    deleted again by the next build.
    """
    trash = []
    for path in versions.iterdir():
        if path.name in keep or path.name == ".lock":
            continue
        if not path.is_dir() or path.is_symlink():
            path.unlink()
        elif path.name.startswith(_TRASH):
            trash.append(path)
        else:
            gone = versions / f"{_TRASH}{path.name}"
            os.rename(path, gone)
            trash.append(gone)
    _delete_in_background(trash)
    for stray in target.parent.glob(f".{target.name}-link-*"):
        shutil.rmtree(stray, ignore_errors=True) if stray.is_dir() and not stray.is_symlink() else stray.unlink()
    if state is not None and state.is_dir():
        for record in state.iterdir():
            if record.name.partition(".")[0] not in keep:
                record.unlink(missing_ok=True)  # also the journal of the in-place updates before versions


#: The name prefix of the folders :func:`_collect` leaves to :func:`_delete_in_background`.
_TRASH = ".trash-"


def _delete_in_background(folders: list[Path]) -> Any:
    """Delete ``folders`` in a new process that outlives this one if need be (its own session, no
    descriptor of this one), not waited for; here and now where no such process can be started. The
    process (None: none was started), for a caller that waits.

    Each folder is deleted under a lock on it (``flock``): one that another process is deleting already
    (a build after a build whose folder of 400,000 files takes the disk minutes to free) is left to it,
    not deleted twice at once.
    """
    if not folders:
        return None
    import subprocess  # here: only a build with a version to delete needs it
    import sys

    try:
        return subprocess.Popen([sys.executable, "-c", _DELETE, *map(str, folders)], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                                close_fds=True)
    except OSError:
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)
        return None


#: What the process of :func:`_delete_in_background` runs.
_DELETE = """
import fcntl, os, shutil, sys
for path in sys.argv[1:]:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        continue
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # another process deletes it
        os.close(fd)
        continue
    shutil.rmtree(path, ignore_errors=True)
    os.close(fd)
"""


def _new_id() -> str:
    """A version's folder name: sortable by age, unique per process."""
    return f"{time.time_ns():020d}-{os.getpid()}"


#: The first item of a record: records of another layout (older modelreg's) are unknown, not misread.
_RECORD_LAYOUT = "modelreg-version-3"


@dataclass(frozen=True)
class _Record:
    """What the staged update keeps of a version: ``state/<id>.files``, and its list ``state/<id>.list``.

    ``blob`` (the list) is its ``count`` files, their paths joined by NUL (which no path holds) as
    file-system bytes: read, checked and written at C speed, never a Python loop over them, and a
    version with the same files as the one it was made from shares that one's list (a hard link: records
    are replaced, never written in place). ``base`` is the version it was made from ("" where unknown)
    and ``changed`` the paths where the two may differ (None: unknown).
    """

    base: str
    blob: bytes
    count: int
    changed: list[str] | None

    def files(self) -> list[str]:
        """The version's files, as relative POSIX paths."""
        return _split(self.blob) if self.count else []


def _join(paths: Iterable[str]) -> bytes:
    return "\0".join(paths).encode("utf-8", "surrogateescape")


def _split(blob: bytes) -> list[str]:
    return blob.decode("utf-8", "surrogateescape").split("\0")


def _read_record(state: Path | None, name: str, files: bool = True) -> _Record | None:
    """The record of the version ``name`` (without its list unless ``files``: ``blob`` is then empty), or
    None where unknown or damaged: its types, and the size and count of paths of its list, are checked;
    the paths themselves are checked where they are used."""
    if state is None:
        return None
    try:
        record = marshal.loads((state / f"{name}.files").read_bytes())
        if type(record) is not tuple or len(record) != 5 or record[0] != _RECORD_LAYOUT:
            return None
        _, base, count, size, changed = record
        if type(base) is not str or type(count) is not int or type(size) is not int \
                or (changed is not None and type(changed) is not bytes):
            return None
        blob = read_regular(state / f"{name}.list", size, "record") if files else b""
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if files and (len(blob) != size or count != (blob.count(b"\0") + 1 if blob else 0)):
        return None
    return _Record(base, blob, count, None if changed is None else _split(changed) if changed else [])


def _drop_record(state: Path | None, name: str) -> None:
    """Delete the record of the version ``name``: it is about to change."""
    if state is not None:
        (state / f"{name}.files").unlink(missing_ok=True)
        (state / f"{name}.list").unlink(missing_ok=True)


def _write_record(state: Path | None, name: str, record: _Record, same_list_as: str | None = None) -> None:
    """Write the record of the version ``name``; its list is a link to that of ``same_list_as`` where given
    (it is then the same).

    Not fsynced: a record lost in a crash only makes the next update walk the version's tree.
    """
    if state is None:
        return
    listed = state / f"{name}.list"
    listed.unlink(missing_ok=True)
    try:
        if same_list_as is None:
            raise FileNotFoundError
        os.link(state / f"{same_list_as}.list", listed)
    except OSError:
        atomic_write_bytes(listed, record.blob, durable=False)
    changed = None if record.changed is None else _join(record.changed)
    atomic_write_bytes(state / f"{name}.files",
                       marshal.dumps((_RECORD_LAYOUT, record.base, record.count, len(record.blob), changed)),
                       durable=False)


def _files(root: Path) -> Iterator[str]:
    """Every file below ``root`` as a POSIX path relative to it."""
    for folder, _, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in files:
            yield prefix + name


def in_threads(function: Callable[[str], object], items: list[str], threads: int = 8) -> list[object]:
    """``function`` of each of ``items``, in their order, called from ``threads`` threads (thread *k*
    takes items *k*, *k + threads*...): for calls that mostly wait for the disk, as listing folders of a
    cold page cache, many reads in flight instead of one. ``function`` must not raise; the threads have
    ended when this returns (:class:`Forked` refuses to fork beside threads).
    """
    import threading  # here: only its users need it

    results: list[object] = [None] * len(items)

    def run(first: int) -> None:
        for i in range(first, len(items), threads):
            results[i] = function(items[i])

    workers = [threading.Thread(target=run, args=(k,), daemon=True) for k in range(min(threads, len(items)))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


class ReadAhead:
    """Asks the kernel to read files before they are used (``posix_fadvise(WILLNEED)``, from a few
    threads), so that a cold page cache is filled with many reads in flight rather than one at a time.

    The files are taken in the order of ``paths`` (and of those :meth:`add` appends, with ``more``), at
    most ``lead`` of them ahead of the consumer, who tells its progress with :meth:`used`: what is read
    ahead is used soon, and is not evicted again before (a machine that reclaims idle page cache does so
    after a minute or so). Reading ahead is advice: a file that cannot be opened, or is not a regular
    file, is passed over, and the reader reads it as usual. The threads start with the ``with`` block
    and end with it.
    """

    def __init__(self, paths: Iterable[str] = (), lead: int = 1024, threads: int = 8, more: bool = False):
        import threading  # here: only its users need it

        self.paths = list(paths)
        self.lead = lead
        self.more = more
        self.done = 0
        self.stopped = False
        self.moved = threading.Condition()
        count = threads if more else min(threads, len(self.paths))
        if not hasattr(os, "posix_fadvise"):
            count = 0
        self.threads = [threading.Thread(target=self._run, args=(k, count), daemon=True,
                                         name=f"modelreg-readahead-{k}") for k in range(count)]

    def __enter__(self) -> ReadAhead:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.moved:
            self.stopped = True
            self.moved.notify_all()
        for thread in self.threads:
            thread.join()

    def add(self, paths: Iterable[str]) -> None:
        """Read these too, after the others (``more``)."""
        with self.moved:
            self.paths.extend(paths)
            self.moved.notify_all()

    def used(self, count: int) -> None:
        """The consumer has used the first ``count`` paths."""
        # a wake-up per quarter of the lead (at most 64 files) keeps the threads ahead
        if count - self.done >= min(64, max(1, self.lead // 4)) or count >= len(self.paths):
            with self.moved:
                self.done = count
                self.moved.notify_all()

    def _waits(self, i: int) -> bool:
        return not self.stopped and (i >= self.done + self.lead or (self.more and i >= len(self.paths)))

    def _run(self, i: int, step: int) -> None:
        while True:
            if self._waits(i):
                with self.moved:
                    while self._waits(i):
                        self.moved.wait()
            if self.stopped or i >= len(self.paths):
                return
            path, i = self.paths[i], i + step
            try:
                if not stat.S_ISREG(os.stat(path).st_mode):
                    continue  # no open() of a device or a FIFO, not even to advise
                fd = os.open(path, READ_FLAGS)
            except (OSError, ValueError):
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
            except OSError:
                pass
            finally:
                os.close(fd)


#: From this many paths on, :func:`stat_many` shares the stats with a forked child (below, a fork costs
#: more than it saves).
STAT_SPLIT = 20_000


def stat_many(paths: list[str]) -> list[Identity | int]:
    """The :data:`Identity` of each of ``paths`` (``stat``, links followed), or the ``errno`` of the error
    where it has none (``errno.ENOENT``: missing, or a dangling link).

    From :data:`STAT_SPLIT` paths on, a :class:`Forked` child stats the second half while this process
    stats the first: the stats of a registry of 100,000 models take a core for half a second, and a build
    has the machine's other core idle then. Where there is no child, or it fails, this process stats its
    half too.
    """
    if len(paths) < STAT_SPLIT:
        return _stat_each(paths)
    half = len(paths) // 2
    child = Forked.start(lambda: _stat_each(paths[half:]))
    if child is None:
        return _stat_each(paths)
    try:
        mine = _stat_each(paths[:half])
    finally:
        theirs = child.result()
    if not isinstance(theirs, list) or len(theirs) != len(paths) - half:
        theirs = _stat_each(paths[half:])  # the child died (killed, out of memory): the stats are made here
    return mine + theirs


class Forked:
    """A function run in a forked child of this process, its result (plain data) sent back through a
    pipe with :mod:`marshal`: work for the machine's other core that needs no new interpreter, nor
    sending it what this process holds (the child sees its memory as it was at the fork).

    The child closes every descriptor but its end of the pipe (the caller's caches and locks are not its
    to hold), runs the function, writes its value and leaves with ``os._exit`` (none of this process's
    cleanup runs twice). Only on Linux, in a process of one Python thread (another thread may hold a lock
    the child would need).
    """

    def __init__(self, pid: int, fd: int):
        self.pid, self.fd = pid, fd

    @classmethod
    def start(cls, work: Callable[[], object]) -> Forked | None:
        """The child running ``work()``, or None where there can be none (not Linux, other threads, no
        descriptor or process left)."""
        import threading  # here: only the forking callers need it

        if not hasattr(os, "fork") or os.uname().sysname != "Linux" or threading.active_count() > 1:
            return None
        try:
            read, write = os.pipe()
        except OSError:
            return None
        try:
            pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            return None
        if pid == 0:  # the child
            code = 1
            try:
                os.closerange(0, write)
                os.closerange(write + 1, _max_fd())
                write_all(write, marshal.dumps(work()))
                code = 0
            finally:
                os._exit(code)
        os.close(write)
        return cls(pid, read)

    def result(self) -> object | None:
        """The child's value (waits for it; unchecked plain data: the caller checks its shape), or None
        where it failed or was stopped."""
        if self.fd < 0:  # stopped
            return None
        try:
            with open(self.fd, "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        self.fd = -1
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return None
        if status != 0:
            return None
        try:
            return marshal.loads(data)
        except (ValueError, EOFError, TypeError):
            return None

    def stop(self) -> None:
        """Kill the child (if it still runs) and forget it."""
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(self.pid, 0)
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


def _max_fd() -> int:
    """Above any descriptor this process can have open (one system call closes them where the kernel has
    ``close_range``, one each elsewhere: the process's limit, not a guess)."""
    try:
        return max(os.sysconf("SC_OPEN_MAX"), 3)
    except (ValueError, OSError):
        return 1 << 16


def _stat_each(paths: list[str]) -> list[Identity | int]:
    """:func:`stat_many` in this process: one loop, no call but the stats."""
    found: list[Identity | int] = []
    add, stat = found.append, os.stat
    for path in paths:
        try:
            st = stat(path)
        except OSError as exc:
            add(exc.errno if exc.errno is not None else errno.EIO)
            continue
        except ValueError:  # a NUL in the path: no file has that name
            add(errno.ENOENT)
            continue
        add((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return found
