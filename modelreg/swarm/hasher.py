"""Hash downloaded files while the rest of the torrent still downloads, behind libtorrent's write fence.

libtorrent checks a piece from memory and writes it behind; a file it reports complete may still have
writes queued. So completed files wait for a ``flush_cache`` fence (its ``cache_flushed_alert`` comes
after every queued write) and are then hashed on two threads, from the page cache, while the download
goes on. The etag needs to know whether the hub keeps the file in LFS: from the registry's metadata, else
from the repository's ``.gitattributes`` (read once it is on disk), else the hub's default patterns; while
that is unknown both hashes are computed.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelreg.swarm import hfcache
from modelreg.swarm.session import flush_writes

GITATTRIBUTES = ".gitattributes"


class Hasher:
    """Hashes of the wanted files, by repository path; :meth:`etags` waits for them all."""

    def __init__(self, handle: Any, files: dict[int, tuple[str, Path, int]], lfs_sha256: dict[str, str]):
        self.handle = handle
        self.files = files  # layout index -> (repository path, path on disk, size)
        self.lfs_sha256 = lfs_sha256
        self.patterns: tuple[str, ...] | None = None
        if lfs_sha256 or GITATTRIBUTES not in {rel for rel, _, _ in files.values()}:
            self.patterns = hfcache.DEFAULT_LFS_PATTERNS
        self.pool = ThreadPoolExecutor(2, thread_name_prefix="modelreg-hash")
        self.futures: dict[str, Future] = {}
        self.pending: list[int] = []
        self.fenced: list[int] = []
        self.flushing = False

    def is_lfs(self, rel: str, size: int) -> bool | None:
        """Whether the hub keeps the file in LFS (None: not known yet)."""
        if self.lfs_sha256:
            return rel in self.lfs_sha256
        if self.patterns is None:
            return None
        return hfcache.looks_lfs(rel, size, self.patterns)

    def completed(self, index: int) -> None:
        """libtorrent reported file ``index`` complete (``file_completed_alert``)."""
        if (index in self.files and index not in self.pending and index not in self.fenced
                and self.files[index][0] not in self.futures):
            self.pending.append(index)
        self._fence()

    def flushed(self) -> None:
        """The fence asked for last has passed (``cache_flushed_alert``): hash what was waiting for it."""
        self.flushing = False
        batch, self.fenced = self.fenced, []
        for index in batch:
            rel, path, _ = self.files[index]
            if rel == GITATTRIBUTES and self.patterns is None:
                with contextlib.suppress(OSError, UnicodeDecodeError):
                    self.patterns = hfcache.lfs_patterns(path.read_text(encoding="utf-8"))
        for index in batch:
            self._submit(index)
        self._fence()

    def forget(self, indices: list[int]) -> None:
        """Files to be hashed again once libtorrent reports them complete again (they were downloaded
        again); a hash still running for one is left to finish, unused."""
        for index in indices:
            self.futures.pop(self.files[index][0], None)

    @property
    def idle(self) -> bool:
        """No file waits for a fence and none is in flight."""
        return not self.pending and not self.flushing

    def _fence(self) -> None:
        if self.pending and not self.flushing:
            self.fenced, self.pending = self.pending, []
            self.flushing = True
            flush_writes(self.handle)

    def _submit(self, index: int) -> None:
        rel, path, size = self.files[index]
        if rel in self.futures:
            return
        lfs = self.is_lfs(rel, size)
        self.futures[rel] = self.pool.submit(hfcache.file_hashes, path, lfs is not False, lfs is not True)

    def etags(self) -> dict[str, str]:
        """Every file's etag (call after the final fence): hashes files not hashed yet, waits for all.

        Raises:
            OSError: a file cannot be read.
        """
        if self.patterns is None:
            gitattributes = next(p for rel, p, _ in self.files.values() if rel == GITATTRIBUTES)
            try:
                self.patterns = hfcache.lfs_patterns(gitattributes.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError):
                self.patterns = hfcache.DEFAULT_LFS_PATTERNS
        for index in self.files:
            self._submit(index)
        out = {}
        for rel, path, size in self.files.values():
            sha256, sha1 = self.futures[rel].result()
            lfs = self.is_lfs(rel, size)
            if (sha256 if lfs else sha1) is None:  # hashed before the patterns were known, the other way
                sha256, sha1 = hfcache.file_hashes(path, lfs, not lfs)
            out[rel] = sha256 if lfs else sha1
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
