"""The health store's validation, the scrape and web-seed URL rules, and misbehaving far ends answered
one way each (a tracker's failure reason, a UDP error, a web seed that ignores Range)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import threading

import aiohttp
import pytest
from loopback import LoopbackServer, QuietHandler

from modelreg.errors import HealthFileError, ProbeError
from modelreg.health.scrape import scrape, scrape_url
from modelreg.health.webseeds import file_url, first_file, probe
from modelreg.registry.health import MAX_BYTES, HealthStore, dumps, summary
from modelreg.torrent.bencode import encode
from modelreg.torrent.metainfo import Torrent
from tests.ltutil import make_torrent

AT = "2026-11-29T12:00:00Z"
HASH = bytes(range(20))


def _health(**changes) -> dict:
    data = {"format": 1, "repo_id": "org/m", "revision": None, "checked_at": AT, "infohash_v1": None,
            "infohash_v2": None, "trackers": {}, "dht": None, "webseeds": {}}
    data.update(changes)
    return data


def test_scrape_url_follows_bep48():
    assert scrape_url("http://t.example/announce") == "http://t.example/scrape"
    assert scrape_url("http://t.example/x/announce.php?k=1") == "http://t.example/x/scrape.php?k=1"
    assert scrape_url("http://t.example/a") is None


def test_store_round_trip_and_rejects(tmp_path):
    store = HealthStore(tmp_path)
    store.store(_health())
    assert store.load("org/m", None).data == _health()
    assert store.path("org/m", None).read_bytes() == dumps(_health())
    bad = {
        "not json": b"{",
        "too big": b" " * (MAX_BYTES + 1),
        "a negative count": json.dumps(_health(trackers={"udp://t:1": {
            "v1": {"complete": -1, "incomplete": 0, "downloaded": 0}, "v2": None, "checked_at": AT}})).encode(),
        "a bad time": json.dumps(_health(checked_at="yesterday")).encode(),
        "another model": json.dumps(_health(repo_id="org/other")).encode(),
    }
    for what, content in bad.items():
        store.path("org/m", None).write_bytes(content)
        with pytest.raises(HealthFileError) as info:
            store.load("org/m", None)
        assert str(store.path("org/m", None)) in str(info.value), what



def test_a_fifo_health_file_is_refused_and_no_file_lies_outside_the_store(tmp_path):
    """Issue 15's bounded reads and paths kept inside, for the health store as for the metadata cache."""
    store = HealthStore(tmp_path / ".health")
    store.path("org/m", None).parent.mkdir(parents=True)
    os.mkfifo(store.path("org/m", None))  # no writer: a plain read blocks for ever
    with pytest.raises(HealthFileError, match="the health file is not a regular file but a FIFO"):
        store.load("org/m", None)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / ".health" / "evil").symlink_to(tmp_path / "elsewhere")
    for repo_id, revision in (("evil/m", None), ("org/m", "../../x"), ("org/m", "/x")):
        with pytest.raises(HealthFileError, match="would be stored outside"):
            store.store(_health(repo_id=repo_id, revision=revision))
    assert not any((tmp_path / "elsewhere").iterdir()) and not (tmp_path / "x.json").exists()

def test_summary_best_source_and_webseed_state():
    counts = {"complete": 2, "incomplete": 5, "downloaded": 9}
    data = _health(
        trackers={"udp://a:1/announce": {"v1": counts, "v2": {"complete": 3, "incomplete": 0, "downloaded": 1},
                                         "checked_at": AT, "failure": None},
                  "udp://b:1/announce": {"v1": None, "v2": None, "checked_at": None,
                                         "failure": {"reason": "timeout", "detail": "slow", "at": AT}}},
        dht={"peers": 4, "seeds": None, "leechers": None, "checked_at": AT, "failure": None},
        webseeds={"http://w/": {"ok": False, "status": 404, "latency_ms": 3, "length_ok": None,
                                "error": "answered HTTP 404", "checked_at": AT, "failing_since": "2026-11-01T00:00:00Z"}})
    s = summary(data)
    # v1 and v2 swarms of a hybrid torrent are the same peers: the larger of each count, not the sum
    assert (s["seeders"], s["leechers"], s["downloaded"], s["source"]) == (3, 5, 9, "udp://a:1/announce")
    assert s["webseed_ok"] is False and s["webseed_failing_since"] == "2026-11-01T00:00:00Z"
    dht = next(x for x in s["sources"] if x["kind"] == "dht")
    assert dht["seeders"] is None and dht["leechers"] == 4  # get_peers alone cannot tell seeds
    assert summary(_health())["seeders"] is None and summary(_health())["webseed_ok"] is None


def _answering(status: int, body: bytes, headers: dict[str, str] | None = None):
    class Handler(QuietHandler):
        def do_GET(self):
            self.send_response(status)
            for k, v in (headers or {"Content-Length": str(len(body))}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)
    return Handler


async def _scrape(url: str):
    async with aiohttp.ClientSession() as http:
        return await scrape(http, url, [HASH], 2.0)


@pytest.mark.parametrize("status, body, reason", [
    (200, encode({b"failure reason": b"scrape disabled"}), "refused"),
    (200, encode({b"files": {HASH: {b"complete": b"x"}}}), "bad-response"),
    (200, encode([1, 2]), "bad-response"),
    (500, b"oops", "http-error"),
])
def test_http_scrape_failures(status, body, reason):
    with LoopbackServer(_answering(status, body)) as server:
        with pytest.raises(ProbeError) as info:
            asyncio.run(_scrape(server.url + "announce"))
    assert info.value.reason == reason


def test_udp_tracker_error_and_unsupported_schemes():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))

    def serve():
        data, addr = sock.recvfrom(2048)
        sock.sendto(struct.pack(">II", 3, struct.unpack_from(">I", data, 12)[0]) + b"go away", addr)

    threading.Thread(target=serve, daemon=True).start()
    with pytest.raises(ProbeError) as info:
        asyncio.run(_scrape(f"udp://127.0.0.1:{sock.getsockname()[1]}/announce"))
    assert info.value.reason == "refused" and "go away" in info.value.detail
    sock.close()
    for url in ("wss://t.example/announce", "http://t.example/no-scrape-here"):
        with pytest.raises(ProbeError) as info:
            asyncio.run(_scrape(url))
        assert info.value.reason == "unsupported"


def test_webseed_that_ignores_range_is_judged_by_its_length(tmp_path):
    t = Torrent.from_bytes(make_torrent(tmp_path, {"one.bin": b"z" * 3000}))
    entry = first_file(t)
    assert file_url("http://w/x/", t, entry) == "http://w/x/one.bin"
    assert file_url("http://w/x/one.bin", t, entry) == "http://w/x/one.bin"

    async def go(url: str, size: int):
        async with aiohttp.ClientSession() as http:
            return await probe(http, url, size, 2.0)

    with LoopbackServer(_answering(200, b"z" * 3000)) as server:
        right, wrong = asyncio.run(go(server.url + "one.bin", 3000)), asyncio.run(go(server.url + "one.bin", 2999))
    assert right.ok and right.status == 200 and right.length_ok
    assert not wrong.ok and wrong.length_ok is False
    refused = asyncio.run(go("http://127.0.0.1:9/one.bin", 3000))
    assert not refused.ok and refused.status is None and "cannot connect" in refused.error
