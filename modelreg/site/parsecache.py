"""A cache of parsed torrents, so that a rebuild reads only the torrents that changed.

Entries are keyed by the file's absolute path, size and ``st_mtime_ns`` (as make and git do), and keep
the SHA-256 of the file's bytes, which the render step uses to decide whether a model's pages are
still current. Cached torrents are kept without their piece hashes and raw bytes (the site never shows
them); :func:`full_torrent` reads the file again where a served torrent must be written. The cache is
plain data in ``marshal`` format (fast, and loading it runs no code); a damaged file, or one written by
another Python or for another shape of :class:`Torrent`, is ignored and rebuilt.
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
from typing import Any

from modelreg.errors import ModelregError
from modelreg.fsutil import atomic_write_bytes
from modelreg.registry.catalog import read_torrent
from modelreg.torrent.metainfo import FileEntry, Torrent

CACHE_VERSION = 5
_FIELDS = tuple(f.name for f in dataclasses.fields(Torrent))
_DROPPED = {"files", "layout", "pieces", "piece_layers", "info_bytes", "raw"}
_KEPT = tuple(name for name in _FIELDS if name not in _DROPPED)
#: Written first in the file; a cache with any other header is not read.
_HEADER = (CACHE_VERSION, tuple(sys.version_info[:2]), _FIELDS)


class ParseCache:
    """``read(path)`` for :func:`~modelreg.registry.catalog.load_catalog` that remembers what it parsed."""

    def __init__(self, file: Path | None):
        self.file = file
        self.entries: dict[str, tuple[int, int, str, Any]] = {}
        self.digests: dict[str, str] = {}
        self.hits = self.misses = 0
        if file is not None:
            self.entries = _load(file)
        self._loaded = len(self.entries)

    def prefetch(self, paths: list[Path], workers: int | None = None) -> None:
        """Parse the torrents that are not cached yet in worker processes (one per core).

        Only the slim, packed result comes back; a torrent that fails to parse is left for
        :meth:`read`, which raises its error as usual.
        """
        todo = []
        for path in paths:
            key = os.path.abspath(path)
            try:
                st = os.stat(key)
            except OSError:
                continue
            entry = self.entries.get(key)
            if entry is None or entry[:2] != (st.st_size, st.st_mtime_ns):
                todo.append(key)
        workers = min(workers or os.cpu_count() or 1, len(todo) // _PER_WORKER)
        if workers < 2:
            return  # not worth starting processes
        with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            for key, result in zip(todo, pool.map(_parse, todo, chunksize=64)):
                if result is not None:
                    self.entries[key] = result
                    self.misses += 1

    def read(self, path: Path) -> Torrent:
        key = os.path.abspath(path)
        st = os.stat(key)
        entry = self.entries.get(key)
        if entry is not None and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            self.hits += 1
            self.digests[key] = entry[2]
            return _unpack(entry[3])
        self.misses += 1
        torrent = read_torrent(path)
        digest = hashlib.sha256(torrent.raw).hexdigest()
        self.entries[key] = (st.st_size, st.st_mtime_ns, digest, _pack(torrent))
        self.digests[key] = digest
        return torrent

    def read_light(self, path: Path) -> Torrent:
        """:meth:`read`, but a cached torrent comes without its file list (``files`` empty): what a
        catalog of the whole registry holds, while each model's files are read when it is rendered."""
        key = os.path.abspath(path)
        st = os.stat(key)
        entry = self.entries.get(key)
        if entry is not None and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            self.digests[key] = entry[2]
            return _unpack(entry[3], files=False)
        self.read(path)
        return _unpack(self.entries[key][3], files=False)

    def digest(self, path: Path) -> str | None:
        return self.digests.get(os.path.abspath(path))

    def save(self) -> None:
        """Write the entries of the torrents read in this run (forgetting removed ones)."""
        if self.file is None or (self.misses == 0 and len(self.digests) == self._loaded):
            return  # nothing new, nothing gone
        kept = {k: v for k, v in self.entries.items() if k in self.digests}
        write_cache(self.file, marshal.dumps((_HEADER, kept)))


def write_cache(path: Path, data: bytes) -> None:
    """Replace a cache file atomically (temporary file + rename), without fsync: after a crash a cache
    may be lost or unreadable, which only makes the next build a full one."""
    atomic_write_bytes(path, data, durable=False)


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
    values, blob = packed
    layout = tuple(FileEntry(path, size, offset, None, pad, attr)
                   for path, size, offset, pad, attr in (marshal.loads(blob) if files else ()))
    return Torrent(
        **dict(zip(_KEPT, values)),
        files=tuple(f for f in layout if not f.is_pad),
        layout=layout, pieces=b"", piece_layers={}, info_bytes=b"", raw=b"",
    )


def full_torrent(torrent: Torrent, path: Path) -> Torrent:
    """The complete torrent: itself, or read again from ``path`` when it came slim from the cache."""
    return torrent if torrent.raw else read_torrent(path)


def _load(file: Path) -> dict:
    try:
        header, entries = marshal.loads(file.read_bytes())
    except (OSError, EOFError, ValueError, TypeError):  # missing or damaged: only a slower build
        return {}
    return entries if header == _HEADER and isinstance(entries, dict) else {}
