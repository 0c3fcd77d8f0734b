"""The gateway over real HTTP against the fake hub: both modes, every rejection, faults, cache, limits."""

from __future__ import annotations

import http.client
import json
import os
import threading

import pytest
from fakehub import fake_hub
from webseed_harness import GatewayProcess, fetch, make_files, make_model, start_gateway

from modelreg.cli import main
from modelreg.webseed import ServeSet
from modelreg.webseed.cache import PieceCache
from modelreg.webseed.metrics import Metrics

FILES = {
    "config.json": 1_000,
    "model.safetensors": 300_007,
    "extra/weights.bin": 200_003,
}
LFS = "model.safetensors"


@pytest.fixture
def hub():
    yield from fake_hub()


@pytest.fixture
def model(hub, tmp_path):
    return make_model(hub, tmp_path, "TestOrg/Tiny-Model", make_files(FILES, seed=7), piece_length=64 * 1024)


def file_url(model, path: str) -> str:
    return f"/v1/{model.repo_id}/{model.revision}/{model.torrent.name}/{path}"


# -- redirect mode -------------------------------------------------------------------------------


def test_redirect_sends_lfs_to_cdn_once_resolved_and_regular_files_to_resolve(hub, model):
    with start_gateway(model, "redirect", hub) as gw:
        for _ in range(3):
            status, headers, _ = fetch(gw, file_url(model, LFS), headers={"Range": "bytes=0-9"})
            assert status == 302 and headers["Location"].startswith(hub.cdn_endpoint + "/repos/")
        status, headers, _ = fetch(gw, file_url(model, "config.json"))
        assert status == 302 and headers["Location"] == hub.url(model.repo_id, "config.json", model.revision)
    # One listing and one HEAD on resolve: the signed CDN URL is reused until it nears expiry.
    assert len(hub.find_requests(origin="hub", method="HEAD")) == 1
    assert len(hub.find_requests(origin="hub", path=r"^/api/")) == 1


def test_redirect_to_a_host_not_allowed_is_refused(hub, model):
    with start_gateway(model, "redirect", hub, redirect_hosts=()) as gw:
        status, headers, body = fetch(gw, file_url(model, LFS))
    assert status == 502 and "Location" not in headers
    assert hub.cdn_endpoint.split("://")[1].encode() in body and b"--redirect-host" in body


def test_allow_serves_a_repository_without_torrent_checked_against_hf_listing(hub, model):
    serve = ServeSet.build(allow=[f"{model.repo_id}@{model.revision}"])
    with start_gateway(serve, "redirect", hub) as gw:
        base = f"/v1/{model.repo_id}/{model.revision}/Tiny-Model/"
        status, headers, _ = fetch(gw, base + "extra/weights.bin")
        assert status == 302 and headers["Location"].startswith(hub.cdn_endpoint)
        assert fetch(gw, base + "not-there.bin")[0] == 404


# -- rejections ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path, status",
    [
        ("/v1/Other/Repo/{rev}/Tiny-Model/config.json", 404),
        ("/v1/TestOrg/Tiny-Model/{other}/Tiny-Model/config.json", 404),
        ("/v1/TestOrg/Tiny-Model/main/Tiny-Model/config.json", 400),
        ("/v1/TestOrg/Tiny-Model/{short}/Tiny-Model/config.json", 400),
        ("/v1/TestOrg/Tiny-Model/{rev}/Tiny-Model/../Tiny-Model/config.json", 404),
        ("/v1/TestOrg/Tiny-Model/{rev}/Tiny-Model/%2e%2e/config.json", 404),
        ("/v1/TestOrg/Tiny-Model/{rev}/Tiny-Model/extra%2Fweights.bin", 404),
        ("/v1/TestOrg/Tiny-Model/{rev}/Tiny-Model/secret.txt", 404),
        ("/v1/TestOrg/Tiny-Model/{rev}/Other-Name/config.json", 404),
        ("/v1/TestOrg/Tiny-Model/{rev}/Tiny-Model/.pad/999", 404),
        ("/v1/TestOrg/Tiny-Model/{rev}/Tiny-Model/config.json%ff", 400),
        ("/v1/TestOrg/Tiny-Model/{rev}/Tiny-Model", 404),
        ("/etc/passwd", 404),
    ],
)
@pytest.mark.parametrize("mode", ["redirect", "mirror"])
def test_requests_outside_the_registry_are_rejected(path, status, mode, hub, model, tmp_path):
    path = path.format(rev=model.revision, other="0" * 40, short=model.revision[:12])
    with start_gateway(model, mode, hub, cache=tmp_path / "cache") as gw:
        got, headers, _ = fetch(gw, path)
    assert got == status and "Location" not in headers
    assert not hub.find_requests(origin="cdn")


