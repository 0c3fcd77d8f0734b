"""A cache of parsed torrents, so that a rebuild reads only the torrents that changed.

Entries are keyed by the file's absolute path, size and ``st_mtime_ns`` (as make and git do), and keep
the SHA-256 of the file's bytes, which the render step uses to decide whether a model's pages are
still current. Cached torrents are kept without their piece hashes and raw bytes (the site never shows
them); :func:`full_torrent` reads the file again where a served torrent must be written. The cache is a
SQLite file (:class:`~modelreg.site.cachedb.CacheDB`) of plain data in ``marshal`` format (fast, and loading it runs no code),
one row per torrent; a damaged file, or one written by another Python or for another shape of
:class:`Torrent`, is ignored and rebuilt.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import hashlib
import marshal
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

from modelreg.errors import ModelregError
from modelreg.registry.catalog import read_torrent
from modelreg.site.cachedb import CacheDB
from modelreg.torrent.metainfo import FileEntry, Torrent

CACHE_VERSION = 6
_FIELDS = tuple(f.name for f in dataclasses.fields(Torrent))
_DROPPED = {"files", "layout", "pieces", "piece_layers", "info_bytes", "raw"}
_KEPT = tuple(name for name in _FIELDS if name not in _DROPPED)
#: Written first in the file; a cache with any other header is not read.
_HEADER = (CACHE_VERSION, tuple(sys.version_info[:2]), _FIELDS)


class ParseCache:
    """``read(path)`` for :func:`~modelreg.registry.catalog.load_catalog` that remembers what it parsed.

    The entries live in a SQLite file (``file``), read row by row as torrents are asked for and written
    in one transaction that :meth:`save` commits: memory holds the digests, not the parsed torrents, and a
    rebuild reads only the rows of the torrents it reads. A build that fails never commits.
    """

    def __init__(self, file: Path | None, readonly: bool = False):
        self.file = file
        self.db = CacheDB(file, _SCHEMA, _HEADER, readonly=readonly)
        self.digests: dict[str, str] = {}
        #: The stat of each torrent read in this run, as :func:`identity`, when it was read: a file whose
        #: stat is still this one holds the bytes parsed (its ctime changes with any write), so they need
        #: not be read and hashed again.
        self.identities: dict[str, tuple[int, int, int, int]] = {}
        self.hits = self.misses = 0

    def prefetch(self, paths: list[Path], workers: int | None = None) -> None:
        """Parse the torrents that are not cached yet in worker processes (one per core).

        Only the slim, packed result comes back; a torrent that fails to parse is left for
        :meth:`read`, which raises its error as usual.
        """
        known: dict[str, tuple[int, int]] = {}
        for path, size, mtime in self.db.rows("SELECT path, size, mtime FROM torrents"):
            if isinstance(path, str) and isinstance(size, int) and isinstance(mtime, int):
                known[path] = (size, mtime)
        todo = []
        for path in paths:
            key = os.path.abspath(path)
            try:
                st = os.stat(key)
            except OSError:
                continue
            if known.get(key) != (st.st_size, st.st_mtime_ns):
                todo.append(key)
        del known
        workers = min(workers or os.cpu_count() or 1, len(todo) // _PER_WORKER)
        if workers < 2:
            return  # not worth starting processes
        with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            batch = []
            for key, result in zip(todo, pool.map(_parse, todo, chunksize=64), strict=True):
                if result is not None:
                    batch.append((key, *result))
                    self.misses += 1
                if len(batch) >= 512:
                    self._store(batch)
                    batch = []
            self._store(batch)

    def _store(self, rows: list[tuple]) -> None:
        self.db.write("INSERT OR REPLACE INTO torrents VALUES (?, ?, ?, ?, ?, ?)",
                      [(key, size, mtime, digest, marshal.dumps(values), layout)
                       for key, size, mtime, digest, (values, layout) in rows])

    def _cached(self, key: str, st: os.stat_result | _Stat, files: bool) -> Torrent | None:
        """The cached torrent of ``key`` if its entry is for this size and modification time and sound."""
        row = self.db.row("SELECT size, mtime, digest, light" + (", layout" if files else "")
                          + " FROM torrents WHERE path = ?", (key,))
        if row is None or row[0] != st.st_size or row[1] != st.st_mtime_ns:
            return None
        digest = row[2]
        if not (isinstance(digest, str) and len(digest) == 64):
            return None
        try:
            torrent = _unpack((marshal.loads(row[3]), row[4] if files else None), files=files)
        except (ValueError, TypeError, EOFError):  # a damaged or foreign entry: parse the file again
            return None
        self.digests[key] = digest
        # the first read of the run is the one the model's record is made from
        self.identities.setdefault(key, identity(st))
        return torrent

    def committed(self, path: Path, parsed: tuple[int, int, int, int]) -> Torrent | None:
        """The torrent of ``path`` with its files, from the committed cache (as a worker reads it), if its
        entry is for the size and modification time of ``parsed`` (its :func:`identity` when read)."""
        return self._cached(os.path.abspath(path), _Stat(*parsed), files=True)

    def read(self, path: Path) -> Torrent:
        key = os.path.abspath(path)
        st = os.stat(key)
        torrent = self._cached(key, st, files=True)
        if torrent is not None:
            self.hits += 1
            return torrent
        self.misses += 1
        torrent = read_torrent(path)
        digest = hashlib.sha256(torrent.raw).hexdigest()
        self._store([(key, st.st_size, st.st_mtime_ns, digest, _pack(torrent))])
        self.digests[key] = digest
        self.identities[key] = identity(st)
        return torrent

    def read_light(self, path: Path) -> Torrent:
        """:meth:`read`, but a cached torrent comes without its file list (``files`` empty): what a
        catalog of the whole registry holds, while each model's files are read when it is rendered."""
        key = os.path.abspath(path)
        torrent = self._cached(key, os.stat(key), files=False)
        if torrent is not None:
            return torrent
        torrent = self.read(path)
        return _unpack((tuple(getattr(torrent, name) for name in _KEPT), None), files=False)

    def digest(self, path: Path) -> str | None:
        return self.digests.get(os.path.abspath(path))

    def save(self) -> None:
        """Commit the entries of the torrents read in this run, forgetting those not read (removed)."""
        if self.db.count("torrents") != len(self.digests):
            self.db.keep_only("torrents", "path", self.digests)
        self.db.commit()


