"""Streaming ``add`` from a hub against ``create`` from a local folder (target: at least 80% of create's speed).

Run: ``python bench/bench_add.py`` (or ``python bench/run.py add``). The fake hub (tests/fakehub.py) serves a
2 GB model of ``Generated`` shards over loopback from this process; the same bytes are written to a temporary
folder and read once so ``create`` hashes from the page cache. Each side runs in its own process (so each
peak RSS is its own), interleaved, best of 3, and both must give the same infohashes. Then:

* ``add --no-lfs-check``: the same without the SHA-256 check of LFS files, a third hash pass that
  ``create`` does not make;
* the source alone (download, no hashing): how fast it can feed the engine (target > 1.5 GB/s);
* a 20 GB model (ten 2 GB shards, never stored) streamed by ``modelreg add``: wall time, peak RSS
  (target < 512 MiB) and the change in free disk space.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_create import PEAK, SHARDS  # noqa: E402  (create's model shape and peak-memory probe)
from fakehub import FakeHub, Generated  # noqa: E402

TARGET = 0.8
MIB = 1024 * 1024

PEAK = PEAK + """import json, sys, time
sys.path.insert(0, sys.argv[1])
def report(seconds, data=None):
    out = {"seconds": seconds, "rss": peak_rss(), "cpu": cpu_seconds()}
    if data is not None:
        from modelreg.torrent.metainfo import Torrent
        torrent = Torrent.from_bytes(data)
        out.update(v1=torrent.infohash_v1, v2=torrent.infohash_v2)
    print(json.dumps(out))
"""

CREATE = PEAK + """
from modelreg.torrent.create import create_torrent
from modelreg.torrent.source import LocalSource
start = time.perf_counter()
data = create_torrent(LocalSource.open(sys.argv[2]))
report(time.perf_counter() - start, data)
"""

ADD = PEAK + """
from modelreg.registry.add import add_model
from pathlib import Path
start = time.perf_counter()
added = add_model(sys.argv[2], Path(sys.argv[3]), endpoint=sys.argv[4], webseed_prefix=None, replace=True,
                  check_lfs=sys.argv[5] == "check")
report(time.perf_counter() - start, added.torrent.read_bytes())
"""

SOURCE = PEAK + """
from modelreg.hf.snapshot import fetch_snapshot
from modelreg.hf.source import HfSource
snapshot = fetch_snapshot(sys.argv[2], endpoint=sys.argv[4])
start = time.perf_counter()
total = 0
with HfSource(snapshot, endpoint=sys.argv[4]) as source:
    for file in source.files:
        for chunk in source.chunks(file):
            total += len(chunk)
