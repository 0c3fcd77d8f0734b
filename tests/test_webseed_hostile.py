"""Issue 15's gateway findings, each reproduced over real HTTP on 127.0.0.1: cached files altered on disk,
requests that are not HTTP, and clients that stop reading."""

from __future__ import annotations

import http.client
import json
import logging
import os
import socket

import pytest
from fakehub import fake_hub
from webseed_harness import make_files, make_model, start_gateway

FILES = {"config.json": 1_000, "model.safetensors": 300_007}
LFS = "model.safetensors"


@pytest.fixture(scope="module")
def hub():
    yield from fake_hub()


@pytest.fixture(scope="module")
def model(hub, tmp_path_factory):
    return make_model(hub, tmp_path_factory.mktemp("m"), "TestOrg/Hostile-Model", make_files(FILES, seed=15))


def raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` as is and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


# -- 12: requests that fail HTTP parsing -----------------------------------------------------------

MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX: " + b"b" * 9000 + b"\r\n\r\n",
    b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(40),  # TLS on the plain port
    b"GET /healthz HTTP/9.9\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
]


def test_requests_that_are_not_http_are_logged_and_counted_never_crash_the_logger(hub, model, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    log = tmp_path / "access.log"
    with start_gateway(model, "redirect", hub, access_log=str(log)) as gw:
        for head in MALFORMED * 3:
            status_line = raw(gw.port, head).split(b"\r\n", 1)[0]
            assert status_line.split()[1:2] == [b"400"], (head[:40], status_line)
        metrics = raw(gw.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").decode()
        counted = gw.gateway.metrics.malformed_requests
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    malformed = [r for r in lines if r.get("malformed")]
    assert counted == len(malformed) >= len(MALFORMED) * 3
    assert f"modelreg_webseed_malformed_requests_total {counted}" in metrics
    assert all(r["status"] == 400 and r["error"] and "path" not in r for r in malformed)
    assert any("HTTPS" in r["error"] for r in malformed)
    # Neither the logger's AssertionError nor aiohttp's per-request traceback reaches the logs.
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


# -- 11: a cached file altered on disk -------------------------------------------------------------


def fetch(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.headers), resp.read()
    finally:
        conn.close()


def url(model, path: str) -> str:
    return f"/v1/{model.repo_id}/{model.revision}/{model.torrent.name}/{path}"


def flip_byte(path, offset: int) -> None:
    """One byte inverted in place: same inode, same size, and the modification time put back."""
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(path).st_size == st.st_size


def cached_file(gw, model, path: str):
    store = next(iter(gw.gateway.cache.stores.values()))
    return store.path_of(model.served.files[path])


def cdn_gets(hub) -> int:
    return len(hub.find_requests(origin="cdn", method="GET"))


@pytest.mark.parametrize("when", ["while-running", "while-stopped"])
def test_a_cached_byte_flipped_on_disk_is_refetched_never_served(when, hub, model, tmp_path):
    data = model.files[LFS]
    cache = tmp_path / "cache"
    with start_gateway(model, "mirror", hub, cache=cache) as gw:
        assert fetch(gw.port, url(model, LFS))[2] == data
        assert fetch(gw.port, url(model, LFS))[2] == data  # a hit: the pieces were checked when written
        assert gw.gateway.metrics.pieces_corrupt == 0
        path = cached_file(gw, model, LFS)
        if when == "while-running":
            flip_byte(path, 200_000)
            before = cdn_gets(hub)
            status, _, body = fetch(gw.port, url(model, LFS))
            assert status == 200 and body == data
            assert gw.gateway.metrics.pieces_corrupt == 1 and cdn_gets(hub) == before + 1
            assert fetch(gw.port, url(model, LFS))[2] == data and gw.gateway.metrics.pieces_corrupt == 1
    if when == "while-stopped":
        flip_byte(path, 200_000)
        with start_gateway(model, "mirror", hub, cache=cache) as gw:
            before = cdn_gets(hub)
            status, headers, body = fetch(gw.port, url(model, LFS), {"Range": "bytes=199990-200009"})
            assert status == 206 and body == data[199990:200010]
            assert fetch(gw.port, url(model, LFS))[2] == data
            metrics = gw.gateway.metrics
            assert metrics.pieces_corrupt == 1 and cdn_gets(hub) == before + 1
            # Every piece read after the start was checked once, and only once.
            store = next(iter(gw.gateway.cache.stores.values()))
            assert metrics.pieces_checked == len(store.map.pieces_of(model.served.files[LFS]))


def test_a_flipped_piece_with_the_hub_unreachable_is_a_502_not_wrong_bytes(hub, model, tmp_path):
    data = model.files[LFS]
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        assert fetch(gw.port, url(model, LFS))[2] == data
        flip_byte(cached_file(gw, model, LFS), 100_000)
        with hub.offline():
            status, headers, body = fetch(gw.port, url(model, LFS), {"Range": "bytes=99000-100999"})
            assert status == 502 and "Content-Range" not in headers and data[100_000:100_016] not in body
            status, _, body = fetch(gw.port, url(model, LFS), {"Range": "bytes=250000-250999"})
            assert status == 206 and body == data[250000:251000]  # other pieces are still served
        assert fetch(gw.port, url(model, LFS))[2] == data
        assert gw.gateway.metrics.pieces_corrupt == 1
