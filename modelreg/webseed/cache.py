"""The mirror's on-disk cache: verified pieces in files laid out like the torrent, plus a piece bitmap.

One folder per torrent, named by its infohash::

    <cache>/<infohash>/torrent       the .torrent (so the cache knows what it holds after a restart)
    <cache>/<infohash>/source.json   {"repo_id": ..., "revision": ...}
    <cache>/<infohash>/pieces        bitmap: bit i set = piece i verified and on disk
    <cache>/<infohash>/data/<path>   the files (sparse until complete), served with sendfile

A piece is written to its file(s) only after its hash matched (hashing and writing run in a worker
thread, with ``os.pwritev`` of the received buffers). The bitmap is persisted *after* the data
files were fsynced, through a temp file and ``os.replace``, in the background and batched (at most one
flush per :data:`FLUSH_DELAY`): so after a crash the bitmap never names a piece whose bytes did not
reach the disk, and a partly written piece is simply fetched again. Pieces read back from disk are
checked again (:mod:`.diskcheck`): a piece altered on disk is dropped and fetched again. Eviction clears
the bitmap (persisted) before it deletes a file. The cache's size is the verified bytes it holds; with
a cap, whole files are evicted least-recently-used first, never one being served or filled.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import math
import os
import time
from collections import OrderedDict
from pathlib import Path

from modelreg.errors import CacheError, ModelregError
from modelreg.fsutil import Identity, atomic_write_bytes, identity_of
from modelreg.torrent.metainfo import FileEntry, Torrent
from modelreg.torrent.pieces import PieceMap
from modelreg.webseed.diskcheck import CheckedPieces
from modelreg.webseed.metrics import Metrics
from modelreg.webseed.routes import Served

_TOUCH_EVERY = 30.0
#: Seconds between background flushes of written pieces (fsync, then the bitmap).
FLUSH_DELAY = 1.0
#: What :meth:`TorrentStore.write_piece_data` reports per file: the file and its identity before and after.
Moves = list[tuple[FileEntry, Identity, Identity]]


def store_key(torrent: Torrent) -> str:
    return torrent.infohash_v1 or torrent.infohash_v2 or ""


class TorrentStore:
    """The cached pieces of one torrent."""

    def __init__(self, root: Path, served: Served):
        assert served.torrent is not None
        self.root = root
        self.served = served
        self.torrent = served.torrent
        self.map = PieceMap(served.torrent)
        self.key = store_key(served.torrent)
        self.bits = bytearray(math.ceil(self.map.num_pieces / 8))
        self.stored_bytes = 0
        self.checks = CheckedPieces()
        self._dirty: set[Path] = set()
        self._flush_lock = asyncio.Lock()
        self._flusher: asyncio.Task | None = None
        self._flush_wanted = False
        self._flush_now: asyncio.Event | None = None
        self._load()

    # -- bitmap
    def has(self, index: int) -> bool:
        return bool(self.bits[index >> 3] & (0x80 >> (index & 7)))

    def missing(self, pieces: range) -> list[int]:
        return [i for i in pieces if not self.has(i)]

    def complete(self, entry: FileEntry, start: int = 0, end: int | None = None) -> bool:
        return not self.missing(self.map.pieces_of(entry, start, end))

    def path_of(self, entry: FileEntry) -> Path:
        return self.root.joinpath("data", *entry.path)

    def drop_if_damaged(self, entry: FileEntry, size: int | None = None) -> bool:
        """Forget ``entry``'s pieces if its file lost its full size on disk (``size``: already measured).

        A file truncated or deleted behind the cache's back has lost verified bytes; forgetting them
        (the caller persists the bitmap) makes them fetched again instead of served short or as zeros.
        Returns whether any piece was forgotten.
        """
        if size is None:
            try:
                size = self.path_of(entry).stat().st_size
            except OSError:
                size = -1
        return size != entry.size and self.clear_file(entry) > 0

    def piece_payload(self, index: int) -> int:
        """Bytes of real (non-pad) files in piece ``index``."""
        return sum(s.length for s in self.map.segments(*self.map.piece_span(index)) if not s.entry.is_pad)

    def file_segments(self, index: int) -> list:
        """The segments of piece ``index`` that are real files (pad files are zeros, never stored)."""
        return [seg for seg in self.map.segments(*self.map.piece_span(index)) if not seg.entry.is_pad]

    # -- writing
    def write_piece(self, index: int, data: bytes) -> int:
        """Store a verified piece (all steps in this thread); returns the bytes added to the cache."""
        if self.has(index):
            return 0
        self.prepare_write(index)
        return self.mark_stored(index, self.write_piece_data(index, [memoryview(data)]))

    def prepare_write(self, index: int) -> None:
        """Make the files of piece ``index`` ready for its bytes (see :meth:`prepare_files`)."""
        self.prepare_files([seg.entry for seg in self.file_segments(index)])

    def prepare_files(self, entries) -> None:
        """Make files ready for verified bytes: folders made, each file at its full size.

        A file that lost its full size loses its pieces first: regrowing it must not turn lost bytes
        into zeros. Runs on the event loop, so the bitmap is only ever changed there. (A file damaged
        after this is caught when its pieces are read back: :mod:`.diskcheck`.)
        """
        for entry in entries:
            path = self.path_of(entry)
            try:
                size = os.stat(path).st_size
            except FileNotFoundError:
                size = -1
            if size == entry.size:
                continue
            self.drop_if_damaged(entry, size)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                os.ftruncate(fd, entry.size)
            finally:
                os.close(fd)

    def write_piece_data(self, index: int, parts: list[memoryview]) -> Moves:
        """Write a verified piece's bytes, given in ``parts``, into its files (safe in a worker thread).

        One ``pwritev`` per file (the parts are written where they are, not joined). Touches no state:
        returns each file with its identity before and after the write, for :meth:`mark_stored`.
        """
        moves: Moves = []
        start = self.map.piece_span(index)[0]
        pos = 0  # in the piece
        for seg in self.map.segments(start, self.map.piece_span(index)[1]):
            if not seg.entry.is_pad:
                fd = os.open(self.path_of(seg.entry), os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    before = identity_of(os.fstat(fd))
                    _pwrite_all(fd, _slice(parts, pos, pos + seg.length), seg.file_offset)
                    moves.append((seg.entry, before, identity_of(os.fstat(fd))))
                finally:
                    os.close(fd)
            pos += seg.length
        return moves

    def mark_stored(self, index: int, moves: Moves) -> int:
        """Record piece ``index`` as written (its files moved as ``moves`` says); returns the bytes added."""
        for entry, before, after in moves:
            self.checks.moved(entry.path_str, before, after, index)
            self._dirty.add(self.path_of(entry))
        if self.has(index):
            return 0
        self.bits[index >> 3] |= 0x80 >> (index & 7)
        added = self.piece_payload(index)
        self.stored_bytes += added
        return added

    def forget_piece(self, index: int) -> int:
        """Clear piece ``index`` from the bitmap (the caller persists); returns the bytes freed."""
        if not self.has(index):
            return 0
        self.bits[index >> 3] &= ~(0x80 >> (index & 7)) & 0xFF
        freed = self.piece_payload(index)
        self.stored_bytes -= freed
        return freed

    # -- checking what is on disk
    def unchecked(self, pieces) -> list[int]:
        """Held pieces among ``pieces`` not checked since one of their files changed (a stat per file)."""
        out: list[int] = []
        idents: dict[str, Identity | None] = {}
        for i in pieces:
            if not self.has(i):
                continue
            for seg in self.file_segments(i):
                key = seg.entry.path_str
                if key not in idents:
                    try:
                        idents[key] = identity_of(self.path_of(seg.entry).stat())
                    except OSError:
                        idents[key] = None
                ident = idents[key]
                if ident is None or self.checks.unchecked(key, ident, (i,)):
                    out.append(i)
                    break
        return out

    def apply_checks(self, results) -> list[int]:
        """Record what :func:`~modelreg.webseed.diskcheck.check_pieces` found; pieces that failed are forgotten. Returns them."""
        bad = []
        for index, ok, seen in results:
            if ok:
                for entry, ident in seen:
                    self.checks.checked(entry.path_str, ident, index)
            else:
                self.forget_piece(index)
                bad.append(index)
        return bad

    async def flush(self) -> None:
        """Make the written pieces durable now: fsync their files, then persist the bitmap."""
        async with self._flush_lock:
            dirty, self._dirty = self._dirty, set()
            snapshot = bytes(self.bits)
            await asyncio.to_thread(self._persist, dirty, snapshot)

    def flush_soon(self) -> None:
        """Flush in the background within :data:`FLUSH_DELAY` (many runs of pieces share one fsync)."""
        self._flush_wanted = True
        if self._flusher is None or self._flusher.done():
            self._flush_now = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later(self._flush_now))

    async def _flush_later(self, now: asyncio.Event) -> None:
        while self._flush_wanted:
            self._flush_wanted = False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(now.wait(), FLUSH_DELAY)
            with contextlib.suppress(OSError):  # the next flush tries again; a lost bitmap only refetches
                await self.flush()

    async def close(self) -> None:
        """Finish any background flush now, then flush what is left."""
        if self._flusher is not None and not self._flusher.done():
            assert self._flush_now is not None
            self._flush_now.set()
            await asyncio.shield(self._flusher)
        if self._dirty:
            await self.flush()

    def _persist(self, dirty: set[Path], snapshot: bytes) -> None:
        for path in dirty:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:  # evicted meanwhile; its bits are already cleared
                continue
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        atomic_write_bytes(self.root / "pieces", snapshot)

    def clear_file(self, entry: FileEntry) -> int:
        """Forget every piece touching ``entry`` (the caller persists, then deletes); returns bytes freed."""
        self.checks.forget(entry.path_str)
        return sum(self.forget_piece(i) for i in self.map.pieces_of(entry))

    # -- loading
    def _load(self) -> None:
        path = self.root / "pieces"
        if path.exists():
            data = path.read_bytes()
            if len(data) == len(self.bits):
                self.bits[:] = data
        self.stored_bytes = sum(self.piece_payload(i) for i in range(self.map.num_pieces) if self.has(i))
        for entry in self.torrent.files:
            if any(self.has(i) for i in self.map.pieces_of(entry)):
                self.drop_if_damaged(entry)


def _slice(parts: list[memoryview], start: int, end: int) -> list[memoryview]:
    """The bytes ``[start, end)`` of ``parts`` taken end to end, as views into them."""
    out, pos = [], 0
    for part in parts:
        size = len(part)
        if pos + size > start and pos < end:
            out.append(part[max(0, start - pos) : min(size, end - pos)])
        pos += size
    return out


def _pwrite_all(fd: int, bufs: list[memoryview], offset: int) -> None:
    """Write ``bufs`` end to end at ``offset``, resuming after short writes."""
    bufs = [b for b in bufs if len(b)]
    while bufs:
        done = os.pwritev(fd, bufs, offset)
        if done <= 0:
            raise OSError(errno.EIO, "pwritev wrote nothing")
        offset += done
        while bufs and done >= len(bufs[0]):
            done -= len(bufs[0])
            bufs.pop(0)
        if done:
            bufs[0] = bufs[0][done:]


class PieceCache:
    """Every cached torrent, the cache's size and its least-recently-used order of files."""

    def __init__(self, root: str | Path, metrics: Metrics, max_size: int | None = None):
        self.root = Path(root)
        self.metrics = metrics
        self.max_size = max_size
        self.stores: dict[str, TorrentStore] = {}
        self._lru: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._pins: dict[tuple[str, str], int] = {}
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"{self.root}: cannot create the cache folder: {exc.strerror or exc}") from exc

    @property
    def used(self) -> int:
        return sum(s.stored_bytes for s in self.stores.values())

    def cached_torrents(self) -> tuple[list[Served], list[ModelregError]]:
        """The torrents a previous run (or ``modelreg mirror``) stored, to be served again."""
        found, errors = [], []
        for folder in sorted(p for p in self.root.iterdir() if (p / "torrent").is_file()):
            try:
                torrent = Torrent.read(folder / "torrent")
                source = json.loads((folder / "source.json").read_text(encoding="utf-8"))
                found.append(Served.of(source["repo_id"], source["revision"], torrent))
            except (ModelregError, OSError, ValueError, KeyError, TypeError) as exc:
                errors.append(CacheError(f"{folder}: skipped, not a usable cache entry: {exc}"))
        return found, errors

    def store(self, served: Served) -> TorrentStore:
        """The store of a served torrent, created (with its torrent and source) on first use."""
        key = store_key(served.torrent)
        store = self.stores.get(key)
        if store is None:
            folder = self.root / key
            if not (folder / "torrent").is_file():
                atomic_write_bytes(folder / "torrent", served.torrent.raw)
                source = {"repo_id": served.repo_id, "revision": served.revision}
                atomic_write_bytes(folder / "source.json", json.dumps(source).encode())
            store = self.stores[key] = TorrentStore(folder, served)
            self._adopt(store)
        return store

    def _adopt(self, store: TorrentStore) -> None:
        """Put the store's cached files in the LRU order by their modification time."""
        entries = []
        for entry in store.torrent.files:
            path = store.path_of(entry)
            if path.exists():
                entries.append((path.stat().st_mtime, (store.key, entry.path_str)))
        for mtime, key in sorted(entries):
            self._lru[key] = mtime
        self._lru = OrderedDict(sorted(self._lru.items(), key=lambda kv: kv[1]))
        self.metrics.cache_bytes = self.used

    def touch(self, store: TorrentStore, entry: FileEntry) -> None:
        """Mark a file as just used (its mtime follows, at most every 30 s, so the order survives restarts)."""
        key = (store.key, entry.path_str)
        now = time.time()
        last = self._lru.pop(key, None)
        self._lru[key] = now
        if last is None or now - last > _TOUCH_EVERY:
            path = store.path_of(entry)
            try:
                before = identity_of(path.stat())
                os.utime(path)
                store.checks.moved(entry.path_str, before, identity_of(path.stat()))
            except OSError:
                pass

    async def close(self) -> None:
        for store in list(self.stores.values()):
            await store.close()

    def pinned(self, store: TorrentStore, entry: FileEntry) -> _Pin:
        return _Pin(self._pins, (store.key, entry.path_str))

    async def make_room(self, incoming: int) -> None:
        """Evict least-recently-used, unpinned files until ``incoming`` more bytes fit under the cap."""
        if self.max_size is None:
            return
        for key in list(self._lru):
            if self.used + incoming <= self.max_size:
                break
            if self._pins.get(key):
                continue
            store = self.stores.get(key[0])
            entry = store.served.files.get(key[1]) if store else None
            self._lru.pop(key, None)
            if entry is None:
                continue
            store.clear_file(entry)
            await store.flush()
            try:
                store.path_of(entry).unlink()
            except FileNotFoundError:
                pass
            self.metrics.cache_evictions += 1
        self.metrics.cache_bytes = self.used


class _Pin:
    """Keeps a file from eviction while it is being filled or served."""

    def __init__(self, pins: dict, key: tuple[str, str]):
        self.pins, self.key = pins, key

    def __enter__(self) -> None:
        self.pins[self.key] = self.pins.get(self.key, 0) + 1

    def __exit__(self, *exc) -> None:
        self.pins[self.key] -= 1
        if not self.pins[self.key]:
            del self.pins[self.key]
