"""Magnet links (BEP 9), with the v2 infohash as a multihash (BEP 52)."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from modelreg.torrent.metainfo import Torrent


def magnet_link(torrent: Torrent, trackers: Iterable[str] = (), webseeds: Iterable[str] = (),
                source: str | None = None) -> str:
    """A magnet link with both infohashes, name, size, every tracker and every web seed.

    ``trackers`` and ``webseeds`` are added after the torrent's own (an internal mirror's, say);
    ``source`` is a URL of the .torrent file itself (``xs``, BEP 9's exact source), which lets a client
    start without any peer to fetch the metadata from.
    """
    params = []
    if torrent.infohash_v1:
        params.append(("xt", "urn:btih:" + torrent.infohash_v1))
    if torrent.infohash_v2:
        params.append(("xt", "urn:btmh:1220" + torrent.infohash_v2))
    params.append(("dn", torrent.name))
    params.append(("xl", str(torrent.total_size)))
    params += [("tr", url) for url in dict.fromkeys((*torrent.trackers, *trackers))]
    params += [("ws", url) for url in dict.fromkeys((*torrent.webseeds, *webseeds))]
    if source:
        params.append(("xs", source))
    return "magnet:?" + "&".join(f"{key}={_quote(value, key)}" for key, value in params)


def _quote(value: str, key: str) -> str:
    # The urn's colons are part of BEP 9's syntax; everything else is percent-encoded.
    return quote(value, safe=":" if key == "xt" else "")
