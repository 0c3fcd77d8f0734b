"""DHT estimate: how many peers the BitTorrent DHT knows for many torrents, looked up at once in one session.

libtorrent (imported only here, and only when a check runs) joins the DHT, then runs a BEP 5
``get_peers`` traversal for every infohash at the same time (a v2 infohash by its first 20 bytes, as
libtorrent announces it) and counts the distinct peers each finds, all within a time bound.

libtorrent answers BEP 33 scrapes but does not send them, so the seed and leecher estimates are asked
here directly: a ``get_peers`` with ``scrape: 1`` over plain UDP to the nodes in the session's routing
table; the nodes that store the torrent answer with two Bloom filters (``BFsd`` seeds, ``BFpe``
peers), whose sizes are estimated as BEP 33 says. Where no node answers, only the peer count is known.
"""

from __future__ import annotations

import ipaddress
import math
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

from modelreg.errors import ProbeError
from modelreg.torrent.bencode import BencodeError, decode, encode

BLOOM_BITS = 2048
#: libtorrent's default DHT upload limit (8 kB/s) would let a few hundred lookups through per run.
UPLOAD_LIMIT = 1 << 20


@dataclass(frozen=True)
class DhtSettings:
    """``nodes``: (host, port) to bootstrap from (none: libtorrent's public routers); ``seconds``: the bound."""

    nodes: tuple[tuple[str, int], ...] = ()
    seconds: float = 10.0


@dataclass(frozen=True)
class DhtCount:
    """Distinct peers found by ``get_peers``, and BEP 33's estimates where a node answered one."""

    peers: int
    seeds: int | None = None
    leechers: int | None = None


def _private(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    return address.is_loopback or address.is_private


def _session(settings: DhtSettings):
    import libtorrent as lt  # a runtime dependency, loaded only when the DHT is asked

    local = bool(settings.nodes) and all(_private(h) for h, _ in settings.nodes)
    pack = {
        "listen_interfaces": "127.0.0.1:0" if local else "0.0.0.0:0",
        "enable_dht": True, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "dht_upload_rate_limit": UPLOAD_LIMIT,
        "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.status_notification,
    }
    if settings.nodes:
        pack["dht_bootstrap_nodes"] = ""
    if local:
        # A DHT of nodes on one host or network: libtorrent's defences against a public-DHT attacker
        # (one node per IP, node ids derived from the IP) would keep every node out.
        for key in ("dht_restrict_routing_ips", "dht_restrict_search_ips", "dht_prefer_verified_node_ids",
                    "dht_enforce_node_id", "dht_ignore_dark_internet"):
            pack[key] = False
    ses = lt.session(pack)
    for host, port in settings.nodes:
        ses.add_dht_node((host, port))
    return lt, ses


def dht_counts(hashes: Iterable[bytes], settings: DhtSettings) -> dict[bytes, DhtCount]:
    """Look every 20-byte infohash up at once; the answer has an entry for each.

    Raises:
        ProbeError: the DHT could not be joined (no node answered within the bound).
    """
    wanted = list(dict.fromkeys(hashes))
    deadline = time.monotonic() + settings.seconds
    lt, ses = _session(settings)
    try:
        _join(lt, ses, min(deadline, time.monotonic() + settings.seconds / 3))
        peers: dict[bytes, set] = {}
        for h in wanted:
            ses.dht_get_peers(lt.sha1_hash(h))
        while len(peers) < len(wanted) and time.monotonic() < deadline:
            ses.wait_for_alert(100)
            for alert in ses.pop_alerts():
                if isinstance(alert, lt.dht_get_peers_reply_alert):
                    key = alert.info_hash.to_bytes()
                    peers.setdefault(key, set()).update(map(tuple, alert.peers()))
        nodes = _live_nodes(lt, ses, deadline)
        scraped = _scrape(nodes, wanted, deadline)
    finally:
        del ses
    found = {}
    for h in wanted:
        seeds, leechers = scraped.get(h, (None, None))
        found[h] = DhtCount(len(peers.get(h, ())), seeds, leechers)
    return found


def _join(lt, ses, deadline: float) -> None:
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.dht_bootstrap_alert):
                return
    if not _live_nodes(lt, ses, time.monotonic() + 0.5):
        raise ProbeError("unreachable", "no DHT node answered: cannot join the DHT")


def _live_nodes(lt, ses, deadline: float) -> list[tuple[str, int]]:
    ses.dht_live_nodes(lt.sha1_hash(os.urandom(20)))
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.dht_live_nodes_alert):
                return [tuple(n["endpoint"]) for n in alert.nodes]
    return []


def _scrape(nodes: list[tuple[str, int]], hashes: list[bytes], deadline: float) -> dict[bytes, tuple[int, int]]:
    """BEP 33 over UDP: the largest seed and leecher estimates any node gives for each infohash."""
    if not nodes or not hashes:
        return {}
    family = socket.AF_INET6 if ":" in nodes[0][0] else socket.AF_INET
    found: dict[bytes, tuple[int, int]] = {}
    me = os.urandom(20)
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        asked: dict[bytes, bytes] = {}
        for i, h in enumerate(hashes):
            for node in nodes[:16]:
                tx = i.to_bytes(4, "big")
                asked[tx] = h
                query = {b"t": tx, b"y": b"q", b"q": b"get_peers",
                         b"a": {b"id": me, b"info_hash": h, b"scrape": 1}}
                try:
                    sock.sendto(encode(query), node)
                except OSError:
                    continue
        end = min(deadline, time.monotonic() + 1.0)
        while time.monotonic() < end:
            try:
                data, _ = sock.recvfrom(4096)
            except BlockingIOError:
                time.sleep(0.01)
                continue
            except OSError:
                break
            answer = _bloom_answer(data)
            if answer is None or answer[0] not in asked:
                continue
            h = asked[answer[0]]
            seeds, peers = answer[1], answer[2]
            old = found.get(h, (0, 0))
            found[h] = (max(old[0], seeds), max(old[1], peers))
    return found


def _bloom_answer(data: bytes) -> tuple[bytes, int, int] | None:
    """(transaction id, seeds, downloaders) from a get_peers answer that carries BEP 33 filters."""
    try:
        message = decode(data)
    except BencodeError:
        return None
    if not isinstance(message, dict) or message.get(b"y") != b"r" or not isinstance(message.get(b"r"), dict):
        return None
    body = message[b"r"]
    seeds, peers = body.get(b"BFsd"), body.get(b"BFpe")
    if not (isinstance(seeds, bytes) and isinstance(peers, bytes) and len(seeds) == len(peers) == BLOOM_BITS // 8):
        return None
    return message.get(b"t", b""), bloom_size(seeds), bloom_size(peers)


def bloom_size(bloom: bytes) -> int:
    """BEP 33's estimate of how many items a 2048-bit, 2-hash Bloom filter holds."""
    zeros = BLOOM_BITS - sum(bin(b).count("1") for b in bloom)
    if zeros == BLOOM_BITS:
        return 0
    zeros = max(1, zeros)
    return round(math.log(zeros / BLOOM_BITS) / (2 * math.log(1 - 1 / BLOOM_BITS)))
