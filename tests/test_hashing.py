"""The streaming hashers: independent of chunking, and equal to the BEP 52 definitions."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from modelreg.torrent.hashing import FileTreeHasher, PieceHasher, merkle_root, next_power_of_two, pad_root

BLOCK = 16 * 1024


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def naive_root(leaves: list[bytes], width: int, pad: bytes = bytes(32)) -> bytes:
    """The textbook tree: pad the bottom layer to ``width``, then hash pairs up to the root."""
    layer = leaves + [pad] * (width - len(leaves))
    while len(layer) > 1:
        layer = [sha256(layer[i] + layer[i + 1]) for i in range(0, len(layer), 2)]
    return layer[0]


def naive_file_hashes(data: bytes, piece_length: int) -> tuple[bytes, list[bytes]]:
    """pieces root and piece layer of ``data`` computed straight from BEP 52."""
    leaves = [sha256(data[i : i + BLOCK]) for i in range(0, len(data), BLOCK)]
    per_piece = piece_length // BLOCK
    if len(data) < piece_length:
        root = naive_root(leaves, next_power_of_two(len(leaves)))
        return root, [root]
    pieces = [naive_root(leaves[i : i + per_piece], per_piece) for i in range(0, len(leaves), per_piece)]
    zero_piece = naive_root([], per_piece)
    return naive_root(pieces, next_power_of_two(len(pieces)), zero_piece), pieces


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def test_merkle_root_pads_with_zero_hashes() -> None:
    a, b, c = sha256(b"a"), sha256(b"b"), sha256(b"c")
    assert merkle_root([a], 1) == a
    assert merkle_root([a, b], 2) == sha256(a + b)
    assert merkle_root([a, b, c], 4) == sha256(sha256(a + b) + sha256(c + bytes(32)))
    assert merkle_root([a], 8) == naive_root([a], 8)
    assert pad_root(4) == naive_root([], 4)


@settings(max_examples=40, deadline=None)
@given(
    size=st.integers(0, 5 * BLOCK + 3),
    piece_blocks=st.sampled_from([1, 2, 4]),
    cuts=st.lists(st.integers(0, 10**6), max_size=6),
)
def test_file_tree_matches_bep52_for_any_chunking(size: int, piece_blocks: int, cuts: list[int]) -> None:
    data = bytes((i * 31 + size) % 251 for i in range(size))
    piece_length = piece_blocks * BLOCK
    hasher = FileTreeHasher(piece_length, size)
    for chunk in split(data, cuts):
        hasher.update(chunk)
    result = hasher.finish()
    if size == 0:
        assert result.pieces_root is None and result.piece_layer == b""
        return
    root, pieces = naive_file_hashes(data, piece_length)
    assert result.pieces_root == root
    assert result.piece_hashes == pieces


@settings(max_examples=40, deadline=None)
@given(size=st.integers(1, 70_000), pads=st.integers(0, 3), cuts=st.lists(st.integers(0, 10**6), max_size=6))
def test_piece_hasher_is_sha1_of_each_piece(size: int, pads: int, cuts: list[int]) -> None:
    piece_length = BLOCK
    data = bytes((i * 7) % 256 for i in range(size))
    hasher = PieceHasher(piece_length)
    for chunk in split(data, cuts):
        hasher.update(chunk)
    hasher.zeros(pads * 1000)
    stream = data + bytes(pads * 1000)
    expected = b"".join(
        hashlib.sha1(stream[i : i + piece_length]).digest() for i in range(0, len(stream), piece_length)
    )
    assert hasher.finish() == expected
