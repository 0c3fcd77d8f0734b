"""modelreg health at scale: 1,000 hybrid torrents that name a loopback HTTP tracker and a UDP tracker
(2,000 infohashes each) and a loopback web seed (1,000 probes), checked in one run with --jobs 32.

Target: under 1/100 of the public registry's approach, a 10 s DHT probe per torrent one at a time
(10,000 s for 1,000 torrents), i.e. under 100 s. The reference measured in the same run is the same
checks made one torrent at a time (--jobs 1, one call per torrent) on a sample, scaled to 1,000.
The DHT is left out: its lookups run beside the rest, bounded by --timeout, in one session.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from trackers import HttpTracker, Swarm, UdpTracker, WebseedServer  # noqa: E402

from modelreg.health.check import HealthSettings, check_health  # noqa: E402
from modelreg.registry.catalog import load_catalog  # noqa: E402
from modelreg.registry.health import HealthStore  # noqa: E402
from modelreg.torrent.create import LocalSource, create_torrent  # noqa: E402

TORRENTS, SAMPLE, PUBLIC_SECONDS_PER_TORRENT = 1000, 40, 10.0


def make_registry(root: Path, trackers: list[str], webseed: str) -> dict[str, bytes]:
    """TORRENTS one-file hybrid torrents in <root>/registry/bench/m<i>/, and the files the web seed serves."""
    rng = random.Random(1)
    served = {}
    for i in range(TORRENTS):
        name = f"m{i:04d}"
        data = rng.randbytes(2048)
        folder = root / "src" / name
        folder.mkdir(parents=True)
        (folder / "w.bin").write_bytes(data)
        torrent = create_torrent(LocalSource.open(folder), piece_length=16384, trackers=trackers, webseeds=[webseed])
        out = root / "registry" / "bench" / name
        out.mkdir(parents=True)
        (out / f"{name}.torrent").write_bytes(torrent)
        served[f"{name}/w.bin"] = data
    return served


def fill(tracker, models) -> None:
    """A few peers in every swarm, as announces would leave them."""
    for k, m in enumerate(models):
        for h in (bytes.fromhex(m.torrent.infohash_v1), bytes.fromhex(m.torrent.infohash_v2)[:20]):
            swarm = tracker.swarms.setdefault(h, Swarm())
            for p in range(k % 4):
                swarm.announce(os.urandom(20), 6881 + p, 0 if p % 2 == 0 else 100, "started")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, HttpTracker() as http, UdpTracker() as udp:
        root = Path(tmp)
        files: dict[str, bytes] = {}
        with WebseedServer(files) as web:
            started = time.perf_counter()
            files.update(make_registry(root, [http.announce_url, udp.announce_url], web.url("good")))
            made = time.perf_counter() - started
            registry = root / "registry"
            models = load_catalog(registry).models
            assert len(models) == TORRENTS
            for tracker in (http, udp):
                fill(tracker, models)
            store = HealthStore.for_registry(registry)

            started = time.perf_counter()
            report = check_health(models, store, HealthSettings(jobs=32, timeout=10, dht=None))
            total = time.perf_counter() - started
            assert report.checked == TORRENTS and not report.failures, report.summary()[:2000]
            sample = random.Random(2).sample(models, SAMPLE)
            started = time.perf_counter()
            for m in sample:
                check_health([m], store, HealthSettings(jobs=1, timeout=10, dht=None))
            one_by_one = (time.perf_counter() - started) / SAMPLE * TORRENTS
            summary = store.load(models[3].repo_id, models[3].revision).summary()
            assert (summary["seeders"], summary["leechers"], summary["webseed_ok"]) == (2, 1, True), summary

    public = PUBLIC_SECONDS_PER_TORRENT * TORRENTS
    print(f"{TORRENTS} torrents made in {made:.1f} s; checked (2 trackers x {2 * TORRENTS} infohashes, "
          f"{TORRENTS} web-seed probes, {http.scrapes} HTTP + {udp.scrapes} UDP scrape requests) in {total:.2f} s")
    print(f"  vs the public registry's 10 s per torrent one at a time ({public:,.0f} s): 1/{public / total:,.0f} "
          f"(target: under 1/100, i.e. < {public / 100:.0f} s)")
    print(f"  vs the same checks one torrent at a time, measured on {SAMPLE} and scaled: {one_by_one:.1f} s, "
          f"{one_by_one / total:.1f}x slower than one run")


if __name__ == "__main__":
    main()
