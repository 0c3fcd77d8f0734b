"""Piece geometry and verification: which bytes make piece *i*, and whether they are the right ones.

Used by the gateway to check each piece it fetches or serves; the Merkle trees are
:func:`modelreg.torrent.hashing.merkle_root`, the implementation that makes and verifies torrents.

Pieces are numbered in the torrent's byte stream (``FileEntry.offset``, pad files included; for a
v2-only torrent every file starts on a piece boundary). A piece is checked against the torrent's
SHA-1 (v1 and hybrid torrents) or, for v2-only torrents, against the SHA-256 Merkle hashes of BEP 52:
the file's piece layer, or its ``pieces root`` when the file fits in one piece.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from dataclasses import dataclass

from modelreg.torrent.hashing import block_hashes, merkle_root, next_power_of_two
from modelreg.torrent.layout import BLOCK_SIZE
from modelreg.torrent.metainfo import FileEntry, Torrent


@dataclass(frozen=True)
class Segment:
    """``length`` bytes of ``entry`` from ``file_offset``: one piece's share of one file (or pad)."""

    entry: FileEntry
    file_offset: int
    length: int


class PieceMap:
    """A torrent's pieces in its byte stream, and their expected hashes."""

    def __init__(self, torrent: Torrent):
        self.torrent = torrent
        self.piece_length = torrent.piece_length
        self.entries = [e for e in torrent.layout if e.size]
        self._starts = [e.offset for e in self.entries]
        last = torrent.layout[-1]
        self.stream_size = last.offset + last.size
        self.num_pieces = math.ceil(self.stream_size / self.piece_length)

    def piece_span(self, index: int) -> tuple[int, int]:
        start = index * self.piece_length
        return start, min(start + self.piece_length, self.stream_size)

    def segments(self, start: int, end: int) -> list[Segment]:
        """The file (and pad) slices of stream bytes ``[start, end)``, in order."""
        out = []
        i = max(0, bisect.bisect_right(self._starts, start) - 1)
        while start < end and i < len(self.entries):
            e = self.entries[i]
            if e.offset + e.size > start:
                take = min(end, e.offset + e.size) - start
                out.append(Segment(e, start - e.offset, take))
                start += take
            i += 1
        return out

    def pieces_of(self, entry: FileEntry, start: int = 0, end: int | None = None) -> range:
        """Pieces holding bytes ``[start, end)`` of ``entry`` (all of it by default)."""
        end = entry.size if end is None else end
        if end <= start:
            return range(0)
        first = (entry.offset + start) // self.piece_length
        last = (entry.offset + end - 1) // self.piece_length
        return range(first, last + 1)

    def verify(self, index: int, data: bytes) -> bool:
        """Whether ``data`` is piece ``index`` exactly (length and hash)."""
        start, end = self.piece_span(index)
        if len(data) != end - start:
            return False
        t = self.torrent
        if t.pieces:
            return hashlib.sha1(data).digest() == t.pieces[index * 20 : index * 20 + 20]
        return self._verify_v2(start, data)

    def _verify_v2(self, start: int, data: bytes) -> bool:
        """A v2 piece is one file's bytes (the pad after a file's tail is not hashed, only zeros)."""
        files = [s for s in self.segments(start, start + len(data)) if not s.entry.is_pad]
        if len(files) != 1 or files[0].entry.pieces_root is None or any(data[files[0].length :]):
            return False
        seg, entry = files[0], files[0].entry
        data = data[: seg.length]
        if entry.size <= self.piece_length:
            return merkle_root(block_hashes(data), next_power_of_two(math.ceil(entry.size / BLOCK_SIZE))) \
                == entry.pieces_root
        layer = self.torrent.piece_layers.get(entry.pieces_root)
        if layer is None:
            return False
        j = seg.file_offset // self.piece_length
        return merkle_root(block_hashes(data), self.piece_length // BLOCK_SIZE) == layer[j * 32 : j * 32 + 32]
