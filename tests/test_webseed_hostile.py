"""Issue 15's gateway findings, each reproduced over real HTTP on 127.0.0.1: cached files altered on disk,
requests that are not HTTP, and clients that stop reading."""

from __future__ import annotations

import json
import logging
import os
import resource
import select
import socket
import time

import pytest
from fakehub import fake_hub
from webseed_harness import GatewayProcess, fetch, make_files, make_model, raw_exchange, start_gateway

FILES = {"config.json": 1_000, "model.safetensors": 300_007}
LFS = "model.safetensors"


@pytest.fixture(scope="module")
def hub():
    yield from fake_hub()


@pytest.fixture(scope="module")
def model(hub, tmp_path_factory):
    return make_model(hub, tmp_path_factory.mktemp("m"), "TestOrg/Hostile-Model", make_files(FILES, seed=15))


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
            status_line = raw_exchange(gw, head).split(b"\r\n", 1)[0]
            assert status_line.split()[1:2] == [b"400"], (head[:40], status_line)
        metrics = raw_exchange(gw, b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").decode()
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
        assert fetch(gw, url(model, LFS))[2] == data
        assert fetch(gw, url(model, LFS))[2] == data  # a hit: the pieces were checked when written
        assert gw.gateway.metrics.pieces_corrupt == 0
        path = cached_file(gw, model, LFS)
        if when == "while-running":
            flip_byte(path, 200_000)
            before = cdn_gets(hub)
            status, _, body = fetch(gw, url(model, LFS))
            assert status == 200 and body == data
            assert gw.gateway.metrics.pieces_corrupt == 1 and cdn_gets(hub) == before + 1
            assert fetch(gw, url(model, LFS))[2] == data and gw.gateway.metrics.pieces_corrupt == 1
    if when == "while-stopped":
        flip_byte(path, 200_000)
        with start_gateway(model, "mirror", hub, cache=cache) as gw:
            before = cdn_gets(hub)
            status, headers, body = fetch(gw, url(model, LFS), headers={"Range": "bytes=199990-200009"})
            assert status == 206 and body == data[199990:200010]
            assert fetch(gw, url(model, LFS))[2] == data
            metrics = gw.gateway.metrics
            assert metrics.pieces_corrupt == 1 and cdn_gets(hub) == before + 1
            # Every piece read after the start was checked once, and only once.
            store = next(iter(gw.gateway.cache.stores.values()))
            assert metrics.pieces_checked == len(store.map.pieces_of(model.served.files[LFS]))


def test_a_flipped_piece_with_the_hub_unreachable_is_a_502_not_wrong_bytes(hub, model, tmp_path):
    data = model.files[LFS]
    with start_gateway(model, "mirror", hub, cache=tmp_path / "cache") as gw:
        assert fetch(gw, url(model, LFS))[2] == data
        flip_byte(cached_file(gw, model, LFS), 100_000)
        with hub.offline():
            status, headers, body = fetch(gw, url(model, LFS), headers={"Range": "bytes=99000-100999"})
            assert status == 502 and "Content-Range" not in headers and data[100_000:100_016] not in body
            status, _, body = fetch(gw, url(model, LFS), headers={"Range": "bytes=250000-250999"})
            assert status == 206 and body == data[250000:251000]  # other pieces are still served
        assert fetch(gw, url(model, LFS))[2] == data
        assert gw.gateway.metrics.pieces_corrupt == 1


# -- 13: slow readers and the open-file budget -----------------------------------------------------


@pytest.fixture(scope="module")
def big(hub, tmp_path_factory):
    files = make_files({"w.bin": 16 << 20, "c.json": 100}, seed=13)
    return make_model(hub, tmp_path_factory.mktemp("big"), "TestOrg/Big-Hostile", files, piece_length=1 << 20)


def stalled_download(port: int, path: str) -> socket.socket:
    """A client that asks for a big file and never reads a byte of the answer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def wait_until(predicate, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_stalled_readers_are_dropped_and_health_and_metrics_answer_meanwhile(hub, big, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    with start_gateway(big, "mirror", hub, cache=tmp_path / "cache", max_connections=8, max_per_client=100,
                       send_timeout=1.0) as gw:
        path = url(big, "w.bin")
        assert fetch(gw, path)[2] == big.files["w.bin"]  # cached: the rest are sendfile hits
        stalled = [stalled_download(gw.port, path) for _ in range(12)]
        try:
            assert wait_until(lambda: gw.gateway._active == 8)  # every request slot is held
            assert fetch(gw, url(big, "c.json"))[0] == 503
            status, _, body = fetch(gw, "/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok"
            status, _, body = fetch(gw, "/metrics")
            assert status == 200 and b"modelreg_webseed_in_flight_requests 8" in body
            # The send timeout frees every slot a client holds without reading.
            assert wait_until(lambda: gw.gateway.metrics.send_timeouts == 8 and gw.gateway._active == 0)
            status, _, body = fetch(gw, path)
            assert status == 200 and body == big.files["w.bin"]
        finally:
            for sock in stalled:
                sock.close()
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


def test_connections_beyond_the_open_file_budget_get_a_503_and_idle_ones_make_room(hub, big, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    budget = 16
    with start_gateway(big, "mirror", hub, cache=tmp_path / "cache", max_open_connections=budget,
                       max_per_client=100, send_timeout=1.0) as gw:
        path = url(big, "w.bin")
        assert fetch(gw, path)[2] == big.files["w.bin"]
        idle = [socket.create_connection(("127.0.0.1", gw.port), timeout=10) for _ in range(budget + 4)]
        try:
            assert wait_until(lambda: len(gw.runner.server.connections) == budget)
            # Idle connections (no request) give way to a client with a request.
            assert fetch(gw, url(big, "c.json"))[2] == big.files["c.json"]
        finally:
            for sock in idle:
                sock.close()
        assert wait_until(lambda: not gw.runner.server.connections)
        stalled = [stalled_download(gw.port, path) for _ in range(budget)]
        try:
            assert wait_until(lambda: gw.gateway._active == budget)
            with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(100).startswith(b"HTTP/1.1 503")
            assert gw.gateway.metrics.connections_refused >= 1
            assert wait_until(lambda: gw.gateway._active == 0)  # send timeouts free the budget
            assert fetch(gw, "/healthz")[0] == 200
        finally:
            for sock in stalled:
                sock.close()
    refusals = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 1 and not [r for r in caplog.records if r.exc_info]


def test_the_open_file_budget_follows_rlimit_nofile(hub, model):
    from modelreg.webseed.connections import RESERVED_FDS, fd_budget

    assert fd_budget(1024) == (1024 - RESERVED_FDS) // 2
    assert fd_budget(resource.RLIM_INFINITY) > 100_000 and fd_budget(100) >= 8
    with start_gateway(model, "redirect", hub) as gw:
        assert gw.runner.max_open == fd_budget() == fd_budget(resource.getrlimit(resource.RLIMIT_NOFILE)[0])


def test_a_gateway_at_its_open_file_limit_answers_and_stays_quiet(hub, model, tmp_path):
    """The review's case, scaled down: more idle connections than the process may open files."""
    limit = 256
    args = ["--allow", f"{model.repo_id}@{model.revision}", "--hf-endpoint", hub.endpoint,
            "--redirect-host", hub.cdn_endpoint.split("://")[1], "--access-log", ""]

    def lower_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    idle: list[socket.socket] = []
    with GatewayProcess(args, cwd=tmp_path, preexec_fn=lower_limit) as gw:
        port = gw.port
        try:
            for _ in range(limit + 50):  # all at once, as a crowd would
                sock = socket.socket()
                sock.setblocking(False)
                sock.connect_ex(("127.0.0.1", port))
                idle.append(sock)
            poller = select.poll()
            for sock in idle:
                poller.register(sock, select.POLLOUT)
            pending, deadline = len(idle), time.monotonic() + 15
            while pending and time.monotonic() < deadline:  # each gets in (or gets its 503 and is closed)
                for fd, _ in poller.poll(500):
                    poller.unregister(fd)
                    pending -= 1
            # Before, accept() failed (EMFILE) and this request timed out.
            assert _answers(port, f"/v1/{model.repo_id}/{model.revision}/Hostile-Model/config.json") == 302
        finally:
            for sock in idle:
                sock.close()
    err = gw.stderr
    assert gw.returncode == 0, err
    assert "Traceback" not in err and len(err) < 2000, err[:2000]


def _answers(port: int, path: str) -> int | None:
    try:
        return fetch(port, path)[0]
    except OSError:
        return None
