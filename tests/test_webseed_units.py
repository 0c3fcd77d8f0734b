"""The gateway's pieces in isolation: Range parsing, the redirect allow-list, piece geometry and hashes."""

from __future__ import annotations

import http.client

import pytest
from fakehub import FakeHub
from webseed_harness import make_files, make_model, make_torrent, start_gateway

from modelreg.errors import ConfigError
from modelreg.torrent.pieces import PieceMap
from modelreg.units import parse_size
from modelreg.webseed.cache import PieceCache
from modelreg.webseed.fetcher import _MAX_PARTS, _verify_and_write
from modelreg.webseed.hosts import RedirectPolicy
from modelreg.webseed.metrics import Metrics
from modelreg.webseed.ranges import RangeNotSatisfiable, parse_range
from modelreg.webseed.routes import Served
from modelreg.webseed.settings import GatewaySettings
from modelreg.webseed.upstream import DEFAULT_CDN_TTL, _reuse_until


@pytest.mark.parametrize(
    "header, expected",
    [
        (None, None),
        ("bytes=0-9", (0, 10)),
        ("bytes=5-", (5, 100)),
        ("bytes=-10", (90, 100)),
        ("bytes=-1000", (0, 100)),
        ("bytes=90-500", (90, 100)),
        (" bytes = 1 - 2 ", (1, 3)),
        # RFC 9110 §14.1.2: an end past the file is clamped to it, however many digits it has (issue 15.18).
        ("bytes=90-" + "9" * 20, (90, 100)),
        ("bytes=0-" + "1" * 400, (0, 100)),
        ("bytes=-" + "9" * 25, (0, 100)),
        ("bytes=" + "0" * 30 + "7-" + "0" * 30 + "9", (7, 10)),
    ],
)
def test_parse_range_accepts_one_range(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    "header", ["bytes=", "bytes=-", "bytes=10-5", "bytes=100-", "bytes=-0", "bytes=0-1,3-4", "lines=0-1",
               "bytes=1e3-", "bytes=" + "9" * 30 + "-",
               "bytes=" + "9" * 20 + "-" + "9" * 21, "bytes=5-2\n"]
)
def test_parse_range_refuses_everything_else(header):
    with pytest.raises(RangeNotSatisfiable) as info:
        parse_range(header, 100)
    assert info.value.status == 416


def test_redirect_policy_for_the_public_hub():
    policy = RedirectPolicy.for_endpoint("https://huggingface.co")
    for url in ("https://cdn-lfs.hf.co/repos/x?Expires=1", "https://cas-bridge.xethub.hf.co/x",
                "https://cdn-lfs-us-1.hf.co/x", "https://huggingface.co/a/b/resolve/c/d"):
        assert policy.allows(url), url
    for url in ("http://cdn-lfs.hf.co/x", "https://evil.example/x", "https://hf.co.evil.example/x",
                "https://evilhf.co/x", "https://user:pw@cdn-lfs.hf.co/x", "https://cdn-lfs.hf.co:8443/x",
                "javascript:alert(1)", "//cdn-lfs.hf.co/x", "https://[::1/"):
        assert not policy.allows(url), url


def test_redirect_policy_for_a_private_endpoint_and_extra_hosts():
    policy = RedirectPolicy.for_endpoint("http://127.0.0.1:8000", ("127.0.0.1:9000", "*.cdn.example"))
    assert policy.allows("http://127.0.0.1:8000/x") and policy.allows("http://127.0.0.1:9000/x")
    assert policy.allows("https://a.cdn.example/x") and not policy.allows("https://cdn.example/x")
    assert not policy.allows("http://127.0.0.1:9001/x") and not policy.allows("https://cdn-lfs.hf.co/x")
    with pytest.raises(ConfigError):
        RedirectPolicy.for_endpoint("https://huggingface.co", ("http://x/y",))
    with pytest.raises(ConfigError):
        RedirectPolicy.for_endpoint("https://huggingface.co", ("a.*.example",))


def test_signed_url_reuse_ends_before_expiry():
    now = 1_700_000_000.0
    assert _reuse_until(f"https://cdn/x?Expires={int(now) + 3600}", now) == now + 3600 - 60
    assert _reuse_until(f"https://cdn/x?Expires={int(now) + 20}", now) == now + 20 - 5
    amz = "https://cdn/x?X-Amz-Date=20231114T221320Z&X-Amz-Expires=600"
    assert _reuse_until(amz, now) == pytest.approx(now + 600 - 60)
    assert _reuse_until("https://cdn/x", now) == now + DEFAULT_CDN_TTL


def test_parse_size_and_settings():
    assert parse_size("1024") == 1024 and parse_size("2K") == 2048 and parse_size("1.5GiB") == 3 << 29
    with pytest.raises(ConfigError):
        parse_size("big")
    with pytest.raises(ConfigError):
        GatewaySettings(mode="proxy")


