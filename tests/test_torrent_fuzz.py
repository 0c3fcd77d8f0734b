"""Property tests: whatever bytes arrive, the reader returns a Torrent or raises TorrentError, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from ltutil import make_torrent

from modelreg.errors import TorrentError
from modelreg.torrent import bencode as bencoding
from modelreg.torrent.metainfo import Torrent


def _seeds() -> list[bytes]:
    with tempfile.TemporaryDirectory() as tmp:
        out = []
        for i, mode in enumerate(("hybrid", "v1", "v2")):
            out.append(make_torrent(Path(tmp) / f"m{i}", {"m/a.bin": b"a" * 40000, "m/d/b": b"b" * 9}, mode=mode,
                                    webseeds=("http://ws.example/",), trackers=(("http://t.example/a", 0),)))
            out.append(make_torrent(Path(tmp) / f"s{i}", {"s.bin": b"s" * 20000}, mode=mode))
        return out


SEEDS = _seeds()
FUZZ = settings(max_examples=300, deadline=None)


def read(data: bytes) -> None:
    try:
        t = Torrent.from_bytes(data, source="fuzz.torrent")
    except TorrentError as exc:
        assert exc.path == "fuzz.torrent"
        return
    assert t.total_size >= 0 and t.piece_length > 0
    assert all(not f.is_pad for f in t.files)


@FUZZ
@given(seed=st.sampled_from(SEEDS), cut=st.integers(min_value=0, max_value=2000))
def test_truncated(seed, cut):
    read(seed[: max(0, len(seed) - 1 - cut)])


@FUZZ
@given(seed=st.sampled_from(SEEDS), edits=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=8))
def test_bytes_flipped(seed, edits):
    data = bytearray(seed)
    for pos, value in edits:
        data[pos % len(data)] = value
    read(bytes(data))


@FUZZ
@given(seed=st.sampled_from(SEEDS), pos=st.integers(0, 10**6), junk=st.binary(min_size=1, max_size=40))
def test_bytes_inserted(seed, pos, junk):
    pos %= len(seed)
    read(seed[:pos] + junk + seed[pos:])


KEYS = [b"info", b"name", b"length", b"files", b"path", b"pieces", b"piece length", b"meta version",
        b"file tree", b"", b"pieces root", b"piece layers", b"attr", b"url-list", b"announce",
        b"announce-list", b"private", b"httpseeds", b"name.utf-8", b"path.utf-8"]
values = st.recursive(
    st.integers(-(2**64), 2**64) | st.binary(max_size=40) | st.sampled_from(KEYS),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=30,
)


@FUZZ
@given(info=st.dictionaries(st.sampled_from(KEYS), values, max_size=8), top=st.dictionaries(st.sampled_from(KEYS), values, max_size=4))
def test_structured_garbage(info, top):
    top[b"info"] = info
    read(bencoding.encode(top))


@FUZZ
@given(seed=st.sampled_from(SEEDS), data=st.data())
def test_values_replaced(seed, data):
    """Swap any value of a real torrent for a value of another type or range."""
    top, _ = bencoding.decode_torrent(seed)
    target = top[b"info"] if data.draw(st.booleans()) else top
    key = data.draw(st.sampled_from(sorted(target)))
    target[key] = data.draw(values)
    read(bencoding.encode(top))


def test_deep_nesting_is_an_error_not_a_crash():
    for data in (b"d4:info" + b"l" * 100000 + b"e" * 100000 + b"e", b"l" * 5000):
        read(data)


_BVALUES = st.recursive(
    st.integers(min_value=-(10**30), max_value=10**30) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.binary(max_size=12), inner, max_size=5),
    max_leaves=30,
)


@FUZZ
@given(value=_BVALUES)
def test_decoder_reads_what_the_encoder_wrote(value):
    """The decoder reads strings and integers inline in dictionaries and lists (for speed) and through
    its helpers elsewhere: every path must give back exactly what bencode.py encoded."""
    data = bencoding.encode(value)
    assert bencoding.decode(data) == value
    assert bencoding.decode(bencoding.encode([value, {b"k": value}])) == [value, {b"k": value}]
