"""modelreg health at scale: 1,000 hybrid torrents that name a loopback HTTP tracker and a UDP tracker
(2,000 infohashes each) and a loopback web seed (1,000 probes), checked in one run with --jobs 32.

Target: under 1/100 of the public registry's approach, a 10 s DHT probe per torrent one at a time
(10,000 s for 1,000 torrents), i.e. under 100 s. The reference measured in the same run is the same
checks made one torrent at a time (--jobs 1, one call per torrent) on a sample, scaled to 1,000.

Then the DHT alone: the same 1,000 torrents' 2,000 infohashes on a loopback DHT of 4 libtorrent nodes
that announced them (0 to 3 peers each), looked up in one session (in a real run this goes on beside
the scrapes and probes, in a thread).
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

import libtorrent as lt  # noqa: E402
from ltutil import loopback_dht  # noqa: E402
from trackers import HttpTracker, Swarm, UdpTracker, WebseedServer  # noqa: E402

from modelreg.health.check import HealthSettings, check_health  # noqa: E402
from modelreg.health.dht import DhtSettings, dht_counts  # noqa: E402
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


def bench_dht(models) -> None:
    nodes = loopback_dht(4)
    ports = [s.listen_port() for s in nodes]
    time.sleep(0.5)
    hashes, want = [], []
    for k, m in enumerate(models):
        for h in (bytes.fromhex(m.torrent.infohash_v1), bytes.fromhex(m.torrent.infohash_v2)[:20]):
            hashes.append(h)
            want.append(k % 4)
            for s in nodes[: k % 4]:
                s.dht_announce(lt.sha1_hash(h), s.listen_port(), 0)
    time.sleep(3)
    started = time.perf_counter()
    found = dht_counts(hashes, DhtSettings(tuple(("127.0.0.1", p) for p in ports), 10))
    took = time.perf_counter() - started
    right = sum(found[h].peers == n for h, n in zip(hashes, want, strict=True))
    public = PUBLIC_SECONDS_PER_TORRENT * len(models)
    print(f"DHT: {len(hashes)} lookups in one session in {took:.2f} s, {right}/{len(hashes)} peer counts right; "
          f"vs 10 s per torrent one at a time: 1/{public / took:,.0f}")
    del nodes


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
            dht_models = models

    public = PUBLIC_SECONDS_PER_TORRENT * TORRENTS
    print(f"{TORRENTS} torrents made in {made:.1f} s; checked (2 trackers x {2 * TORRENTS} infohashes, "
          f"{TORRENTS} web-seed probes, {http.scrapes} HTTP + {udp.scrapes} UDP scrape requests) in {total:.2f} s")
    print(f"  vs the public registry's 10 s per torrent one at a time ({public:,.0f} s): 1/{public / total:,.0f} "
          f"(target: under 1/100, i.e. < {public / 100:.0f} s)")
    print(f"  vs the same checks one torrent at a time, measured on {SAMPLE} and scaled: {one_by_one:.1f} s, "
          f"{one_by_one / total:.1f}x slower than one run")
    bench_dht(dht_models)


if __name__ == "__main__":
    main()
