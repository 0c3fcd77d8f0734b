"""Property tests: whatever bytes arrive, the reader returns a Torrent or raises TorrentError, nothing else."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
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


# -- the two decoding paths: bencode2 for canonical bencode, the strict decoder for the rest ----------------


def _both(decode, strict, data: bytes):
    """What ``decode`` and ``strict`` make of ``data``: equal values, or the same BencodeError message."""
    results = []
    for fn in (decode, strict):
        try:
            results.append(fn(data))
        except bencoding.BencodeError as exc:
            results.append(("error", str(exc)))
    return results


_MUTATIONS = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(b"0123456789-:ldie+ \x00")), max_size=3)


@FUZZ
@given(value=_BVALUES, edits=_MUTATIONS, cut=st.integers(0, 3))
def test_both_decoders_read_the_same(value, edits, cut):
    """Whatever the bytes, canonical or not, decode() answers what the strict decoder alone answers."""
    data = bytearray(bencoding.encode(value))
    for pos, byte in edits:
        data[pos % len(data)] = byte
    data = bytes(data[: len(data) - cut])
    fast, strict = _both(bencoding.decode, bencoding.strict_decode, data)
    assert fast == strict
    if data.startswith(b"d"):
        fast, strict = _both(bencoding.decode_torrent, bencoding.strict_decode_torrent, data)
        assert fast == strict


@FUZZ
@given(info=_BVALUES, before=st.dictionaries(st.binary(max_size=6), _BVALUES, max_size=3),
       after=st.dictionaries(st.binary(min_size=5, max_size=12).map(lambda k: b"z" + k), _BVALUES, max_size=3))
def test_the_info_span_is_the_stored_bytes(info, before, after):
    """The fast path finds the info value's bytes from the keys around it; they are the strict decoder's."""
    data = bencoding.encode({**before, **after, b"info": info})
    top, span = bencoding.decode_torrent(data)
    assert (top, span) == bencoding.strict_decode_torrent(data)
    assert data[span[0] : span[1]] == bencoding.encode(info)


def test_canonical_bencode_takes_the_fast_path(monkeypatch):
    if not bencoding.FAST:
        pytest.skip("bencode2's compiled decoder is not installed on this platform")
    data = SEEDS[0]
    expected = bencoding.strict_decode_torrent(data)

    def refuse(data):
        raise AssertionError("the strict decoder was asked")

    monkeypatch.setattr(bencoding, "strict_decode_torrent", refuse)
    monkeypatch.setattr(bencoding, "strict_decode", refuse)
    assert bencoding.decode_torrent(data) == expected
    assert bencoding.decode(data) == expected[0]


def test_keys_out_of_order_are_read_by_the_strict_decoder():
    """bencode2 refuses unsorted or repeated keys; libtorrent reads them, and so does the reader."""
    data = b"d4:infod6:lengthi3e4:name1:a12:piece lengthi16384e6:pieces20:" + b"x" * 20 + b"e1:ai1e1:ai2ee"
    top, span = bencoding.decode_torrent(data)
    assert top[b"a"] == 2 and data[span[0] : span[1]].startswith(b"d6:length")
    assert bencoding.decode(b"d1:bi1e1:ai2ee") == {b"b": 1, b"a": 2}
    assert Torrent.from_bytes(data).name == "a"


@pytest.mark.parametrize("fast", [True, False])
def test_nesting_limit_is_the_same_on_both_paths(monkeypatch, fast):
    """bencode2 nests up to 4,096 deep; decode() still stops where the strict decoder does."""
    if fast and not bencoding.FAST:
        pytest.skip("bencode2's compiled decoder is not installed on this platform")
    monkeypatch.setattr(bencoding, "FAST", fast)
    limit = bencoding.MAX_DEPTH + 1  # lists and dicts at depths 0..MAX_DEPTH
    deepest = b"l" * limit + b"e" * limit
    too_deep = b"l" * (limit + 1) + b"e" * (limit + 1)
    if fast:
        import bencode2

        assert bencode2.bdecode(too_deep)  # so the limit below is decode()'s own check
    assert bencoding.decode(deepest) == bencoding.strict_decode(deepest)
    with pytest.raises(bencoding.BencodeError, match="nested too deeply"):
        bencoding.decode(too_deep)
    # in a torrent, the top-level dictionary's values count from depth 0
    assert bencoding.decode_torrent(b"d1:x" + deepest + b"e")[0][b"x"]
    with pytest.raises(bencoding.BencodeError, match="nested too deeply"):
        bencoding.decode_torrent(b"d1:x" + too_deep + b"e")
    nested_dicts = b"d1:k" * (limit + 1) + b"i1e" + b"e" * (limit + 1)
    with pytest.raises(bencoding.BencodeError, match="nested too deeply"):
        bencoding.decode(nested_dicts)
