"""Which cached pieces were checked since their file last changed on disk.

The cache stores a piece only after its hash matched, but the bytes then sit on disk, where a failing
disk, an operator or another process can alter them, also while the gateway is stopped. So a piece read
from disk for serving is hashed again unless it was checked (or written by the cache) while its file had
the identity it has now: device, inode, size, modification and change time. The change time moves with
every write, truncation, rename-replace or ``utime`` and cannot be set back by anyone, so a file put back
with its old ``mtime`` still counts as changed.

Nothing is remembered across restarts: after a start every piece is checked on its first read. The
cache's own writes and LRU touches move a file's identity forward without forgetting what was checked
(:meth:`CheckedPieces.moved`); any other change forgets it. The cost is one ``stat`` per file request and
one hash per piece per process lifetime (BENCHMARKS.md, "Checking cached pieces").
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from modelreg.fsutil import Identity, identity_of
from modelreg.torrent.metainfo import FileEntry


class CheckedPieces:
    """For each file of one torrent: its identity when last looked at and the pieces checked under it."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[Identity, set[int]]] = {}

    def unchecked(self, path: str, ident: Identity, pieces: Iterable[int]) -> list[int]:
        """Of ``pieces`` (touching file ``path``, whose identity is now ``ident``), those not checked since."""
        seen = self._files.get(path)
        if seen is None or seen[0] != ident:
            seen = self._files[path] = (ident, set())
        checked = seen[1]
        return [i for i in pieces if i not in checked]

    def checked(self, path: str, ident: Identity, index: int) -> None:
        """Piece ``index`` matched its hash when read from ``path`` having identity ``ident``."""
        seen = self._files.get(path)
        if seen is not None and seen[0] == ident:
            seen[1].add(index)

    def moved(self, path: str, before: Identity | None, after: Identity, index: int | None = None) -> None:
        """The cache itself changed ``path`` from ``before`` to ``after`` (writing verified piece ``index``,
        or touching it): what was checked stays checked, unless the file had changed behind its back."""
        seen = self._files.get(path)
        kept = seen[1] if seen is not None and seen[0] == before else set()
        if index is not None:
            kept.add(index)
        self._files[path] = (after, kept)

    def forget(self, path: str) -> None:
        self._files.pop(path, None)


def check_pieces(store, pieces: list[int]) -> list[tuple[int, bool, list[tuple[FileEntry, Identity]]]]:
    """Read pieces of a :class:`~modelreg.webseed.cache.TorrentStore` back from disk and hash them.

    Safe in a worker thread (reads files, changes no state). Per piece: whether its bytes on disk match
    its hash, and the identity of each file read (for :meth:`TorrentStore.apply_checks`).
    """
    buffer = memoryview(bytearray(store.map.piece_length))
    results = []
    for index in pieces:
        start, end = store.map.piece_span(index)
        view = buffer[: end - start]
        seen: list[tuple[FileEntry, Identity]] = []
        ok = True
        pos = 0
        for seg in store.map.segments(start, end):
            part = view[pos : pos + seg.length]
            pos += seg.length
            if seg.entry.is_pad:
                part[:] = bytes(seg.length)
                continue
            try:
                fd = os.open(store.path_of(seg.entry), os.O_RDONLY)
            except OSError:
                ok = False
                break
            try:
                seen.append((seg.entry, identity_of(os.fstat(fd))))
                done = 0
                while done < seg.length:
                    n = os.preadv(fd, [part[done:]], seg.file_offset + done)
                    if n <= 0:
                        break
                    done += n
                ok = done == seg.length
            finally:
                os.close(fd)
            if not ok:
                break
        results.append((index, ok and store.map.verify(index, view), seen))
    return results
