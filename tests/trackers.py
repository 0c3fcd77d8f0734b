"""The far end of the health checks, on 127.0.0.1: an HTTP tracker (BEP 3 + 48), a UDP tracker (BEP 15) and
a web-seed server whose folders answer right, with the wrong length, with a refusal, or with a redirect.

The trackers keep an in-memory swarm per infohash from the announces they get (libtorrent's, in the
tests) and answer scrapes from it. ``scrape_mode`` makes one misbehave: ``garbage`` answers scrapes
with bytes that are no answer, ``silent`` never answers them.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from loopback import LoopbackServer, QuietHandler, requested_range, send_range_head

from modelreg.torrent.bencode import encode

LOOPBACK = socket.inet_aton("127.0.0.1")


@dataclass
class Swarm:
    """Peers of one infohash by peer id: (port, bytes left); completed downloads announced."""

    peers: dict[bytes, tuple[int, int]] = field(default_factory=dict)
    downloaded: int = 0

    def announce(self, peer_id: bytes, port: int, left: int, event: str) -> None:
        if event == "stopped":
            self.peers.pop(peer_id, None)
            return
        if event == "completed":
            self.downloaded += 1
        self.peers[peer_id] = (port, left)

    def counts(self) -> tuple[int, int, int]:
        seeders = sum(1 for _, left in self.peers.values() if left == 0)
        return seeders, len(self.peers) - seeders, self.downloaded

    def compact(self, but: bytes) -> bytes:
        return b"".join(LOOPBACK + struct.pack(">H", port) for pid, (port, _) in self.peers.items() if pid != but)


class Tracker:
    """Swarms shared by a tracker's threads; ``scrapes`` counts the scrape requests it got."""

    def __init__(self, scrape_mode: str = "ok"):
        self.scrape_mode = scrape_mode
        self.swarms: dict[bytes, Swarm] = {}
        self.lock = threading.Lock()
        self.scrapes = 0
        self.announces = 0

    def counts(self, info_hash: bytes) -> tuple[int, int, int]:
        with self.lock:
            return self.swarms.get(info_hash, Swarm()).counts()


class HttpTracker(Tracker):
    """``http://127.0.0.1:<port>/announce`` and ``/scrape``."""

    def __enter__(self) -> HttpTracker:
        tracker = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query, encoding="latin-1")
                if parts.path == "/announce":
                    body = tracker.http_announce(query)
                elif parts.path == "/scrape":
                    body = tracker.http_scrape(query)
                    if body is None:
                        return  # silent: let the client time out (the connection is left open)
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client hung up (a session stopping)

        self.server = LoopbackServer(Handler).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    @property
    def announce_url(self) -> str:
        return f"{self.server.url}announce"

    def http_announce(self, query: dict[str, list[str]]) -> bytes:
        info_hash = query["info_hash"][0].encode("latin-1")
        peer_id = query["peer_id"][0].encode("latin-1")
        with self.lock:
            self.announces += 1
            swarm = self.swarms.setdefault(info_hash, Swarm())
            swarm.announce(peer_id, int(query["port"][0]), int(query["left"][0]), query.get("event", [""])[0])
            seeders, leechers, _ = swarm.counts()
            peers = swarm.compact(peer_id)
        return encode({b"interval": 60, b"complete": seeders, b"incomplete": leechers, b"peers": peers})

    def http_scrape(self, query: dict[str, list[str]]) -> bytes | None:
        with self.lock:
            self.scrapes += 1
        if self.scrape_mode == "silent":
            threading.Event().wait(30)
            return None
        if self.scrape_mode == "garbage":
            return b"<html>this is not a tracker</html>"
        files = {}
        for value in query.get("info_hash", []):
            h = value.encode("latin-1")
            seeders, leechers, downloaded = self.counts(h)
            if seeders or leechers or downloaded:
                files[h] = {b"complete": seeders, b"incomplete": leechers, b"downloaded": downloaded}
        return encode({b"files": files})


class UdpTracker(Tracker):
    """``udp://127.0.0.1:<port>/announce``: connect, announce and scrape (BEP 15)."""

    EVENTS = {0: "", 1: "completed", 2: "started", 3: "stopped"}
    #: Connection ids handed out by any UDP tracker of the process: libtorrent caches them per IP address,
    #: not per port, so it reuses one tracker's id with another on the same host.
    connections: set[bytes] = set()

    def __enter__(self) -> UdpTracker:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.running = True
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.running = False
        self.thread.join(5)
        self.sock.close()

    @property
    def announce_url(self) -> str:
        return f"udp://127.0.0.1:{self.sock.getsockname()[1]}/announce"

    def _serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            answer = self.answer(data)
            if answer is not None:
                self.sock.sendto(answer, addr)

    def answer(self, data: bytes) -> bytes | None:
        if len(data) < 16:
            return None
        connection, action, tx = struct.unpack_from(">QII", data)
        if action == 0:
            conn = struct.pack(">Q", (tx * 2654435761) & (2**64 - 1))
            self.connections.add(conn)
            return struct.pack(">II", 0, tx) + conn
        if data[:8] not in self.connections:
            return struct.pack(">II", 3, tx) + b"unknown connection id"
        if action == 1 and len(data) >= 98:
            info_hash, peer_id = data[16:36], data[36:56]
            left, = struct.unpack_from(">Q", data, 64)
            event, = struct.unpack_from(">I", data, 80)
            port, = struct.unpack_from(">H", data, 96)
            with self.lock:
                self.announces += 1
                swarm = self.swarms.setdefault(info_hash, Swarm())
                swarm.announce(peer_id, port, left, self.EVENTS.get(event, ""))
                seeders, leechers, _ = swarm.counts()
                peers = swarm.compact(peer_id)
            return struct.pack(">IIIII", 1, tx, 60, leechers, seeders) + peers
        if action == 2:
            with self.lock:
                self.scrapes += 1
            if self.scrape_mode == "silent":
                return None
            if self.scrape_mode == "garbage":
                return struct.pack(">II", 2, tx) + b"\x01\x02\x03"
            hashes = [data[i:i + 20] for i in range(16, len(data) - 19, 20)]
            out = struct.pack(">II", 2, tx)
            for h in hashes:
                seeders, leechers, downloaded = self.counts(h)
                out += struct.pack(">III", seeders, downloaded, leechers)
            return out
        return struct.pack(">II", 3, tx) + b"unknown action"


class WebseedServer:
    """``/good/``, ``/wrong/`` (one byte too many), ``/refuse/`` (403) and ``/moved/`` (302 to ``/good/``)
    folders, serving ``files`` (URL path below the folder -> bytes) with 206 answers to ``Range``."""

    def __init__(self, files: dict[str, bytes]):
        self.files = files
        self.requests: list[str] = []

    def __enter__(self) -> WebseedServer:
        server = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                kind, _, rest = self.path.lstrip("/").partition("/")
                data = server.files.get(unquote(rest))
                if kind == "refuse" or data is None:
                    self.send_error(403 if kind == "refuse" else 404)
                    return
                if kind == "moved":
                    self.send_response(302)
                    self.send_header("Location", f"/good/{rest}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status, start, end = requested_range(self.headers.get("Range"), len(data))
                send_range_head(self, status, start, end, len(data) + (1 if kind == "wrong" else 0))
                self.wfile.write(data[start:end])

        self.server = LoopbackServer(Handler).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.stop()

    def url(self, kind: str) -> str:
        return f"{self.server.url}{kind}/"