@pytest.mark.parametrize("header", ["bytes=5-2", "bytes=0-1,5-6", "bytes=999999999-", "items=0-1", "bytes=-0", "bytes=x-y"])
@pytest.mark.parametrize("mode", ["redirect", "mirror"])
def test_malformed_or_unsatisfiable_range_is_416(header, mode, hub, model, tmp_path):
    with start_gateway(model, mode, hub, cache=tmp_path / "cache") as gw:
        status, headers, _ = fetch(gw, file_url(model, LFS), headers={"Range": header})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(model.files[LFS])}"


def test_other_methods_are_refused(hub, model):
    with start_gateway(model, "redirect", hub) as gw:
        assert fetch(gw, file_url(model, LFS), method="POST")[0] == 405
        assert fetch(gw, file_url(model, LFS), method="PUT")[0] == 405


def test_one_client_cannot_hold_every_slot(hub, model, tmp_path):
    hub.inject("cdn", delay=1.0, times=1)
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache", max_per_client=1) as gw:
        slow = threading.Thread(target=fetch, args=(gw, file_url(model, LFS)))
        slow.start()
        for _ in range(100):  # wait until the slow request holds the client's only slot
            if gw.gateway.metrics.in_flight:
                break
            threading.Event().wait(0.01)
        status, headers, _ = fetch(gw, file_url(model, "config.json"))
        slow.join(10)
    assert status == 429 and headers["Retry-After"] == "1"


# -- pad files -----------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["redirect", "mirror"])
def test_pad_files_the_torrent_has_are_zeros(mode, hub, model, tmp_path):
    pads = [e for e in model.torrent.layout if e.is_pad]
    assert pads
    with start_gateway(model, mode, hub, cache=tmp_path / "cache") as gw:
        for pad in pads:
            status, _, body = fetch(gw, file_url(model, pad.path_str))
            assert status == 200 and body == bytes(pad.size)
        status, headers, body = fetch(gw, file_url(model, pads[0].path_str), headers={"Range": "bytes=10-19"})
        assert status == 206 and body == bytes(10) and headers["Content-Range"] == f"bytes 10-19/{pads[0].size}"
    assert not hub.find_requests(origin="cdn")


# -- mirror mode ---------------------------------------------------------------------------------