class _Stat(NamedTuple):
    """The fields of a stat result that :func:`identity` keeps."""

    st_size: int
    st_mtime_ns: int
    st_ino: int
    st_ctime_ns: int


def identity(st: os.stat_result | _Stat) -> tuple[int, int, int, int]:
    """What tells a file's bytes unchanged without reading them: size, modification time, inode and
    change time (which no program can set back: any write or rename over the file changes one of them)."""
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


#: Fewer new torrents than this per worker are parsed in-process.
_PER_WORKER = 200


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when the build that started it dies, even by SIGKILL.

    A killed parent never tells its pool to stop, and its workers would wait on their queue forever.
    On Linux the kernel sends SIGKILL to the worker when the parent's thread that started it ends
    (``prctl(PR_SET_PDEATHSIG)``; the pool's processes are started by the thread that runs the build,
    which waits for them). Everywhere, a watchdog thread also checks once a second that the parent
    is still there (when it is gone, the worker's parent id changes).
    """
    libc_name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    if libc_name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _parse(key: str) -> tuple[int, int, str, tuple] | None:
    """Worker: (size, mtime_ns, digest, packed torrent), or None if the file cannot be read or parsed."""
    try:
        st = os.stat(key)
        torrent = read_torrent(key)
        after = os.stat(key)
    except (OSError, ModelregError):
        return None
    if (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns) or st.st_size != len(torrent.raw):
        return None  # changed while being read: let read() take it
    return st.st_size, st.st_mtime_ns, hashlib.sha256(torrent.raw).hexdigest(), _pack(torrent)


def _pack(torrent: Torrent) -> tuple:
    """The torrent as plain data, without what the site does not show: piece hashes, piece layers, info
    bytes, raw bytes, and each file's v2 pieces root. The layout (pad files included: a file's index as
    aria2c's ``--select-file`` counts it needs them) stays marshalled bytes until the torrent is read: a
    tenth of the memory of the tuples for a cache that holds every torrent of a large registry."""
    files = tuple((f.path, f.size, f.offset, f.is_pad, f.attr) for f in torrent.layout)
    return tuple(getattr(torrent, name) for name in _KEPT), marshal.dumps(files)


def _unpack(packed: tuple, files: bool = True) -> Torrent:
    """The torrent of :func:`_pack`'s tuple.

    Raises:
        ValueError: the tuple is not in the shape :func:`_pack` writes (a damaged cache entry).
    """
    values, blob = packed
    if not isinstance(values, tuple) or len(values) != len(_KEPT):
        raise ValueError("not a packed torrent")
    layout = tuple(FileEntry(path, size, offset, None, pad, attr)
                   for path, size, offset, pad, attr in (marshal.loads(blob) if files else ()))
    return Torrent(
        **dict(zip(_KEPT, values, strict=True)),
        files=tuple(f for f in layout if not f.is_pad),
        layout=layout, pieces=b"", piece_layers={}, info_bytes=b"", raw=b"",
    )


def full_torrent(torrent: Torrent, path: Path) -> Torrent:
    """The complete torrent: itself, or read again from ``path`` when it came slim from the cache."""
    return torrent if torrent.raw else read_torrent(path)


_SCHEMA = ("CREATE TABLE torrents (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, digest TEXT, light BLOB,"
           " layout BLOB);")
