"""Tracker scrape: how many seeders, leechers and completed downloads a tracker knows for many infohashes.

HTTP trackers (BEP 48): the ``announce`` URL's last path segment becomes ``scrape`` and the infohashes
go in repeated ``info_hash`` parameters; the answer is ``{"files": {<20 bytes>: {"complete",
"incomplete", "downloaded"}}}``. UDP trackers (BEP 15): a connect round trip, then scrape requests of
up to :data:`UDP_BATCH` infohashes, answered with (seeders, completed, leechers) for each, in order.
A v2 infohash is scraped by its first 20 bytes, as trackers and libtorrent do.

Anything that is not a well-formed answer (a timeout, an HTTP error, a ``failure reason``, garbage)
raises :class:`~modelreg.errors.ProbeError`: the caller records it as that tracker's failure.
"""

from __future__ import annotations

import asyncio
import os
import struct
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
from yarl import URL

from modelreg.errors import ProbeError
from modelreg.torrent.bencode import BencodeError, decode

#: Infohashes per HTTP scrape request (about 60 bytes of URL each: 4 KB URLs pass every server).
HTTP_BATCH = 64
#: Infohashes per UDP scrape request: BEP 15's limit for a packet that fits every path.
UDP_BATCH = 74
#: The largest scrape answer read (about 60 bytes per infohash).
MAX_ANSWER = 1 << 20
_UDP_MAGIC = 0x41727101980


@dataclass(frozen=True)
class Counts:
    """A tracker's figures for one infohash: seeders, leechers, completed downloads."""

    complete: int
    incomplete: int
    downloaded: int

    def as_dict(self) -> dict[str, int]:
        return {"complete": self.complete, "incomplete": self.incomplete, "downloaded": self.downloaded}


def scrape_url(announce: str) -> str | None:
    """The BEP 48 scrape URL of an HTTP announce URL, or None when the tracker cannot be scraped (the last
    path segment does not start with ``announce``)."""
    parts = urlsplit(announce)
    head, _, last = parts.path.rpartition("/")
    if not last.startswith("announce"):
        return None
    return urlunsplit(parts._replace(path=f"{head}/scrape{last[len('announce'):]}"))


async def scrape(http: aiohttp.ClientSession, tracker: str, hashes: list[bytes], timeout: float,
                 limit: asyncio.Semaphore | None = None) -> dict[bytes, Counts]:
    """Scrape ``hashes`` (20 bytes each) at ``tracker``; every hash asked for is in the answer.

    Raises:
        ProbeError: the tracker cannot be scraped or did not answer well (``reason`` says how).
    """
    scheme = urlsplit(tracker).scheme.lower()
    limit = limit or asyncio.Semaphore(1)
    if scheme in ("http", "https"):
        url = scrape_url(tracker)
        if url is None:
            raise ProbeError("unsupported", "the announce URL does not end in /announce: the tracker has no scrape")
        batches = [hashes[i:i + HTTP_BATCH] for i in range(0, len(hashes), HTTP_BATCH)]

        async def one(batch: list[bytes]) -> dict[bytes, Counts]:
            async with limit:
                return await _scrape_http(http, url, batch, timeout)

        found: dict[bytes, Counts] = {}
        for part in await asyncio.gather(*(one(b) for b in batches)):
            found.update(part)
        return found
    if scheme == "udp":
        async with limit:
            return await _scrape_udp(tracker, hashes, timeout)
    raise ProbeError("unsupported", f"cannot scrape a {scheme or 'schemeless'} tracker")


