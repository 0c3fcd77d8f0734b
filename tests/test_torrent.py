"""The torrent reader against the real corpus and against libtorrent, the reference implementation."""

from __future__ import annotations

import hashlib
import os

import pytest
from ltutil import lt_read, make_torrent

from modelreg.errors import TorrentError
from modelreg.torrent import bencode as bencoding
from modelreg.torrent.metainfo import Torrent, torrent_with_extras


def summary(t: Torrent) -> dict:
    return {
        "name": t.name,
        "infohash_v1": t.infohash_v1,
        "infohash_v2": t.infohash_v2,
        "total_size": t.total_size,
        "file_count": len(t.files),
        "piece_length": t.piece_length,
        "num_pieces": t.num_pieces,
        "webseeds": list(t.webseeds),
        "trackers": list(t.trackers),
    }


def test_corpus_matches_expected(corpus_dir, corpus_expected):
    assert len(corpus_expected) == 49
    for rel, expected in corpus_expected.items():
        t = Torrent.read(corpus_dir / rel)
        got = summary(t) | {"largest_file": t.largest_file.path_str}
        assert got == {k: expected[k] for k in got}, rel
        assert t.is_hybrid and t.meta_version == 2


def test_corpus_matches_libtorrent(corpus_dir, corpus_expected):
    for rel in list(corpus_expected)[::7]:
        data = (corpus_dir / rel).read_bytes()
        oracle = lt_read(data)
        t = Torrent.from_bytes(data)
        assert summary(t) | {"files": [(os.path.join(t.name, f.path_str), f.size) for f in t.files]} == {
            k: oracle[k] for k in (*summary(t), "files")
        }


def test_corpus_pad_files_align_every_file(corpus_dir, corpus_expected):
    t = Torrent.read(corpus_dir / next(iter(corpus_expected)))
    assert any(f.is_pad for f in t.layout)
    for f in t.files[:-1]:
        assert f.offset % t.piece_length == 0
    assert all(f.pieces_root is not None for f in t.files if f.size)


SHAPES = {
    "multi": {"m/a.bin": b"a" * 40000, "m/sub/b.txt": b"hello", "m/sub/deeper/c": os.urandom(16384)},
    "single": {"one.safetensors": os.urandom(50000)},
    "with-empty": {"e/x": b"x" * 100, "e/empty": b"", "e/z": b"z" * 20000},
}


