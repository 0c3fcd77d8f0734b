"""End to end: real BitTorrent clients (libtorrent, aria2c) download a hybrid torrent whose only source is
the gateway's web seed, backed by the fake hub on 127.0.0.1, in both modes; plus the real corpus layout."""

from __future__ import annotations

import http.client
import shutil
from urllib.parse import quote, urlsplit

import pytest
from fakehub import fake_hub
from webseed_harness import (
    Model,
    aria2c_download,
    downloaded,
    libtorrent_download,
    make_files,
    make_model,
    start_gateway,
)

from modelreg.registry.catalog import load_catalog
from modelreg.torrent.create import LocalSource, create_torrent
from modelreg.torrent.metainfo import Torrent
from modelreg.webseed import ServeSet

pytestmark = pytest.mark.skipif(shutil.which("aria2c") is None, reason="aria2c is not installed")

FILES = {
    "config.json": 2_345,
    "tokenizer.json": 1_500_001,
    "model-00001-of-00002.safetensors": 3_000_000,
    "model-00002-of-00002.safetensors": 2_000_123,
    "docs/README.md": 4_321,
}
CLIENTS = {"libtorrent": libtorrent_download, "aria2c": aria2c_download}


@pytest.fixture
def hub():
    yield from fake_hub()


@pytest.fixture
def model(hub, tmp_path):
    return make_model(hub, tmp_path, "TestOrg/Tiny-Model", make_files(FILES), piece_length=256 * 1024)


@pytest.mark.parametrize("client", CLIENTS)
def test_redirect_mode_download(client, hub, model, tmp_path):
    # The gateway's own calls to HF fail once each and are retried; the client never sees it.
    api_fault = hub.inject("api", 500, times=1)
    resolve_fault = hub.inject("resolve", 500, path=r"safetensors$", times=1)
    with start_gateway(model, "redirect", hub) as gw:
        CLIENTS[client](model.torrent_bytes(gw.url), tmp_path / "dl")
        metrics = gw.gateway.metrics
    assert downloaded(tmp_path / "dl", model) == model.files
    assert api_fault.hits == 1 and resolve_fault.hits == 1
    assert metrics.redirects["cdn"] > 0 and metrics.redirects["resolve"] > 0
    assert metrics.upstream_retries >= 2
    # LFS bytes came from the CDN, not through the gateway.
    assert hub.find_requests(origin="cdn", method="GET")


@pytest.mark.parametrize("client", CLIENTS)
def test_mirror_mode_download_then_hub_offline(client, hub, model, tmp_path):
    cdn_fault = hub.inject("cdn", 500, times=1)
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        torrent = model.torrent_bytes(gw.url)
        CLIENTS[client](torrent, tmp_path / "first")
        assert downloaded(tmp_path / "first", model) == model.files
        assert cdn_fault.hits == 1 and gw.gateway.metrics.upstream_retries >= 1
        fetched = gw.gateway.metrics.pieces_fetched
        with hub.offline():
            CLIENTS[client](torrent, tmp_path / "second")
        assert downloaded(tmp_path / "second", model) == model.files
        assert gw.gateway.metrics.pieces_fetched == fetched
        assert gw.gateway.metrics.cache_hits > 0


def test_single_file_torrent_both_clients(hub, tmp_path):
    """A web seed ending in '/' gets the torrent's name appended, by both clients."""
    data = make_files({"x": 700_001})["x"]
    repo = hub.add_repo("TestOrg/Single", {"weights.gguf": data})
    (tmp_path / "weights.gguf").write_bytes(data)
    torrent = Torrent.from_bytes(create_torrent(LocalSource.open(tmp_path / "weights.gguf"), piece_length=64 * 1024))
    assert torrent.single_file
    model = Model("TestOrg/Single", repo.sha, {"weights.gguf": data}, torrent)
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        for name, client in CLIENTS.items():
            client(model.torrent_bytes(gw.url), tmp_path / name)
            assert (tmp_path / name / "weights.gguf").read_bytes() == data


def test_corpus_routes_map_to_hf_resolve_urls(corpus_dir, hub, tmp_path):
    """Real registry torrents: the URLs clients form from their web seed reach the right HF file."""
    catalog = load_catalog(corpus_dir / "models")
    models = [m for m in catalog.models if m.pinned][:4]
    assert models
    for m in models:  # stand-in repos at the same ids, revisions and paths (tiny contents)
        hub.add_repo(m.repo_id, {f.path_str: b"x" for f in m.torrent.files}, sha=m.revision)
    serve = ServeSet.build(catalog)
    with start_gateway(serve, "redirect", hub) as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        for m in models:
            seed = urlsplit(m.torrent.webseeds[0]).path
            assert seed == f"/v1/{m.repo_id}/{m.revision}/"
            for entry in m.torrent.layout[:6]:
                path = f"{seed}{quote(m.torrent.name)}/{quote(entry.path_str)}"
                conn.request("HEAD", path)
                resp = conn.getresponse()
                resp.read()
                if entry.is_pad:
                    assert resp.status == 200 and int(resp.headers["Content-Length"]) == entry.size
                    continue
                assert resp.status == 302, (path, resp.status)
                location = resp.headers["Location"]
                if location.startswith(hub.cdn_endpoint):
                    assert entry.path_str.endswith((".safetensors", ".bin", ".pt", ".pth", ".gguf", ".onnx"))
                else:
                    assert location == hub.url(m.repo_id, entry.path_str, m.revision)
