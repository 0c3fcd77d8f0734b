"""Web-seed probe: does a BEP 19 web seed answer for the torrent's first real file, with the right length?

One ``GET`` with ``Range: bytes=0-0`` (redirects followed, as BitTorrent clients do). The length is the
total in ``Content-Range`` of a 206, the ``Content-Length`` of a 200 (a server that ignores ``Range``;
its body is not read), or the ``X-Linked-Size`` that Hugging Face puts on its redirect to the CDN.
A web seed is ``ok`` when it answers 200 or 206 with the length the torrent gives the file.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp

from modelreg.torrent.metainfo import FileEntry, Torrent

_CONTENT_RANGE = re.compile(r"^bytes\s+(?:\d+-\d+|\*)/(\d+)$")
MAX_REDIRECTS = 5


@dataclass(frozen=True)
class Probe:
    """What one web seed answered: ``error`` says why it is not ``ok`` (None when it is)."""

    ok: bool
    status: int | None
    latency_ms: int | None
    length_ok: bool | None
    error: str | None


def first_file(torrent: Torrent) -> FileEntry | None:
    """The first file with bytes in it (pad files are never in ``files``), or None for an empty torrent."""
    return next((f for f in torrent.files if f.size > 0), None)


def file_url(webseed: str, torrent: Torrent, entry: FileEntry) -> str:
    """Where BEP 19 says a client fetches ``entry``: the URL itself for a single-file torrent whose URL does
    not end in ``/``, else the URL as a folder holding ``<name>/<path>`` (``<name>`` alone for one file)."""
    if torrent.single_file:
        return webseed + quote(torrent.name) if webseed.endswith("/") else webseed
    base = webseed if webseed.endswith("/") else webseed + "/"
    return base + "/".join(quote(part) for part in (torrent.name, *entry.path))


async def probe(http: aiohttp.ClientSession, url: str, size: int, timeout: float) -> Probe:
    """Ask ``url`` for its first byte and tell whether it is a working web seed for a file of ``size`` bytes."""
    start = time.monotonic()
    try:
        async with http.get(url, headers={"Range": "bytes=0-0"}, allow_redirects=True, max_redirects=MAX_REDIRECTS,
                            timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            latency = round((time.monotonic() - start) * 1000)
            status = resp.status
            length = _length(resp)
            if status == 200:
                resp.close()  # a server that ignored Range would send the whole file: hang up instead
    except TimeoutError:
        return Probe(False, None, None, None, f"no answer within {timeout:g} s")
    except aiohttp.TooManyRedirects:
        return Probe(False, None, None, None, f"more than {MAX_REDIRECTS} redirects")
    except aiohttp.ClientError as exc:
        return Probe(False, None, None, None, f"cannot connect: {exc}"[:300])
    if status not in (200, 206):
        return Probe(False, status, latency, None, f"answered HTTP {status}")
    if length is None:
        return Probe(False, status, latency, None, "the answer does not say the file's length")
    if length != size:
        return Probe(False, status, latency, False, f"the file has {length} bytes, the torrent says {size}")
    return Probe(True, status, latency, True, None)


def _length(resp: aiohttp.ClientResponse) -> int | None:
    """The full length of the file the answer is about, where it says it."""
    if resp.status == 206:
        m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "").strip())
        if m:
            return int(m.group(1))
    elif resp.status == 200 and resp.headers.get("Content-Length", "").isdigit():
        return int(resp.headers["Content-Length"])
    for hop in reversed(resp.history):
        linked = hop.headers.get("X-Linked-Size", "")
        if linked.isdigit():
            return int(linked)
    return None