async def _scrape_http(http: aiohttp.ClientSession, url: str, hashes: list[bytes], timeout: float) -> dict[bytes, Counts]:
    query = "&".join("info_hash=" + quote(h, safe="") for h in hashes)
    full = URL(url + ("&" if "?" in url else "?") + query, encoded=True)
    try:
        async with http.get(full, timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=True) as resp:
            if resp.status != 200:
                raise ProbeError("http-error", f"the scrape answered HTTP {resp.status}")
            body = await resp.content.read(MAX_ANSWER + 1)
    except TimeoutError as exc:
        raise ProbeError("timeout", f"no scrape answer within {timeout:g} s") from exc
    except aiohttp.ClientError as exc:
        raise ProbeError("unreachable", f"cannot reach the tracker: {exc}") from exc
    if len(body) > MAX_ANSWER:
        raise ProbeError("bad-response", f"the scrape answer is larger than {MAX_ANSWER} bytes")
    try:
        data = decode(body)
    except BencodeError as exc:
        raise ProbeError("bad-response", f"the scrape answer is not bencode ({exc})") from exc
    if not isinstance(data, dict):
        raise ProbeError("bad-response", "the scrape answer is not a dictionary")
    if b"failure reason" in data:
        reason = data[b"failure reason"]
        text = reason.decode("utf-8", "replace")[:200] if isinstance(reason, bytes) else "?"
        raise ProbeError("refused", f"the tracker refused the scrape: {text}")
    files = data.get(b"files")
    if not isinstance(files, dict):
        raise ProbeError("bad-response", "the scrape answer has no 'files' dictionary")
    found = {}
    for h in hashes:
        entry = files.get(h)
        if entry is None:
            found[h] = Counts(0, 0, 0)  # BEP 48: a tracker leaves out the torrents it has no peers for
            continue
        if not isinstance(entry, dict):
            raise ProbeError("bad-response", "a 'files' entry of the scrape answer is not a dictionary")
        values = [entry.get(k, 0) for k in (b"complete", b"incomplete", b"downloaded")]
        if not all(isinstance(v, int) and 0 <= v < 1 << 40 for v in values):
            raise ProbeError("bad-response", "a count in the scrape answer is not a non-negative integer")
        found[h] = Counts(*values)
    return found


class _Udp(asyncio.DatagramProtocol):
    """One socket to one UDP tracker; answers are matched to requests by transaction id."""

    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future] = {}

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) >= 8:
            future = self.waiting.pop(struct.unpack_from(">I", data, 4)[0], None)
            if future is not None and not future.done():
                future.set_result(data)

    def error_received(self, exc: Exception) -> None:
        for future in self.waiting.values():
            if not future.done():
                future.set_exception(ProbeError("unreachable", f"cannot reach the tracker: {exc}"))
        self.waiting.clear()

    async def ask(self, transport: asyncio.DatagramTransport, packet: bytes, tx: int, timeout: float) -> bytes:
        """Send ``packet`` and wait for the answer to ``tx``, sending once more half-way (UDP may drop it)."""
        future = asyncio.get_running_loop().create_future()
        self.waiting[tx] = future
        try:
            for wait in (timeout / 2, timeout / 2):
                transport.sendto(packet)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), wait)
                except TimeoutError:
                    continue
            raise ProbeError("timeout", f"no answer from the tracker within {timeout:g} s")
        finally:
            self.waiting.pop(tx, None)


async def _scrape_udp(tracker: str, hashes: list[bytes], timeout: float) -> dict[bytes, Counts]:
    parts = urlsplit(tracker)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ProbeError("unsupported", f"bad tracker URL: {exc}") from exc
    if not host or not port:
        raise ProbeError("unsupported", "a UDP tracker URL needs a host and a port")
    loop = asyncio.get_running_loop()
    try:
        transport, proto = await asyncio.wait_for(
            loop.create_datagram_endpoint(_Udp, remote_addr=(host, port)), timeout)
    except (TimeoutError, OSError) as exc:
        raise ProbeError("unreachable", f"cannot reach the tracker: {exc}") from exc
    try:
        tx = _tx()
        answer = await proto.ask(transport, struct.pack(">QII", _UDP_MAGIC, 0, tx), tx, timeout)
        action = _action(answer, min_length=16)
        if action != 0:
            raise ProbeError("bad-response", f"the tracker answered the connect request with action {action}")
        connection = answer[8:16]
        found: dict[bytes, Counts] = {}
        for i in range(0, len(hashes), UDP_BATCH):
            batch = hashes[i:i + UDP_BATCH]
            tx = _tx()
            packet = connection + struct.pack(">II", 2, tx) + b"".join(batch)
            answer = await proto.ask(transport, packet, tx, timeout)
            action = _action(answer, min_length=8)
            if action != 2 or len(answer) != 8 + 12 * len(batch):
                raise ProbeError("bad-response", f"the scrape answer has action {action} and {len(answer)} bytes, "
                                                 f"not action 2 and {8 + 12 * len(batch)}")
            for j, h in enumerate(batch):
                seeders, completed, leechers = struct.unpack_from(">III", answer, 8 + 12 * j)
                found[h] = Counts(seeders, leechers, completed)
        return found
    finally:
        transport.close()


def _action(answer: bytes, min_length: int) -> int:
    action = struct.unpack_from(">I", answer)[0]
    if action == 3:
        text = answer[8:208].decode("utf-8", "replace")
        raise ProbeError("refused", f"the tracker refused the scrape: {text}")
    if len(answer) < min_length:
        raise ProbeError("bad-response", f"an answer of {len(answer)} bytes is too short")
    return action


def _tx() -> int:
    return struct.unpack(">I", os.urandom(4))[0]
