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
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, filterfalse
from operator import ne
from pathlib import Path

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

    ``target`` is a symbolic link to ``.<name>-versions/<id>/``, one complete version of the tree. The
    build writes new and changed files into a staging folder and names the live files it keeps. Once
    it has finished, the next version is assembled from them: the version readers left at the last
    switch (the one before the live one) is renamed to a new id and brought up to date in place (staged files moved
    in, kept files hard-linked from the live version where they are not already the same file, others
    deleted), or, where there is none, the staging folder itself becomes it. Then one ``rename`` of a new
    link over ``target`` switches readers to it. A failed or interrupted build never touches the live
    version; the previous one is kept and older ones are deleted. ``state`` (a folder, optional) keeps
    the files of each version with their inodes, which spares walking a tree to update it and checking
    the files it shares with the live version. A real folder at ``target`` (from an older modelreg, or
    made by hand) is switched to the link in one exchange too, and becomes the previous version. One build at a time per ``target``: another one fails.

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

    With the records of the recycled version and of the live one, what it costs grows with the files
    that differ between them and the staged ones, not with the files kept: the records are compared as
    sets, and only the files that differ are touched.
    """
    staged = set(_files(stage.dir))
    base = _recyclable(versions, current, state)
    live = _read_record(state, current.name) if current is not None and current.parent == versions else None
    new = versions / _new_id()
    held = None
    if base is None:
        os.rename(stage.dir, new)
    else:
        held = _take_record(state, base.name)
        os.rename(base, new)
        # the files of the recycled version that the new one has not (C-level filters: no set of them all)
        gone = filterfalse(staged.__contains__, filterfalse(stage.kept.__contains__, _files(new) if held is None else held))
        for rel in sorted(gone, reverse=True):
            if path_problem(rel.split("/")) is None:  # the record is read from disk: never a path out of it
                _remove(new, rel)
        for rel in sorted(staged):
            _place(stage.dir / rel, new, rel)
        shutil.rmtree(stage.dir, ignore_errors=True)
    inodes = _link_kept(current, new, stage.kept - staged, base is None, held, live, staged)
    inodes.update((rel, os.lstat(os.path.join(new, rel)).st_ino) for rel in staged)
    _write_record(state, new.name, inodes)
    return new


def _recyclable(versions: Path, current: Path | None, state: Path | None) -> Path | None:
    """The newest version no reader is on (one with a record of its files first), if any."""
    live = current.name if current is not None and current.parent == versions else None
    found = [p for p in versions.iterdir() if not p.name.startswith(".") and p.name != live and p.is_dir()
             and not p.is_symlink()]
    if not found:
        return None
    recorded = {p.name for p in found if state is not None and (state / f"{p.name}.files").exists()}
    return max(found, key=lambda p: (p.name in recorded, p.name))


def _link_kept(current: Path | None, new: Path, kept: set[str], fresh: bool, held: dict[str, int] | None,
               live: dict[str, int] | None, staged: set[str] | frozenset[str] = frozenset()) -> dict[str, int]:
    """Hard-link each kept file of the live tree into ``new``, unless it is that very file already.

    ``held`` and ``live`` are the records (path -> inode) of ``new`` before the update and of the live
    version: where both name the same inode for a path, nothing needs a system call. Returns the
    kept files' inodes, in the live record's order, with the ``staged`` files it has still in their
    places (their inodes are the caller's to fill in): so the records of successive versions list their
    files in the same order, which the next update compares fastest.
    """
    if current is None:
        return {}
    if held is not None and live is not None:
        # the kept files both records name with the same inode are in place: only the others are looked
        # at (set operations, no loop in Python over the files kept)
        paths = list(live)
        if paths == list(held):  # in the same order, as records made one from the other are: C-level
            differ: Iterable[str] = compress(paths, map(ne, live.values(), held.values()))
        else:
            differ = (rel for rel, ino in live.items() if held.get(rel) != ino)
        todo = sorted(kept.difference(live).union(kept.intersection(differ)))
        inodes = dict(live)  # the new version's record: the live one's, less the files not kept
        for rel in list(filterfalse(staged.__contains__, filterfalse(kept.__contains__, live))):
            del inodes[rel]
    else:
        inodes, todo = {}, sorted(kept)
    for rel in todo:
        src = os.path.join(current, rel)
        s = os.stat(src)
        inodes[rel] = s.st_ino
        if not fresh:
            try:
                d = os.lstat(os.path.join(new, rel))
                if (d.st_ino, d.st_dev) == (s.st_ino, s.st_dev):
                    continue
            except FileNotFoundError:
                pass
        _place(Path(src), new, rel, link=True)
    return inodes


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
    """Delete every version but ``keep``, and what dead builds left (staging folders, links, records)."""
    for path in versions.iterdir():
        if path.name not in keep and path.name != ".lock":
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() and not path.is_symlink() else path.unlink()
    for stray in target.parent.glob(f".{target.name}-link-*"):
        shutil.rmtree(stray, ignore_errors=True) if stray.is_dir() and not stray.is_symlink() else stray.unlink()
    if state is not None and state.is_dir():
        for record in state.iterdir():
            if record.name.removesuffix(".files") not in keep:
                record.unlink(missing_ok=True)  # also the journal of the in-place updates before versions


def _new_id() -> str:
    """A version's folder name: sortable by age, unique per process."""
    return f"{time.time_ns():020d}-{os.getpid()}"


def _read_record(state: Path | None, name: str) -> dict[str, int] | None:
    """The files of a version when it was made (path -> inode), or None where unknown or damaged."""
    if state is None:
        return None
    try:
        record = marshal.loads((state / f"{name}.files").read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(record, dict) or not all(type(ino) is int for ino in record.values()) \
            or not all(type(rel) is str for rel in record):
        return None
    return record


def _take_record(state: Path | None, name: str) -> dict[str, int] | None:
    """:func:`_read_record`, and the record is dropped: the version is about to change."""
    record = _read_record(state, name)
    if state is not None:
        (state / f"{name}.files").unlink(missing_ok=True)
    return record


def _write_record(state: Path | None, name: str, inodes: dict[str, int]) -> None:
    # marshal: a tenth of JSON's time for the ~400,000 files of a site of 100,000 models. Not fsynced: a
    # record lost in a crash only makes the next update walk the version's tree
    if state is not None:
        atomic_write_bytes(state / f"{name}.files", marshal.dumps(inodes), durable=False)


def _files(root: Path) -> Iterator[str]:
    """Every file below ``root`` as a POSIX path relative to it."""
    for folder, _, files in os.walk(root):
        rel = os.path.relpath(folder, root)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for name in files:
            yield prefix + name


#: From this many paths on, :func:`stat_many` shares the stats with a forked child (below, a fork costs
#: more than it saves).
STAT_SPLIT = 20_000


def stat_many(paths: list[str]) -> list[Identity | int]:
    """The :data:`Identity` of each of ``paths`` (``stat``, links followed), or the ``errno`` of the error
    where it has none (``errno.ENOENT``: missing, or a dangling link).

    From :data:`STAT_SPLIT` paths on, on Linux, in a process of one thread, a forked child stats the second half while this process
    stats the first: the stats of a registry of 100,000 models take a core for half a second, and a build
    has the machine's other core idle then. The child only stats, writes its answer to a pipe and leaves
    (``os._exit``: none of this process's cleanup runs twice). Where it fails, this process stats its half too.
    """
    import threading  # here, not above: this end of the module is the catalog's (the top is the site update's)

    if len(paths) < STAT_SPLIT or not hasattr(os, "fork") or os.uname().sysname != "Linux" \
            or threading.active_count() > 1:  # another thread may hold a lock the child would need
        return _stat_each(paths)
    half = len(paths) // 2
    try:
        answer, out = os.pipe()
    except OSError:  # out of file descriptors: no child
        return _stat_each(paths)
    try:
        pid = os.fork()
    except OSError:
        os.close(answer)
        os.close(out)
        return _stat_each(paths)
    if pid == 0:  # the child
        code = 1
        try:
            os.close(answer)
            view = memoryview(marshal.dumps(_stat_each(paths[half:])))
            while view:
                view = view[os.write(out, view):]
            code = 0
        finally:
            os._exit(code)
    os.close(out)
    chunks = []
    try:
        mine = _stat_each(paths[:half])
        while chunk := os.read(answer, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(answer)  # a child still writing gets EPIPE and leaves
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    try:
        theirs = marshal.loads(b"".join(chunks))
    except (ValueError, EOFError, TypeError):
        theirs = None
    if not isinstance(theirs, list) or len(theirs) != len(paths) - half:
        theirs = _stat_each(paths[half:])  # the child died (killed, out of memory): the stats are made here
    return mine + theirs


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
