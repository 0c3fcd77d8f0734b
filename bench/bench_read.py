"""Reading the 49 corpus torrents vs. the floor: SHA-1 + SHA-256 of their raw bytes (target: at most 3x).

Run: ``python bench/bench_read.py`` (or ``python bench/run.py``). Needs ../shared/corpus.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from modelreg.torrent.metainfo import Torrent  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "modelregistry"
TARGET = 3.0


def best_of(fn, rounds: int = 15) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> dict:
    paths = sorted(CORPUS.rglob("*.torrent"))
    if not paths:
        print(f"bench_read: corpus not found at {CORPUS}; skipped")
        return {}
    blobs = [p.read_bytes() for p in paths]  # both sides start from bytes in memory

    def floor() -> None:
        for b in blobs:
            hashlib.sha1(b).digest()
            hashlib.sha256(b).digest()

    def read() -> None:
        for b in blobs:
            Torrent.from_bytes(b)

    t_floor, t_read = best_of(floor), best_of(read)
    ratio = t_read / t_floor
    mb = sum(map(len, blobs)) / 1e6
    print(f"read {len(blobs)} corpus torrents ({mb:.1f} MB): {t_read * 1000:.1f} ms; "
          f"SHA-1+SHA-256 of the raw bytes: {t_floor * 1000:.1f} ms; ratio {ratio:.2f}x "
          f"(target <= {TARGET}x: {'PASS' if ratio <= TARGET else 'FAIL'})")
    return {"read_ms": t_read * 1000, "floor_ms": t_floor * 1000, "ratio": ratio}


if __name__ == "__main__":
    main()
