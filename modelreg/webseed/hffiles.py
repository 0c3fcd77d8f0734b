"""What the HF API says about each file of a served torrent: its size, git blob id and LFS SHA-256.

Hugging Face names a file by its ETag: the SHA-256 of an LFS file, the git blob id (SHA-1 of
``b"blob <size>\\0" + bytes``) of any other. The SHA-256 comes from the registry's metadata cache (HF's
own listing of the same commit, used only where its size matches the torrent's); a git blob id is
computed from the file's verified bytes, once per gateway run. A file the metadata does not describe
is described as a regular file (its git blob id), since nothing else can be vouched for.

Cached bytes served through the HF paths are checked like every other answer of the mirror: the
fetcher re-verifies a file's pieces on first read after a start and whenever the file changed on disk
(``webseed.diskcheck``), so this module keeps no check of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from modelreg.errors import UpstreamError
from modelreg.hf.metadata import ModelMeta
from modelreg.torrent.metainfo import FileEntry
from modelreg.webseed.cache import PieceCache, TorrentStore
from modelreg.webseed.fetcher import Fetcher

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
    """The HF description of cached files (git blob ids computed once from verified bytes), for one gateway."""

    def __init__(self, cache: PieceCache, fetcher: Fetcher):
        self.cache = cache
        self.fetcher = fetcher
        self._blob_ids: dict[tuple[str, str], str] = {}
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

    async def _hash_regular(self, store: TorrentStore, entry: FileEntry) -> str:
        pieces = store.map.pieces_of(entry)
        with self.cache.pinned(store, entry):
            for _ in range(3):
                await self.fetcher.ensure(store, pieces)
                ok, blob_id = await asyncio.to_thread(_scan, store, entry)
                if ok and blob_id:
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


def _scan(store: TorrentStore, entry: FileEntry) -> tuple[bool, str | None]:
    """Verify every cached piece of ``entry`` and, when all its pieces are present, compute its git blob id.

    Returns ``(all present pieces verified, blob id or None)``. Runs in a worker thread: it only reads
    files, and hashlib releases the GIL on large buffers.
    """
    pmap = store.map
    blob = hashlib.sha1(b"blob %d\0" % entry.size)
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
