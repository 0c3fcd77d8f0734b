"""What the HF API says about each file of a served torrent, and a check of cached bytes before they go out.

Hugging Face names a file by its ETag: the SHA-256 of an LFS file, the git blob id (SHA-1 of
``b"blob <size>\\0" + bytes``) of any other. The SHA-256 comes from the registry's metadata cache (HF's
own listing of the same commit, used only where its size matches the torrent's); a git blob id is
computed from the file's verified bytes, once per gateway run. A file the metadata does not describe
is described as a regular file (its git blob id), since nothing else can be vouched for.

:class:`CheckedFiles` also re-verifies a cached file's pieces against the torrent before the HF paths
serve it whenever the file changed on disk since it was last checked (size, inode or modification
time), so bytes altered behind the cache's back are forgotten and fetched again, never sent. The
cache's own writes (verified pieces) and LRU touches also change the modification time: after serving
a checked file its new stamp is accepted, and confirmed once the file system's timestamp granularity
has passed, so serving does not make the next request hash the file again. What this cannot see:
a change that keeps size and modification time (bit rot), or a write within the same clock tick as the
gateway's own; the cache's piece hashes are the full check for those.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import time
from dataclasses import dataclass

from modelreg.errors import UpstreamError
from modelreg.hf.metadata import ModelMeta
from modelreg.torrent.metainfo import FileEntry
from modelreg.webseed.cache import PieceCache, TorrentStore
from modelreg.webseed.fetcher import Fetcher

_RACY_NS = 2_000_000_000
_LFS_POINTER = "version https://git-lfs.github.com/spec/v1\noid sha256:{sha}\nsize {size}\n"


@dataclass(frozen=True)
class HfFile:
    """One file as HF's API lists it."""

    path: str
    size: int
    blob_id: str
    lfs_sha256: str | None

    @property
    def etag(self) -> str:
        return self.lfs_sha256 or self.blob_id

    def pointer_size(self) -> int:
        return len(lfs_pointer(self.lfs_sha256 or "", self.size))


def lfs_pointer(sha256: str, size: int) -> bytes:
    """The Git LFS pointer file git stores for an LFS file."""
    return _LFS_POINTER.format(sha=sha256, size=size).encode()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_hashes(meta: ModelMeta | None, entries: list[FileEntry]) -> dict[str, str]:
    """``{path: sha256}`` of the LFS files the metadata lists with the torrent's size."""
    sizes = {e.path_str: e.size for e in entries}
    out = {}
    for f in meta.files if meta else ():
        sha = f.lfs_sha256
        if isinstance(sha, str) and len(sha) == 64 and sizes.get(f.path) == f.size and _is_hex(sha):
            out[f.path] = sha.lower()
    return out


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)


