"""Streaming BitTorrent hashers and the one BEP 52 Merkle implementation.

* :class:`PieceHasher`: v1, SHA-1 of each ``piece_length`` piece of the v1 byte
  stream (files and pad files concatenated).
* :class:`FileTreeHasher`: v2 (BEP 52), per file, SHA-256 of each 16 KiB block,
  a Merkle root per piece (the piece layer) and the file's ``pieces root``.
* :func:`merkle_root` and :func:`block_hashes`, also used to check single pieces
  (:mod:`modelreg.torrent.pieces`).

:mod:`modelreg.torrent.engine` feeds these hashers from a source.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from modelreg.errors import CreateError
from modelreg.torrent.layout import BLOCK_SIZE

ZERO_HASH = bytes(32)

_sha1 = hashlib.sha1
_sha256 = hashlib.sha256


def merkle_root(leaves: Sequence[bytes], width: int, pad: bytes = ZERO_HASH) -> bytes:
    """Root of a SHA-256 Merkle tree over ``leaves`` padded with ``pad`` to ``width``.

    ``width`` is a power of two no smaller than ``len(leaves)``. Padding is done
    one level at a time, so a wide tree over few leaves costs only its height.
    """
    layer = list(leaves)
    while width > 1:
        if len(layer) % 2:
            layer.append(pad)
        layer = [_sha256(layer[i] + layer[i + 1]).digest() for i in range(0, len(layer), 2)]
        pad = _sha256(pad + pad).digest()
        width //= 2
    return layer[0] if layer else pad


def block_hashes(data: bytes | memoryview) -> list[bytes]:
    """The v2 leaves of ``data``: SHA-256 of each 16 KiB block (the last one may be shorter)."""
    view = memoryview(data)
    sha = _sha256
    return [sha(view[i : i + BLOCK_SIZE]).digest() for i in range(0, len(view), BLOCK_SIZE)]


def pad_root(blocks: int) -> bytes:
    """Root of a tree of ``blocks`` zero leaves: the filler of a piece layer."""
    return merkle_root((), blocks)


def next_power_of_two(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


class PieceHasher:
    """SHA-1 of each piece of a byte stream (BitTorrent v1)."""

    def __init__(self, piece_length: int) -> None:
        self.piece_length = piece_length
        self._hash = _sha1()
        self._filled = 0
        self._digests = bytearray()
        self._zeros = memoryview(bytes(min(piece_length, 4 * 1024 * 1024)))

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        size = len(view)
        pos = 0
        plen = self.piece_length
        while pos < size:
            if self._filled == 0:
                # Whole pieces straight from the buffer: one hashlib call each.
                whole = (size - pos) // plen * plen
                end = pos + whole
                while pos < end:
                    self._digests += _sha1(view[pos : pos + plen]).digest()
                    pos += plen
                if pos == size:
                    break
            take = min(plen - self._filled, size - pos)
            self._hash.update(view[pos : pos + take])
            self._filled += take
            pos += take
            if self._filled == plen:
                self._digests += self._hash.digest()
                self._hash = _sha1()
                self._filled = 0

    def zeros(self, size: int) -> None:
        """Feed ``size`` zero bytes (a pad file)."""
        while size > 0:
            take = min(size, len(self._zeros))
            self.update(self._zeros[:take])
            size -= take

    def finish(self) -> bytes:
        """The concatenated 20-byte digests, the last piece possibly short."""
        if self._filled:
            self._digests += self._hash.digest()
            self._hash = _sha1()
            self._filled = 0
        return bytes(self._digests)


@dataclass(frozen=True)
class FileHashes:
    """v2 hashes of one file: ``pieces_root`` (None when empty) and its piece layer.

    ``piece_layer`` holds the 32-byte root of each piece; a torrent lists it
    under ``piece layers`` only for files larger than one piece.
    """

    size: int
    pieces_root: bytes | None
    piece_layer: bytes

    @property
    def piece_hashes(self) -> list[bytes]:
        layer = self.piece_layer
        return [layer[i : i + 32] for i in range(0, len(layer), 32)]


class FileTreeHasher:
    """BEP 52 hashes of one file, fed in chunks of any size."""

    def __init__(self, piece_length: int, size: int) -> None:
        self.piece_length = piece_length
        self.size = size
        self._blocks_per_piece = piece_length // BLOCK_SIZE
        self._leaves: list[bytes] = []
        self._pieces: list[bytes] = []
        self._carry = bytearray()
        self._seen = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._seen += len(view)
        if self._carry:
            need = BLOCK_SIZE - len(self._carry)
            self._carry += view[:need]
            view = view[need:]
            if len(self._carry) < BLOCK_SIZE:
                return
            self._leaves.append(_sha256(self._carry).digest())
            self._carry.clear()
        full = len(view) - len(view) % BLOCK_SIZE
        self._leaves.extend(block_hashes(view[:full]))
        if full < len(view):
            self._carry += view[full:]
        self._close_pieces()

    def _close_pieces(self) -> None:
        per_piece = self._blocks_per_piece
        if len(self._leaves) < per_piece:
            return
        leaves = self._leaves
        done = len(leaves) - len(leaves) % per_piece
        for start in range(0, done, per_piece):
            self._pieces.append(merkle_root(leaves[start : start + per_piece], per_piece))
        del leaves[:done]

    def finish(self) -> FileHashes:
        """The file's Merkle root and piece layer, once all of its bytes were fed.

        Raises:
            CreateError: fewer or more bytes arrived than the file's size.
        """
        if self._seen != self.size:
            raise CreateError(f"got {self._seen} bytes for a file of {self.size} bytes")
        if self.size == 0:
            return FileHashes(0, None, b"")
        if self._carry:
            self._leaves.append(_sha256(self._carry).digest())
            self._carry.clear()
        per_piece = self._blocks_per_piece
        if self.size < self.piece_length:
            # A file smaller than a piece: its tree is only as wide as it needs.
            root = merkle_root(self._leaves, next_power_of_two(len(self._leaves)))
            self._leaves = []
            return FileHashes(self.size, root, root)
        if self._leaves:
            self._pieces.append(merkle_root(self._leaves, per_piece))
            self._leaves = []
        pieces = self._pieces
        root = merkle_root(pieces, next_power_of_two(len(pieces)), pad_root(per_piece))
        return FileHashes(self.size, root, b"".join(pieces))


class Sha256Checker:
    """SHA-256 of a whole file, compared with an expected hex digest."""

    def __init__(self, expected: str) -> None:
        self.expected = expected.lower()
        self._hash = _sha256()

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)

    def matches(self) -> bool:
        return self._hash.hexdigest() == self.expected