@pytest.mark.parametrize("mode", ["hybrid", "v1", "v2"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_reader_equals_libtorrent(tmp_path, shape, mode):
    data = make_torrent(tmp_path, SHAPES[shape], mode=mode)
    t = Torrent.from_bytes(data)
    oracle = lt_read(data)
    assert summary(t) == {k: oracle[k] for k in summary(t)}
    prefix = "" if t.single_file else t.name + "/"
    assert [(prefix + f.path_str, f.size) for f in t.files] == [(p.replace(os.sep, "/"), s) for p, s in oracle["files"]]
    assert t.single_file == (shape == "single")
    assert (t.infohash_v1 is None) == (mode == "v2") and (t.infohash_v2 is None) == (mode == "v1")


def test_trackers_webseeds_private_equal_libtorrent(tmp_path):
    data = make_torrent(
        tmp_path,
        {"p/w.bin": b"w" * 70000, "p/r.txt": b"r"},
        webseeds=("http://seed.example/a/", "https://seed2.example/b/"),
        trackers=(("udp://t1.example:80/announce", 0), ("http://t2.example/announce", 0), ("http://t3.example/a", 1)),
        private=True,
    )
    t = Torrent.from_bytes(data)
    oracle = lt_read(data)
    assert t.private and oracle["private"]
    assert list(t.webseeds) == oracle["webseeds"] == ["http://seed.example/a/", "https://seed2.example/b/"]
    assert list(t.trackers) == oracle["trackers"]
    assert t.tracker_tiers == (("udp://t1.example:80/announce", "http://t2.example/announce"), ("http://t3.example/a",))


def test_url_list_as_string_and_httpseeds(tmp_path):
    top, _ = bencoding.decode_torrent(make_torrent(tmp_path, {"s.bin": b"s" * 1000}, mode="v1"))
    top[b"url-list"] = b"http://one.example/s.bin"
    top[b"httpseeds"] = [b"http://old.example/seed"]
    t = Torrent.from_bytes(bencoding.encode(top))
    assert t.webseeds == ("http://one.example/s.bin",)
    assert t.httpseeds == ("http://old.example/seed",)
    assert lt_read(bencoding.encode(top))["webseeds"][0] == "http://one.example/s.bin"


def test_infohash_uses_stored_bytes_not_a_reencoding(tmp_path):
    """An info dict with unsorted keys re-encodes differently; the infohash must hash it as stored."""
    info = b"d6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:" + b"\x01" * 20 + b"e"
    unsorted = b"d4:name1:x6:lengthi5e12:piece lengthi16384e6:pieces20:" + b"\x01" * 20 + b"e"
    for raw in (info, unsorted):
        t = Torrent.from_bytes(b"d4:info" + raw + b"e")
        assert t.infohash_v1 == hashlib.sha1(raw).hexdigest()
    import libtorrent as lt
    assert str(lt.torrent_info(b"d4:info" + unsorted + b"e").info_hashes().v1) == hashlib.sha1(unsorted).hexdigest()


def test_extras_keep_the_infohash(tmp_path):
    data = make_torrent(tmp_path, {"k/a": b"a" * 30000, "k/b": b"b"}, webseeds=("http://ws.example/",))
    t = Torrent.from_bytes(data)
    extended = torrent_with_extras(t, trackers=["udp://mirror.internal:6969/announce"], webseeds=["http://mirror.internal/seed/"])
    oracle = lt_read(extended)
    assert (oracle["infohash_v1"], oracle["infohash_v2"]) == (t.infohash_v1, t.infohash_v2)
    assert oracle["trackers"] == ["udp://mirror.internal:6969/announce"]
    assert oracle["webseeds"] == ["http://ws.example/", "http://mirror.internal/seed/"]
    assert torrent_with_extras(t) == data


GOOD = b"d4:infod6:lengthi5e4:name1:x12:piece lengthi16384e6:pieces20:" + b"\x01" * 20 + b"ee"


@pytest.mark.parametrize(
    "data, problem",
    [
        (b"", "empty"),
        (b"<html>not a torrent</html>", "bencode"),
        (GOOD[:-7], "truncated"),
        (b"d8:announce3:urle", "no 'info'"),
        (b"d4:infoli1eee", "not a dictionary"),
        (GOOD.replace(b"lengthi5e", b"lengthi-5e"), "negative"),
        (GOOD.replace(b"lengthi5e", b"length1:5"), "not an integer"),
        (GOOD.replace(b"lengthi5e", b"lengthi9999999999999999999e"), "absurd"),
        (GOOD.replace(b"4:name1:x", b"4:name2:.."), "unsafe name"),
        (GOOD.replace(b"4:name1:x", b"4:name1:\xff"), "UTF-8"),
        (GOOD.replace(b"6:pieces20:" + b"\x01" * 20, b"6:pieces19:" + b"\x01" * 19), "20-byte"),
        (GOOD.replace(b"6:pieces20:" + b"\x01" * 20, b"6:pieces40:" + b"\x01" * 40), "need 1"),
        (GOOD.replace(b"i16384e", b"i0e"), "out of range"),
        (GOOD + b"junk", "trailing"),
        (b"d4:infod5:filesld6:lengthi1e4:pathl2:..1:aeee4:name1:x12:piece lengthi16384e6:pieces20:"
         + b"\x01" * 20 + b"ee", "unsafe path component"),
        (b"d4:infod5:filesld6:lengthi1e4:pathl3:a/beee4:name1:x12:piece lengthi16384e6:pieces20:"
         + b"\x01" * 20 + b"ee", "unsafe path component"),
        (b"d4:infod12:meta versioni2e4:name1:x12:piece lengthi1000eee", "power of two"),
        (b"d4:infod12:meta versioni2e4:name1:x12:piece lengthi16384eee", "'file tree' is missing"),
        (b"d4:infod9:file treed1:ad0:d6:lengthi5eeee12:meta versioni2e4:name1:x12:piece lengthi16384eee",
         "'pieces root'"),
        (b"d4:infod9:file treed1:ad0:d6:lengthi5e11:pieces root32:" + b"\x00" * 32
         + b"eee12:meta versioni3e4:name1:x12:piece lengthi16384eee", "unsupported 'meta version'"),
        (b"d4:infod-3:abce", "bencode"),
    ],
)
def test_bad_input_names_file_and_problem(data, problem):
    with pytest.raises(TorrentError) as info:
        Torrent.from_bytes(data, source="registry/bad.torrent")
    assert info.value.path == "registry/bad.torrent"
    assert problem in str(info.value)
    assert str(info.value).startswith("registry/bad.torrent: ")


def test_unreadable_file(tmp_path):
    with pytest.raises(TorrentError, match="cannot read"):
        Torrent.read(tmp_path / "missing.torrent")


def test_hybrid_with_mismatched_v1_and_v2_files(tmp_path):
    top, _ = bencoding.decode_torrent(make_torrent(tmp_path, {"h/a": b"a" * 20000, "h/b": b"b" * 10}))
    real = [f for f in top[b"info"][b"files"] if b"attr" not in f]
    real[-1][b"length"] = 11
    top[b"info"][b"files"][-1][b"length"] -= 1  # the tail pad, so the piece count still fits
    with pytest.raises(TorrentError, match="do not list the same files"):
        Torrent.from_bytes(bencoding.encode(top))
