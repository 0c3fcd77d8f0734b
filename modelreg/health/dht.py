"""DHT estimate: how many peers the BitTorrent DHT knows for many torrents, looked up at once in one session.

libtorrent (imported only here, and only when a check runs) joins the DHT, then runs a BEP 5
``get_peers`` traversal for every infohash in one session, started at 800 a second and all in flight
together (a v2 infohash by its first 20 bytes, as libtorrent announces it), and counts the distinct
peers each finds, all within a time bound.

libtorrent answers BEP 33 scrapes but does not send them, so the seed and leecher estimates are asked
here directly: a ``get_peers`` with ``scrape: 1`` over plain UDP to the nodes in the session's routing
table; the nodes that store the torrent answer with two Bloom filters (``BFsd`` seeds, ``BFpe``
peers), whose sizes are estimated as BEP 33 says. Where no node answers, only the peer count is known.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import select
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass

from modelreg.errors import ProbeError
from modelreg.torrent.bencode import BencodeError, decode, encode
from modelreg.torrent.ltsession import LOCAL_DHT, NO_PORT_MAPPING
from modelreg.torrent.ltsession import lt as load_libtorrent

BLOOM_BITS = 2048
#: Routing-table nodes asked for a BEP 33 scrape of each infohash.
MAX_SCRAPED_NODES = 16
PER_NODE_PER_SECOND = 4
#: Lookups started every TICK seconds: 800 a second found every peer of 2,000 infohashes on a loopback DHT
#: of 4 nodes; 2,000 a second lost a third of them.
LOOKUPS_PER_TICK, TICK = 40, 0.05
#: libtorrent's default DHT upload limit (8 kB/s) would let a few hundred lookups through per run.
UPLOAD_LIMIT = 1 << 20
BLOCK_RATELIMIT = 10_000


@dataclass(frozen=True)
class DhtSettings:
    """``nodes``: (host, port) to bootstrap from (none: libtorrent's public routers); ``seconds``: the bound,
    on top of the time the lookups take to start (:data:`LOOKUPS_PER_TICK` every :data:`TICK` seconds)."""

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


def _session(settings: DhtSettings, lookups: int = 0):
    lt = load_libtorrent()  # a runtime dependency, loaded only when the DHT is asked

    local = bool(settings.nodes) and all(_private(h) for h, _ in settings.nodes)
    pack = {
        "listen_interfaces": "127.0.0.1:0" if local else "0.0.0.0:0",
        "enable_dht": True, "enable_lsd": False, **NO_PORT_MAPPING,
        "dht_upload_rate_limit": UPLOAD_LIMIT,
        # libtorrent bans an address that sends more than 5 packets a second, answers included: many
        # lookups at once get more than that from a node that is close to several of the infohashes
        # (and from every node of a loopback DHT, which share one address).
        "dht_block_ratelimit": BLOCK_RATELIMIT,
        # every node asked posts an alert: a full queue would drop the replies
        "alert_queue_size": max(1000, 100 * lookups),
        "alert_mask": lt.alert.category_t.dht_notification | lt.alert.category_t.dht_operation_notification,
    }
    if settings.nodes:
        pack["dht_bootstrap_nodes"] = ""
    if local:
        pack.update(LOCAL_DHT)
    return lt, lt.session(pack)


def dht_counts(hashes: Iterable[bytes], settings: DhtSettings) -> dict[bytes, DhtCount]:
    """Look every 20-byte infohash up at once; the answer has an entry for each.

    Raises:
        ProbeError: the DHT could not be joined (no node answered within the bound).
    """
    wanted = list(dict.fromkeys(hashes))
    start = time.monotonic()
    reserve = min(1.0, settings.seconds / 4)  # for the BEP 33 scrapes at the end
    # bounded: the time the lookups take to start, plus ``seconds``
    deadline = start + settings.seconds - reserve + len(wanted) * TICK / LOOKUPS_PER_TICK
    lt, ses = _session(settings, len(wanted))
    try:
        _join(lt, ses, settings.nodes, min(deadline, start + settings.seconds / 3))
        peers: dict[bytes, set] = {}
        # Lookups start at a steady pace: thousands at once overflow the UDP buffers of the nodes (and
        # ours), and a lookup whose requests are lost ends with nothing.
        pending = list(reversed(wanted))
        # libtorrent posts a reply per node that knows peers and nothing when a traversal ends: the lookups
        # are over when no request has gone out and no reply come in for a while.
        quiet = max(2.0, settings.seconds / 5)
        last = tick = time.monotonic()
        while time.monotonic() < deadline and (pending or time.monotonic() - last < quiet):
            if pending and time.monotonic() >= tick:
                for _ in range(min(len(pending), LOOKUPS_PER_TICK)):
                    ses.dht_get_peers(lt.sha1_hash(pending.pop()))
                tick = last = time.monotonic() + TICK
            ses.wait_for_alert(int(TICK * 1000))
            for alert in ses.pop_alerts():
                if isinstance(alert, lt.dht_get_peers_reply_alert):
                    peers.setdefault(alert.info_hash.to_bytes(), set()).update(map(tuple, alert.peers()))
                    last = time.monotonic()
                elif isinstance(alert, lt.dht_outgoing_get_peers_alert):
                    last = time.monotonic()
        nodes = _routing_nodes(lt, ses)
    finally:
        del ses
    scraped = _scrape(nodes, wanted, time.monotonic() + reserve)
    found = {}
    for h in wanted:
        seeds, leechers = scraped.get(h, (None, None))
        found[h] = DhtCount(len(peers.get(h, ())), seeds, leechers)
    return found


def _join(lt, ses, nodes: tuple[tuple[str, int], ...], deadline: float) -> None:
    """Wait until the DHT routing table has a node; ``nodes`` are added once the session listens (before,
    they are dropped), and again every second until then.

    Raises:
        ProbeError: no node answered before the deadline.
    """
    asked = 0.0
    while time.monotonic() < deadline:
        if time.monotonic() - asked > 1.0:
            for host, port in nodes:
                ses.add_dht_node((host, port))
            asked = time.monotonic()
        ses.wait_for_alert(100)
        ses.pop_alerts()
        if _routing_nodes(lt, ses):
            return
    raise ProbeError("unreachable", "no DHT node answered: cannot join the DHT")


def _routing_nodes(lt, ses) -> list[tuple[str, int]]:
    """The (IPv4) nodes of the session's routing table, from its saved DHT state."""
    state = lt.bdecode(lt.write_session_params_buf(ses.session_state())) or {}
    compact = (state.get(b"dht state") or {}).get(b"nodes") or []
    return [(socket.inet_ntoa(n[:4]), int.from_bytes(n[4:6], "big")) for n in compact if len(n) == 6]


def _scrape(nodes: list[tuple[str, int]], hashes: list[bytes], deadline: float) -> dict[bytes, tuple[int, int]]:
    """BEP 33 over UDP: the largest seed and leecher estimates any node gives for each infohash.

    libtorrent nodes block an address that sends them more than 5 requests a second, so each node gets
    at most :data:`PER_NODE_PER_SECOND` a second: past a few hashes per node this scrape is a sample.
    """
    nodes = nodes[:MAX_SCRAPED_NODES]
    if not nodes or not hashes:
        return {}
    budget = max(1, int(PER_NODE_PER_SECOND * max(0.0, deadline - time.monotonic())))
    me = os.urandom(20)
    asked: dict[bytes, bytes] = {}
    found: dict[bytes, tuple[int, int]] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for i, h in enumerate(hashes[:budget]):
            tx = i.to_bytes(4, "big")
            asked[tx] = h
            query = encode({b"t": tx, b"y": b"q", b"q": b"get_peers", b"a": {b"id": me, b"info_hash": h, b"scrape": 1}})
            for node in nodes:
                with contextlib.suppress(OSError):
                    sock.sendto(query, node)
        answers, expected = 0, len(asked) * len(nodes)
        while answers < expected and time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], max(0.0, min(0.1, deadline - time.monotonic())))
            if not ready:
                continue
            try:
                data = sock.recv(4096)
            except OSError:
                continue
            answers += 1
            answer = _bloom_answer(data)
            if answer is None or answer[0] not in asked:
                continue
            h = asked[answer[0]]
            old = found.get(h, (0, 0))
            found[h] = (max(old[0], answer[1]), max(old[1], answer[2]))
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
