"""What a running download shows: bytes, rate, peers and the web seeds' share, on a terminal bar (tqdm)."""

from __future__ import annotations

import sys
from typing import Any

from modelreg.swarm.session import lt


class Traffic:
    """Payload bytes received, per kind of source, summed over every connection seen.

    libtorrent's counters are per connection and vanish when it closes, so the largest value seen for
    each connection is kept (sampled often enough, the loss is at most the last interval's bytes).
    """

    def __init__(self) -> None:
        self._seen: dict[tuple, tuple[bool, int]] = {}
        self.peers = 0

    def sample(self, peer_infos: list[Any]) -> None:
        lib = lt()
        self.peers = 0
        for p in peer_infos:
            web = p.connection_type in (lib.peer_info.web_seed, lib.peer_info.http_seed)
            self.peers += not web
            key = (web, p.ip, getattr(p, "local_endpoint", None))
            old = self._seen.get(key, (web, 0))[1]
            self._seen[key] = (web, max(old, p.total_download))

    @property
    def webseed_bytes(self) -> int:
        return sum(n for web, n in self._seen.values() if web)

    @property
    def peer_bytes(self) -> int:
        return sum(n for web, n in self._seen.values() if not web)

    @property
    def webseed_share(self) -> float:
        total = self.webseed_bytes + self.peer_bytes
        return self.webseed_bytes / total if total else 0.0


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