class CheckedFiles:
    """Checked cached files and their git blob ids, for one gateway."""

    def __init__(self, cache: PieceCache, fetcher: Fetcher):
        self.cache = cache
        self.fetcher = fetcher
        self._stamps: dict[tuple[str, str], tuple[tuple[int, int, int] | None, int]] = {}
        self._blob_ids: dict[tuple[str, str], str] = {}
        self._checking: dict[tuple[str, str], asyncio.Future] = {}
        self._confirming: set[tuple[str, str]] = set()
        self._hashing: dict[tuple[str, str], asyncio.Future] = {}

    async def describe(self, store: TorrentStore, entry: FileEntry, lfs_sha256: str | None) -> HfFile:
        """The file as HF lists it; a regular file is fetched (verified) first if its blob id is not known.

        Raises :class:`~modelreg.errors.UpstreamError` when its bytes cannot be fetched or keep failing checks.
        """
        if lfs_sha256:
            return HfFile(entry.path_str, entry.size, git_blob_id(lfs_pointer(lfs_sha256, entry.size)), lfs_sha256)
        key = (store.key, entry.path_str)
        blob_id = self._blob_ids.get(key)
        if blob_id is None:  # concurrent requests for the same file share one fetch and one hash
            hashing = self._hashing.get(key)
            if hashing is None:
                hashing = self._hashing[key] = asyncio.ensure_future(self._hash_regular(store, entry))
                hashing.add_done_callback(lambda f: _settled(self._hashing, key, f))
            blob_id = await asyncio.shield(hashing)
            self._blob_ids[key] = blob_id
        return HfFile(entry.path_str, entry.size, blob_id, None)

    async def check(self, store: TorrentStore, entry: FileEntry) -> None:
        """Re-verify the file's cached pieces if it changed on disk since the last check; forget it if one fails.

        Concurrent requests for the same file share one check.
        """
        key = (store.key, entry.path_str)
        running = self._checking.get(key)
        if running is None:
            stamp = _stat(store, entry)
            if _trusted(self._stamps.get(key), stamp):
                return
            running = self._checking[key] = asyncio.ensure_future(self._check(store, entry, key, stamp))
            running.add_done_callback(lambda f: _settled(self._checking, key, f))
        await asyncio.shield(running)

    async def _check(self, store: TorrentStore, entry: FileEntry, key: tuple[str, str], stamp) -> None:
        with self.cache.pinned(store, entry):
            ok, _ = await asyncio.to_thread(_scan, store, entry, False)
            if not ok:
                self._stamps.pop(key, None)
                self._blob_ids.pop(key, None)
                store.clear_file(entry)
                await store.flush()
                self.cache.metrics.cache_bytes = self.cache.used
                return
        self._stamps[key] = (stamp, time.time_ns())

    def served(self, store: TorrentStore, entry: FileEntry) -> None:
        """After a file was served from checked (or freshly fetched, verified) pieces: accept its new stamp.

        The cache itself changes a file's modification time (new pieces, LRU touches); those changes are
        not tampering, so the file need not be hashed again on its next request.
        """
        key = (store.key, entry.path_str)
        if key not in self._stamps:
            return
        stamp = _stat(store, entry)
        self._stamps[key] = (stamp, time.time_ns())
        if key not in self._confirming:  # once past the racy window, a still unchanged file need no new hash
            self._confirming.add(key)
            asyncio.get_running_loop().call_later(_RACY_NS / 1e9 + 0.1, self._confirm, store, entry, key)

    def _confirm(self, store: TorrentStore, entry: FileEntry, key: tuple[str, str]) -> None:
        self._confirming.discard(key)
        known = self._stamps.get(key)
        stamp = _stat(store, entry)
        if known is not None and known[0] == stamp:
            self._stamps[key] = (stamp, time.time_ns())

    async def _hash_regular(self, store: TorrentStore, entry: FileEntry) -> str:
        pieces = store.map.pieces_of(entry)
        with self.cache.pinned(store, entry):
            for _ in range(3):
                await self.fetcher.ensure(store, pieces)
                ok, blob_id = await asyncio.to_thread(_scan, store, entry, True)
                if ok and blob_id:
                    self._stamps[(store.key, entry.path_str)] = (_stat(store, entry), time.time_ns())
                    return blob_id
                if not ok:
                    store.clear_file(entry)
                    await store.flush()
        raise UpstreamError(502, f"{entry.path_str}: its cached pieces keep failing their hash check")


def _settled(pending: dict, key: tuple[str, str], fut: asyncio.Future) -> None:
    """A shared task is done: forget it, and mark its error seen if every waiter has gone."""
    pending.pop(key, None)
    if not fut.cancelled():
        fut.exception()


def _trusted(known: tuple[tuple[int, int, int] | None, int] | None, stamp: tuple[int, int, int] | None) -> bool:
    """Whether a file checked before is unchanged: same inode, size and modification time, and that time
    older than the check by more than the file system's timestamp granularity (else a write in the same
    clock tick would go unseen: git's "racily clean" problem)."""
    if known is None or stamp is None or known[0] != stamp:
        return False
    return stamp[2] < known[1] - _RACY_NS


def _stat(store: TorrentStore, entry: FileEntry) -> tuple[int, int, int] | None:
    try:
        st = os.stat(store.path_of(entry))
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _scan(store: TorrentStore, entry: FileEntry, want_blob: bool) -> tuple[bool, str | None]:
    """Verify every cached piece of ``entry``; with ``want_blob`` (and all pieces present) also its git blob id.

    Returns ``(all present pieces verified, blob id or None)``. Runs in a worker thread: it only reads
    files, and hashlib releases the GIL on large buffers.
    """
    pmap = store.map
    blob = hashlib.sha1(b"blob %d\0" % entry.size) if want_blob else None
    for index in pmap.pieces_of(entry):
        if not store.has(index):
            blob = None
            continue
        start, end = pmap.piece_span(index)
        parts = []
        for seg in pmap.segments(start, end):
            if seg.entry.is_pad:
                parts.append(bytes(seg.length))
                continue
            data = _read(store, seg.entry, seg.file_offset, seg.length)
            if data is None:
                return False, None
            parts.append(data)
            if blob is not None and seg.entry.path_str == entry.path_str:
                blob.update(data)
        if not pmap.verify(index, b"".join(parts)):
            return False, None
    return True, blob.hexdigest() if blob is not None else None


def _read(store: TorrentStore, entry: FileEntry, offset: int, length: int) -> bytes | None:
    try:
        with open(store.path_of(entry), "rb") as f:
            f.seek(offset)
            data = f.read(length)
    except OSError:
        return None
    return data if len(data) == length else None