def test_mirror_serves_ranges_fetches_each_piece_once_and_coalesces(hub, model, tmp_path):
    data = model.files[LFS]
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        results = []
        threads = [
            threading.Thread(target=lambda: results.append(fetch(gw, file_url(model, LFS)))) for _ in range(8)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert [(s, b == data) for s, _, b in results] == [(200, True)] * 8
        status, headers, body = fetch(gw, file_url(model, LFS), headers={"Range": "bytes=70000-140000"})
        assert status == 206 and body == data[70000:140001]
        assert headers["Content-Range"] == f"bytes 70000-140000/{len(data)}"
        status, headers, body = fetch(gw, file_url(model, LFS), method="HEAD")
        assert status == 200 and int(headers["Content-Length"]) == len(data) and body == b""
        metrics = gw.gateway.metrics
    # 300 kB is one fetch run: eight clients cost one CDN download of the file.
    assert len(hub.find_requests(origin="cdn", method="GET")) == 1
    assert metrics.pieces_fetched == len(range(*_piece_bounds(model, LFS)))
    assert metrics.cache_hits >= 2


def _piece_bounds(model, path):
    entry = next(e for e in model.torrent.files if e.path_str == path)
    pl = model.torrent.piece_length
    return entry.offset // pl, (entry.offset + entry.size - 1) // pl + 1


def test_corrupt_upstream_piece_is_refetched_never_served(hub, model, tmp_path):
    hub.inject("cdn", corrupt=True, times=1)
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        status, _, body = fetch(gw, file_url(model, LFS))
        assert gw.gateway.metrics.pieces_corrupt == 1
    assert status == 200 and body == model.files[LFS]


def test_upstream_that_keeps_corrupting_gets_502_and_no_bytes(hub, model, tmp_path):
    fault = hub.inject("cdn", corrupt=1000, times=None)
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        status, headers, body = fetch(gw, file_url(model, LFS), headers={"Range": "bytes=0-9999"})
        assert status == 502 and b"hash check" in body and headers["Retry-After"]
        assert gw.gateway.metrics.pieces_corrupt >= 3
        fault.times = 0
        status, _, body = fetch(gw, file_url(model, LFS), headers={"Range": "bytes=0-9999"})
    assert status == 206 and body == model.files[LFS][:10000]


def test_upstream_429_is_retried_after_retry_after(hub, model, tmp_path):
    fault = hub.inject("cdn", 429, retry_after=0.05, times=2)
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        status, _, body = fetch(gw, file_url(model, LFS))
        assert gw.gateway.metrics.upstream_errors["http_429"] == 2
    assert fault.hits == 2 and status == 200 and body == model.files[LFS]


def test_dropped_connection_resumes_where_it_stopped(hub, model, tmp_path):
    hub.inject("cdn", drop_after=100_000, times=1)
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        status, _, body = fetch(gw, file_url(model, LFS))
        assert gw.gateway.metrics.upstream_retries == 1
    assert status == 200 and body == model.files[LFS]
    ranges = [r.range for r in hub.find_requests(origin="cdn", method="GET")]
    assert ranges[0] == f"bytes=0-{len(model.files[LFS]) - 1}" and ranges[1] != ranges[0]


def test_hub_down_gives_502_and_hub_too_slow_gives_504(hub, model, tmp_path):
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache", upstream_timeout=0.3) as gw:
        hub.inject("cdn", delay=2, times=None)
        status, _, body = fetch(gw, file_url(model, LFS))
        assert status == 504 and b"kept failing" in body
        hub.clear_faults()
        with hub.offline():
            status, _, body = fetch(gw, file_url(model, "extra/weights.bin"))
        assert status == 502 and b"kept failing" in body
        assert gw.gateway.metrics.upstream_errors["timeout"] >= 1


def test_cache_survives_restart_and_crash_before_bitmap(hub, model, tmp_path):
    cache = tmp_path / "cache"
    with start_gateway(model, "mirror", hub, cache=cache) as gw:
        assert fetch(gw, file_url(model, LFS))[0] == 200
        assert fetch(gw, file_url(model, "config.json"))[0] == 200
    with hub.offline():
        with start_gateway(model, "mirror", hub, cache=cache) as gw:
            status, _, body = fetch(gw, file_url(model, LFS))
            assert status == 200 and body == model.files[LFS]
            assert gw.gateway.metrics.cache_hits == 1 and gw.gateway.metrics.pieces_fetched == 0
    # A crash after data was written but before the bitmap was: the bytes are garbage and unlisted.
    (folder,) = [p for p in cache.iterdir() if (p / "torrent").exists()]
    (folder / "pieces").unlink()
    data_file = folder / "data" / LFS
    data_file.write_bytes(b"\xff" * len(model.files[LFS]))
    with start_gateway(model, "mirror", hub, cache=cache) as gw:
        status, _, body = fetch(gw, file_url(model, LFS))
        assert gw.gateway.metrics.pieces_fetched > 0
    assert status == 200 and body == model.files[LFS]


def test_cache_is_capped_by_evicting_least_recently_used_files(hub, model, tmp_path):
    cap = 400_000
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache", max_cache_size=cap) as gw:
        assert fetch(gw, file_url(model, LFS))[0] == 200
        assert fetch(gw, file_url(model, "config.json"))[0] == 200
        status, _, body = fetch(gw, file_url(model, "extra/weights.bin"))
        assert status == 200 and body == model.files["extra/weights.bin"]
        cache = gw.gateway.cache
        assert gw.gateway.metrics.cache_evictions >= 1 and cache.used <= cap
        store = next(iter(cache.stores.values()))
        entry = model.served.files[LFS]
        assert not store.complete(entry) and not store.path_of(entry).exists()
        assert store.complete(model.served.files["extra/weights.bin"])


def test_mirror_command_fills_the_cache_for_offline_serving(hub, model, tmp_path, capsys):
    torrent_path = tmp_path / "Tiny-Model.torrent"
    torrent_path.write_bytes(model.torrent.raw)
    cache = tmp_path / "cache"
    args = ["mirror", str(torrent_path), "--cache", str(cache), "--hf-endpoint", hub.endpoint,
            "--redirect-host", hub.cdn_endpoint.split("://")[1]]
    assert main(args) == 1  # no sidecar and no web seed: it cannot tell the revision
    assert "--repo" in capsys.readouterr().err
    assert main([*args, "--repo", f"{model.repo_id}@{model.revision}"]) == 0
    assert "pieces verified" in capsys.readouterr().out
    served, errors = PieceCache(cache, Metrics()).cached_torrents()
    assert not errors and [(s.repo_id, s.revision) for s in served] == [(model.repo_id, model.revision)]
    with hub.offline():
        with start_gateway(ServeSet(served), "mirror", hub, cache=cache) as gw:
            for path, data in model.files.items():
                status, _, body = fetch(gw, file_url(model, path))
                assert status == 200 and body == data


def test_webseed_command_rejects_bad_options(tmp_path, capsys):
    assert main(["webseed", "--mode", "mirror", "--registry", str(tmp_path)]) == 1
    assert "--cache" in capsys.readouterr().err
    assert main(["webseed", "--registry", str(tmp_path), "--allow", "nope"]) == 1
    assert "ORG/NAME@" in capsys.readouterr().err
    assert main(["webseed", "--registry", str(tmp_path)]) == 1
    assert "nothing to serve" in capsys.readouterr().err
    allow = "TestOrg/Tiny-Model@" + "a" * 40
    assert main(["webseed", "--mode", "mirror", "--cache", str(tmp_path / "c"), "--allow", allow]) == 1
    assert "redirect mode only" in capsys.readouterr().err
    assert main(["webseed", "--max-cache-size", "lots"]) == 2


# -- health, metrics, access log -----------------------------------------------------------------


def test_healthz_metrics_and_json_access_log(hub, model, tmp_path):
    log = tmp_path / "access.log"
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache", access_log=str(log)) as gw:
        fetch(gw, file_url(model, LFS))
        fetch(gw, file_url(model, LFS), headers={"Range": "bytes=0-99"})
        fetch(gw, "/v1/TestOrg/Tiny-Model/main/x")
        status, _, body = fetch(gw, "/healthz")
        assert status == 200 and json.loads(body)["mode"] == "mirror"
        status, headers, body = fetch(gw, "/metrics")
    text = body.decode()
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    assert 'modelreg_webseed_requests_total{status="200"} 2' in text
    assert 'modelreg_webseed_requests_total{status="206"} 1' in text
    assert 'modelreg_webseed_requests_total{status="400"} 1' in text
    assert "modelreg_webseed_cache_hits_total 1" in text and "modelreg_webseed_cache_misses_total 1" in text
    for name in ("upstream_errors_total", "upstream_retries_total", "pieces_fetched_total"):
        assert f"modelreg_webseed_{name}" in text
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["status"], r.get("cache")) for r in lines[:3]] == [(200, "miss"), (206, "hit"), (400, None)]
    assert lines[1]["range"] == "bytes=0-99" and 100 < lines[1]["bytes"] < 100 + 1000  # headers count too
    assert "full 40-hex commit" in lines[2]["error"]
    assert len(model.files[LFS]) < lines[0]["bytes"] < len(model.files[LFS]) + 1000
    assert f"modelreg_webseed_bytes_served_total {sum(r['bytes'] for r in lines[:4])}\n" in text