report(time.perf_counter() - start)
"""


def run(script: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    out = subprocess.run([sys.executable, "-c", script, str(ROOT), *args], check=True, capture_output=True,
                         text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_folder(folder: Path, files: dict[str, Generated]) -> None:
    folder.mkdir()
    for name, content in files.items():
        with open(folder / name, "wb") as fh:
            for piece in content.chunks():
                fh.write(piece)


def warm(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb", buffering=0) as fh:
            while fh.read(16 * MIB):
                pass


def compare(hub: FakeHub, tmp: Path, rounds: int) -> dict:
    files = {name: Generated(size, seed) for seed, (name, size) in enumerate(SHARDS.items())}
    repo = hub.add_repo("Bench/Model-2B", files)
    for entry in repo.files.values():
        entry.sha256()
    folder = tmp / "Model-2B"
    write_folder(folder, files)
    warm(folder)
    total = sum(SHARDS.values())
    registry = tmp / "registry"
    creates, adds, unchecked = [], [], []
    for _ in range(rounds):  # interleaved, so every side meets the same background load
        creates.append(run(CREATE, str(folder)))
        adds.append(run(ADD, "Bench/Model-2B", str(registry), hub.endpoint, "check"))
        unchecked.append(run(ADD, "Bench/Model-2B", str(registry), hub.endpoint, "no-check"))
    feed = min((run(SOURCE, "Bench/Model-2B", "", hub.endpoint) for _ in range(2)), key=lambda r: r["seconds"])
    best_create = min(creates, key=lambda r: r["seconds"])
    best_add = min(adds, key=lambda r: r["seconds"])
    best_unchecked = min(unchecked, key=lambda r: r["seconds"])
    same = (best_add["v1"], best_add["v2"]) == (best_create["v1"], best_create["v2"]) == (
        best_unchecked["v1"], best_unchecked["v2"])
    ratio = best_create["seconds"] / best_add["seconds"]
    ratio_unchecked = best_create["seconds"] / best_unchecked["seconds"]

    def line(label: str, r: dict) -> str:
        return (f"  {label:<24} {r['seconds']:.2f} s  {total / r['seconds'] / 1e9:.2f} GB/s  CPU {r['cpu']:.2f} s  "
                f"peak RSS {r['rss'] / MIB:.0f} MiB")

    print(f"hybrid torrent of {total / 1e9:.2f} GB ({len(SHARDS)} files, {os.cpu_count()} cores), best of {rounds}:")
    print(line("create (page cache)", best_create))
    print(line("add (fake hub, loopback)", best_add))
    print(line("add --no-lfs-check", best_unchecked))
    print(line("source alone (no hashing)", feed))
    print(f"  speed ratio add/create {ratio:.2f} (target >= {TARGET}: {'PASS' if ratio >= TARGET else 'FAIL'}), "
          f"without the LFS check {ratio_unchecked:.2f} ({'PASS' if ratio_unchecked >= TARGET else 'FAIL'}); "
          f"same infohashes: {'yes' if same else 'NO'}; source feeds at {total / feed['seconds'] / 1e9:.2f} GB/s "
          f"(target > 1.5: {'PASS' if total / feed['seconds'] > 1.5e9 else 'FAIL'})")
    return {"ratio": ratio, "ratio_unchecked": ratio_unchecked, "same_infohashes": same,
            "create_s": best_create["seconds"],
            "add_s": best_add["seconds"], "feed_gbps": total / feed["seconds"] / 1e9}


def big(hub: FakeHub, tmp: Path, shards: int = 10, size: int = 2 * 10**9) -> dict:
    shard = Generated(size, 77)  # the same content in every shard: the hub hashes it once, not ten times
    files = {f"model-{i + 1:05d}-of-{shards:05d}.safetensors": shard for i in range(shards)}
    repo = hub.add_repo("Bench/Model-20B", {**files, "config.json": b"{}"})
    for entry in repo.files.values():
        entry.sha256()
    registry = tmp / "registry-20b"
    free_before = shutil.disk_usage(tmp).free
    started = time.perf_counter()
    result = run(ADD, "Bench/Model-20B", str(registry), hub.endpoint, "check")
    wall = time.perf_counter() - started
    growth = free_before - shutil.disk_usage(tmp).free
    total = shards * size
    print(f"20 GB model ({shards} x {size / 1e9:.0f} GB, streamed, never stored):")
    print(f"  add {result['seconds']:.1f} s ({total / result['seconds'] / 1e9:.2f} GB/s; {wall:.1f} s with "
          f"process start), CPU {result['cpu']:.1f} s, peak RSS {result['rss'] / MIB:.0f} MiB "
          f"(target < 512: {'PASS' if result['rss'] < 512 * MIB else 'FAIL'}), free disk change "
          f"{-growth / MIB:+.0f} MiB")
    return {"seconds": result["seconds"], "rss": result["rss"], "disk_growth": growth}


def main(rounds: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-add-") as name, FakeHub() as hub:
        tmp = Path(name)
        return {"compare": compare(hub, tmp, rounds), "big": big(hub, tmp)}


if __name__ == "__main__":
    main()
