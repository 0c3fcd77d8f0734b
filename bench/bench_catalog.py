"""Benchmark loading the catalog on a rebuild with nothing changed (issue 13: a rebuild of 100,000 models).

    python bench/bench_catalog.py --registry REG --cache FILE [--repeat 5] [--profile]

The first run with a new ``--cache`` fills it as a build does (every torrent parsed); each timed run
then walks the registry and loads the catalog through that cache, as ``modelreg.site.build._build``
does, in this process with the cyclic garbage collector paused (as a build runs). Prints each run's
wall time of the walk and of the load, the CPU time they used (on a shared machine the steadier
measure), and the medians. A reference measured in the same run: the
``os.stat`` of every torrent alone, which any check of the files must make.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # after PYTHONPATH: another checkout's code can be measured on the same data

from modelreg.registry.catalog import load_catalog, scan_registry  # noqa: E402
from modelreg.site.parsecache import ParseCache  # noqa: E402


def _cpu() -> float:
    """CPU seconds of this process and of its children that ended."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load(registry: Path, file: Path) -> tuple[float, float, float, int, int]:
    cpu = _cpu()
    start = time.perf_counter()
    cache = ParseCache(file)
    listing = scan_registry(registry, cache)
    scanned = time.perf_counter()
    catalog = load_catalog(registry, read=cache.read_light, paths=listing, store=cache, prefetch=cache.prefetch)
    done = time.perf_counter()
    used = _cpu() - cpu
    hits = cache.hits
    cache.save()
    cache.db.close()
    return scanned - start, done - scanned, used, len(catalog.models), hits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--registry", type=Path, default=ROOT / ".bench" / "catalog" / "registry")
    parser.add_argument("--cache", type=Path, default=ROOT / ".bench" / "catalog" / "torrents.sqlite")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-fork", action="store_true", help="make every stat in this process (fsutil.stat_many)")
    args = parser.parse_args()
    if args.no_fork:
        import modelreg.fsutil

        modelreg.fsutil.STAT_SPLIT = 1 << 62
    gc.disable()
    if not args.cache.exists():
        start = time.perf_counter()
        _, _, _, count, _ = load(args.registry, args.cache)
        print(f"first load (cache filled): {count} models in {time.perf_counter() - start:.1f} s")
    paths = scan_registry(args.registry).torrents
    start = time.perf_counter()
    for path in paths:
        os.stat(path)
    print(f"reference: os.stat of {len(paths)} torrents: {time.perf_counter() - start:.3f} s")
    walks, loads, cpus = [], [], []
    for _ in range(args.repeat):
        walk, catalog, cpu, count, hits = load(args.registry, args.cache)
        walks.append(walk)
        loads.append(catalog)
        cpus.append(cpu)
        print(f"walk {walk:.3f} s + load {catalog:.3f} s = {walk + catalog:.3f} s, CPU {cpu:.3f} s ({count} models, {hits} from the store)")
    print(f"best: total {min(w + c for w, c in zip(walks, loads, strict=True)):.3f} s, CPU {min(cpus):.3f} s")
    print(f"median: walk {statistics.median(walks):.3f} s, load {statistics.median(loads):.3f} s, "
          f"total {statistics.median(w + c for w, c in zip(walks, loads, strict=True)):.3f} s, "
          f"CPU {statistics.median(cpus):.3f} s (this process and its children)")


if __name__ == "__main__":
    main()
