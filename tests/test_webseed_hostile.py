"""Issue 15's gateway findings, each reproduced over real HTTP on 127.0.0.1: cached files altered on disk,
requests that are not HTTP, and clients that stop reading."""

from __future__ import annotations

import json
import logging
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