def test_webseed_command_serves_a_registry_and_stops_on_sigterm(hub, model, tmp_path):
    registry = tmp_path / "registry" / "testorg" / "tiny-model"
    registry.mkdir(parents=True)
    # The registry's torrent carries the public web seed; the gateway finds repo and revision in it.
    (registry / "Tiny-Model.torrent").write_bytes(model.torrent_bytes("https://seed.example.org"))
    args = ["--registry", str(tmp_path / "registry"), "--hf-endpoint", hub.endpoint,
            "--redirect-host", hub.cdn_endpoint.split("://")[1], "--access-log", ""]
    with GatewayProcess(args, cwd=tmp_path) as gw:
        status, headers, _ = fetch(gw.port, file_url(model, LFS))
        assert status == 302 and headers["Location"].startswith(hub.cdn_endpoint)
    assert gw.returncode == 0, gw.stderr
    err = gw.stderr
    assert "redirect mode, 1 repositories" in err


def test_failure_mid_stream_cuts_the_response_short_never_wrong(hub, model, tmp_path, monkeypatch):
    from modelreg.webseed import app

    monkeypatch.setattr(app, "WINDOW_BYTES", 64 * 1024)  # one piece per step: the 2nd step fails
    hub.inject("cdn", times=1)  # the first fetch goes through untouched...
    hub.inject("cdn", 500, times=None)  # ...every later one fails
    data = model.files[LFS]
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
        conn.request("GET", file_url(model, LFS))
        resp = conn.getresponse()
        assert resp.status == 200 and int(resp.headers["Content-Length"]) == len(data)
        with pytest.raises(http.client.IncompleteRead) as info:
            resp.read()
        conn.close()
    got = info.value.partial
    assert 0 < len(got) < len(data) and got == data[: len(got)]


