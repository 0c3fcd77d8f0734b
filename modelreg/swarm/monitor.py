"""What a running download shows: bytes, rate, peers and the web seeds' share, on a terminal bar (tqdm)."""

from __future__ import annotations

import socket
import sys
from typing import Any
from urllib.parse import urlsplit

from modelreg.swarm.session import lt


class Traffic:
    """Payload bytes received from web seeds and from peers, counted from libtorrent's block alerts.

    Per-connection counters vanish when a connection closes (and peers disconnect as soon as both sides
    are complete), so each finished 16 KiB block is counted instead, by the address it came from. An
    address is a web seed's when a web-seed connection was seen from it, or when a web seed URL names it.

    libtorrent 2.1 drops a block's ``block_finished_alert`` when the block is written after the torrent
    has every piece (it checks pieces from its cache and writes behind, so under load a whole small
    download can end so): each block's latest request (``block_downloading_alert``, never dropped) is
    kept until its block is finished, and the blocks never told finished are counted, once the download
    and its writes are done (:meth:`settled`), by the address they were requested from.
    """

    BLOCK = 16 * 1024

    def __init__(self, piece_length: int, total_size: int, webseed_urls: tuple[str, ...] = ()):
        self.piece_length, self.total_size = piece_length, total_size
        self.web_endpoints: set[tuple[str, int]] = set(_endpoints(webseed_urls))
        self.webseed_bytes = 0
        self.peer_bytes = 0
        self.peers = 0
        self.requested: dict[tuple[int, int], tuple[str, int]] = {}  # (piece, block) -> address asked

    def sample(self, peer_infos: list[Any]) -> None:
        lib = lt()
        self.peers = 0
        for p in peer_infos:
            if p.connection_type in (lib.peer_info.web_seed, lib.peer_info.http_seed):
                self.web_endpoints.add(tuple(p.ip))
            else:
                self.peers += 1

    def request(self, alert: Any) -> None:
        """Note a ``block_downloading_alert`` (a block asked from an address)."""
        self.requested[(alert.piece_index, alert.block_index)] = tuple(alert.endpoint)

    def block(self, alert: Any) -> None:
        """Count a ``block_finished_alert``."""
        self.requested.pop((alert.piece_index, alert.block_index), None)
        self._count(tuple(alert.endpoint), alert.piece_index, alert.block_index)

    def settled(self) -> tuple[int, int]:
        """Bytes from web seeds and from peers, once every wanted block is downloaded and written: the
        blocks whose finished alert never came count for the address they were last asked from."""
        for (piece, block), endpoint in self.requested.items():
            self._count(endpoint, piece, block)
        self.requested.clear()
        return self.webseed_bytes, self.peer_bytes

    def _count(self, endpoint: tuple[str, int], piece: int, block: int) -> None:
        piece_size = min(self.piece_length, self.total_size - piece * self.piece_length)
        size = max(0, min(self.BLOCK, piece_size - block * self.BLOCK))
        if endpoint in self.web_endpoints:
            self.webseed_bytes += size
        else:
            self.peer_bytes += size

    @property
    def webseed_share(self) -> float:
        total = self.webseed_bytes + self.peer_bytes
        return self.webseed_bytes / total if total else 0.0


def _endpoints(urls: tuple[str, ...]) -> list[tuple[str, int]]:
    out = []
    for url in urls:
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP):
                out.append((info[4][0], port))
        except (OSError, ValueError, UnicodeError):
            continue
    return out


class Bar:
    """A byte progress bar on stderr when it is a terminal and not ``quiet``; otherwise nothing."""

    def __init__(self, total: int, description: str, quiet: bool):
        self._bar = None
        self._done = 0
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit="B", unit_scale=True, unit_divisor=1024,
                             dynamic_ncols=True, file=sys.stderr, leave=False)

    def update(self, done: int, traffic: Traffic, state: str = "") -> None:
        if self._bar is None:
            return
        if done > self._done:
            self._bar.update(done - self._done)
            self._done = done
        extra = f"{state}, " if state else ""
        self._bar.set_postfix_str(f"{extra}{traffic.peers} peer(s), web seed {traffic.webseed_share:.0%}", refresh=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def human_bytes(n: float) -> str:
    """Bytes in decimal units (12.3 MB), as download tools show them."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"
