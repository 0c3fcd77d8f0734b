"""Byte sources to hash: an ordered list of files and a way to stream each one.

A :class:`Source` is what :func:`modelreg.torrent.create.create_torrent` hashes. The
hashing engine never touches the file system itself, so the same engine hashes a
local folder (:class:`LocalSource`) or any other ordered byte stream, such as
HTTP range reads from a model hub.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, runtime_checkable

from modelreg.errors import CreateError, NotRegularFileError
from modelreg.fsutil import READ_FLAGS

#: Size of the chunks :class:`LocalSource` reads. Large chunks keep the per-call
#: overhead of Python low and let hashlib run with the GIL released.
READ_CHUNK = 8 * 1024 * 1024


@dataclass(frozen=True)
class SourceFile:
    """One file of a source.

    ``path`` is the file's path inside the torrent, without the torrent name
    (``("model.safetensors",)`` or ``("tokenizer", "vocab.json")``). ``sha256``
    is an optional expected hex digest of the whole file, checked while the file
    streams; a mismatch aborts hashing with :class:`~modelreg.errors.CreateError`.
    """

    path: tuple[str, ...]
    size: int
    executable: bool = False
    sha256: str | None = None

    @property
    def path_str(self) -> str:
        return "/".join(self.path)


@runtime_checkable
class Source(Protocol):
    """An ordered collection of files whose bytes can be streamed.

    ``name`` becomes the torrent's name. When ``single_file`` is true the source
    has exactly one file and the torrent is a single-file torrent named after it
    (its ``path`` is then ``(name,)``).

    ``chunks(file)`` yields the file's bytes in order as bytes-like objects of
    any size (bytes, bytearray or memoryview); the engine keeps a reference to a
    chunk until it has hashed it, so a source must not reuse a buffer it has
    yielded. Together the chunks must add up to exactly ``file.size`` bytes.
    """

    name: str
    single_file: bool
    files: Sequence[SourceFile]

    def chunks(self, file: SourceFile) -> Iterable[bytes | bytearray | memoryview]: ...


def _is_executable(mode: int) -> bool:
    return bool(mode & stat.S_IXUSR)


@dataclass(frozen=True)
class LocalSource:
    """Files on the local disk: a folder (multi-file torrent) or one file.

    Symbolic links are followed, like libtorrent's ``add_files``. Files are
    listed in a deterministic order (sorted by path); torrents with v2 metadata
    sort them canonically anyway.
    """

    root: Path
    name: str
    single_file: bool
    files: tuple[SourceFile, ...]

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> LocalSource:
        """Scan ``path`` (a folder or a single file).

        Raises:
            CreateError: ``path`` is not a file or folder, or cannot be read.
        """
        root = Path(path)
        try:
            st = root.stat()
        except OSError as exc:
            raise CreateError(f"{root}: cannot read: {exc.strerror or exc}") from exc
        name = root.resolve().name
        if stat.S_ISREG(st.st_mode):
            file = SourceFile((name,), st.st_size, _is_executable(st.st_mode))
            return cls(root, name, True, (file,))
        if not stat.S_ISDIR(st.st_mode):
            raise CreateError(f"{root}: not a file or folder")
        files = tuple(sorted(_walk(root, (), set()), key=lambda f: [p.encode() for p in f.path]))
        return cls(root, name, False, files)

    def local_path(self, file: SourceFile) -> Path:
        """Where ``file`` lives on disk."""
        if self.single_file:
            return self.root
        return self.root.joinpath(*file.path)

    def chunks(self, file: SourceFile) -> Iterator[bytes]:
        """The file's bytes; afterwards its identity is checked again, so a file changed while it was read
        (overwritten in place, replaced by a rename, deleted) fails instead of giving a wrong torrent.

        Raises:
            CreateError: the file cannot be read, is no longer a regular file, or changed while read.
        """
        path = self.local_path(file)
        try:
            fh, before = open_regular(path)
            with fh:
                while data := fh.read(READ_CHUNK):
                    yield data
                after = os.fstat(fh.fileno())
            now: os.stat_result | None = os.stat(path)
        except FileNotFoundError:
            now = None
        except NotRegularFileError:
            raise CreateError(f"{path}: no longer a regular file (replaced since the folder was listed)") from None
        except OSError as exc:
            raise CreateError(f"{path}: cannot read: {exc.strerror or exc}") from exc
        if now is None or _identity(after) != _identity(before) or _identity(now) != _identity(before):
            how = "was deleted" if now is None else "changed"
            raise CreateError(f"{path}: {how} while it was hashed; make the torrent again once it is stable")


def open_regular(path: str | os.PathLike[str]) -> tuple[BinaryIO, os.stat_result]:
    """``path`` opened for reading (unbuffered) and its status, if it is a regular file (links followed).

    A FIFO or a device is refused without being read, and without blocking: it is opened non-blocking
    and checked with ``fstat`` on the open descriptor, so it cannot be swapped in between.

    Raises:
        NotRegularFileError: ``path`` is not a regular file.
        OSError: it cannot be opened.
    """
    fd = os.open(path, READ_FLAGS)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFileError(f"{os.fsdecode(path)}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=0), st
    except BaseException:
        os.close(fd)
        raise


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """What says a file is still the one that was opened: device, inode, size and modification time."""
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _walk(folder: Path, prefix: tuple[str, ...], seen: set[tuple[int, int]]) -> Iterator[SourceFile]:
    try:
        st = os.stat(folder)
        entries = list(os.scandir(folder))
    except OSError as exc:
        raise CreateError(f"{folder}: cannot list folder: {exc.strerror or exc}") from exc
    if (st.st_dev, st.st_ino) in seen:
        raise CreateError(f"{folder}: a symbolic link loops back to a folder above it")
    seen = seen | {(st.st_dev, st.st_ino)}
    for entry in entries:
        path = prefix + (entry.name,)
        try:
            entry.name.encode("utf-8")
        except UnicodeEncodeError:
            raise CreateError(f"{entry.path!r}: the name is not valid UTF-8; rename it") from None
        try:
            st = os.stat(entry.path)  # follows symbolic links, like libtorrent
        except OSError:
            continue  # a dangling link: libtorrent skips it too
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(Path(entry.path), path, seen)
        elif stat.S_ISREG(st.st_mode):
            yield SourceFile(path, st.st_size, _is_executable(st.st_mode))