def test_oversized_request_heads_are_refused(hub, model):
    with start_gateway(model, "redirect", hub) as gw:
        status, _, _ = fetch(gw, file_url(model, "x" * 10_000))
        assert status in (400, 414)
        status, _, _ = fetch(gw, file_url(model, LFS), headers={"X-Junk": "y" * 10_000})
        assert status in (400, 431)
        assert fetch(gw, file_url(model, LFS))[0] == 302


def test_mirror_answers_503_when_pieces_cannot_be_written_and_marks_none(hub, model, tmp_path, monkeypatch):
    """A disk failing mid-fill (here the first write): 503, and every piece marked stored is on disk
    byte for byte; once the disk works again the same request is served whole."""
    import errno

    from modelreg.webseed import cache as cache_module

    real_pwritev, failures = os.pwritev, {"left": 1}

    def failing_pwritev(fd, buffers, offset):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_pwritev(fd, buffers, offset)

    monkeypatch.setattr(cache_module.os, "pwritev", failing_pwritev)
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        status, _, body = fetch(gw, file_url(model, LFS))
        assert status == 503 and b"cannot store pieces" in body
        store = next(iter(gw.gateway.cache.stores.values()))
        held = [i for i in range(store.map.num_pieces) if store.has(i)]
        data = model.files[LFS]
        entry = model.served.files[LFS]
        on_disk = store.path_of(entry).read_bytes()
        for i in held:  # whatever is marked stored is really there, byte for byte
            for seg in store.file_segments(i):
                if seg.entry is entry:
                    chunk = on_disk[seg.file_offset : seg.file_offset + seg.length]
                    assert chunk == data[seg.file_offset : seg.file_offset + seg.length], i
        status, _, body = fetch(gw, file_url(model, LFS))
        assert (status, body == data) == (200, True)