@pytest.mark.parametrize("maker", ["libtorrent", "modelreg"])
@pytest.mark.parametrize("mode", ["hybrid", "v1", "v2"])
def test_piece_hashes_match_libtorrent_torrents(mode, maker, tmp_path):
    files = make_files({"a.bin": 40_000, "b/c.bin": 16_384, "d.bin": 100_001, "e.txt": 5}, seed=3)
    torrent = make_torrent(tmp_path, "Name", files, 32 * 1024, mode, maker)
    pmap = PieceMap(torrent)
    stream = bytearray(pmap.stream_size)
    for entry in torrent.files:
        stream[entry.offset : entry.offset + entry.size] = files[entry.path_str]
    assert pmap.num_pieces == torrent.num_pieces
    for i in range(pmap.num_pieces):
        start, end = pmap.piece_span(i)
        piece = bytes(stream[start:end])
        assert pmap.verify(i, piece), i
        assert not pmap.verify(i, piece[:-1] + bytes([piece[-1] ^ 1])), i
        assert not pmap.verify(i, piece[:-1])
        assert sum(s.length for s in pmap.segments(start, end)) == end - start


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_mirror_serves_v1_only_and_v2_only_torrents(mode, tmp_path):
    """v1: pieces span files (no pad files); v2: every file on piece boundaries, Merkle-checked."""
    files = make_files({"config.json": 999, "model.safetensors": 150_000, "tok.json": 70_001}, seed=5)
    with FakeHub() as hub:
        model = make_model(hub, tmp_path, "Org/Name", files, piece_length=32 * 1024, mode=mode)
        hub.inject("cdn", corrupt=True, times=1)
        with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
            for path, data in files.items():
                conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
                conn.request("GET", f"/v1/{model.repo_id}/{model.revision}/Name/{path}")
                resp = conn.getresponse()
                assert (resp.status, resp.read() == data) == (200, True), path
                conn.close()
            assert gw.gateway.metrics.pieces_corrupt == 1


@pytest.mark.parametrize("mode", ["v1", "v2", "hybrid"])
def test_pieces_are_verified_and_written_from_the_received_parts(mode, tmp_path):
    """The fill hands each piece over as the received buffers (uneven, some empty, sometimes more than one
    pwritev takes): a piece is written, across file boundaries, only if it is exactly right."""
    files = make_files({"a.bin": 40_000, "b/c.bin": 16_384, "d.bin": 100_001, "e.txt": 5}, seed=7)
    torrent = make_torrent(tmp_path, "Name", files, 32 * 1024, mode)
    store = PieceCache(tmp_path / "cache", Metrics()).store(Served.of("Org/Name", "c" * 40, torrent))
    pmap = store.map
    stream = bytearray(pmap.stream_size)
    for entry in torrent.files:
        stream[entry.offset : entry.offset + entry.size] = files[entry.path_str]
    store.prepare_files([e for e in torrent.files if not e.is_pad])
    for i in range(pmap.num_pieces):
        start, end = pmap.piece_span(i)
        piece = bytes(stream[start:end])
        step = 1 + len(piece) // (2 * _MAX_PARTS) if i % 2 else 7_919  # odd pieces: too many parts to write as is
        parts = [memoryview(piece[k : k + step]) for k in range(0, len(piece), step)]
        parts.insert(1, memoryview(b""))
        flipped = bytearray(parts[-1])
        flipped[-1] ^= 1
        assert _verify_and_write(store, i, [*parts[:-1], memoryview(bytes(flipped))]) is None, i
        assert _verify_and_write(store, i, parts[:-1]) is None, i
        if i == 0:  # nothing of a rejected piece reached the disk
            assert (store.root / "data" / "a.bin").read_bytes() == bytes(40_000)
        moves = _verify_and_write(store, i, parts)
        assert moves and {m[0].path_str for m in moves} == {s.entry.path_str for s in store.file_segments(i)}, i
        store.mark_stored(i, moves)
    for path, data in files.items():
        assert (store.root / "data" / path).read_bytes() == data, path
    assert store.stored_bytes == sum(map(len, files.values()))


def test_a_closed_fetcher_starts_no_fill_and_says_the_gateway_is_shutting_down(tmp_path):
    """After close (its hashing pool is gone) a request for missing pieces gets a 503, nothing is fetched or
    written; pieces already held are still answered."""
    import asyncio

    from modelreg.errors import UpstreamError
    from modelreg.webseed.fetcher import Fetcher

    files = make_files({"a.bin": 70_000}, seed=3)
    torrent = make_torrent(tmp_path, "Name", files, 32 * 1024, "hybrid")
    cache = PieceCache(tmp_path / "cache", Metrics())
    store = cache.store(Served.of("Org/Name", "c" * 40, torrent))
    store.prepare_files([e for e in torrent.files if not e.is_pad])
    store.write_piece(0, files["a.bin"][: 32 * 1024])

    class NoUpstream:
        def iter_range(self, *args):
            raise AssertionError("a closed fetcher asked upstream for bytes")

    async def run() -> None:
        fetcher = Fetcher(cache, NoUpstream(), Metrics())
        await fetcher.close()
        await fetcher.ensure(store, [0])
        with pytest.raises(UpstreamError) as err:
            await fetcher.ensure(store, range(store.map.num_pieces))
        assert err.value.status == 503 and "shutting down" in str(err.value)
        await store.close()

    asyncio.run(run())
    assert [store.has(i) for i in range(store.map.num_pieces)] == [True, False, False]
    assert (store.root / "data" / "a.bin").read_bytes()[32 * 1024 :] == bytes(70_000 - 32 * 1024)


def test_the_gateway_does_not_import_the_renderer():
    import subprocess
    import sys

    code = "import sys, modelreg.commands.webseed, modelreg.commands.mirror; " \
           "print(sorted(m for m in ('modelreg.render', 'modelreg.site.build', 'jinja2') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
