"""Creating a hybrid torrent of a 2 GB model folder: modelreg vs libtorrent (target: at least 1.5x as fast).

Run: ``python bench/bench_create.py`` (or ``python bench/run.py create``). It writes a 2 GB folder of
realistic shards to a temporary folder, reads it once so both sides hash from the page cache, then times
``modelreg.torrent.create.create_torrent`` and libtorrent's ``set_piece_hashes`` on the same folder, each in its
own process (so each one's peak RSS is its own), and checks both give the same infohashes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.5
MB = 1000 * 1000
MIB = 1024 * 1024

# A 2 GB model: four large safetensors shards, a smaller last one, tokenizer and configs.
SHARDS = {
    "model-00001-of-00005.safetensors": 450 * MB,
    "model-00002-of-00005.safetensors": 450 * MB,
    "model-00003-of-00005.safetensors": 450 * MB,
    "model-00004-of-00005.safetensors": 450 * MB,
    "model-00005-of-00005.safetensors": 189 * MB + 12_345,
    "tokenizer.json": 11 * MB + 678,
    "model.safetensors.index.json": 23_456,
    "config.json": 1_234,
    "generation_config.json": 187,
}

# VmHWM: the peak resident set of this process image (ru_maxrss would include the parent's at fork).
PEAK = """import resource
def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
def peak_rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
"""

OURS = """
import json, sys, time
PEAK
sys.path.insert(0, sys.argv[2])
from modelreg.torrent.create import create_torrent
from modelreg.torrent.source import LocalSource
from modelreg.torrent.metainfo import Torrent
start = time.perf_counter()
data = create_torrent(LocalSource.open(sys.argv[1]), mode="hybrid")
seconds = time.perf_counter() - start
torrent = Torrent.from_bytes(data)
print(json.dumps({"seconds": seconds, "rss": peak_rss(), "cpu": cpu_seconds(),
                  "v1": torrent.infohash_v1, "v2": torrent.infohash_v2}))
""".replace("PEAK\n", PEAK)

LIBTORRENT = """
import json, sys, time, warnings
PEAK
warnings.simplefilter("ignore")
import libtorrent as lt
folder = sys.argv[1]
start = time.perf_counter()
fs = lt.file_storage()
lt.add_files(fs, folder)
ct = lt.create_torrent(fs, 0, 0)
lt.set_piece_hashes(ct, folder.rsplit("/", 1)[0])
seconds = time.perf_counter() - start
hashes = lt.torrent_info(ct.generate()).info_hashes()
print(json.dumps({"seconds": seconds, "rss": peak_rss(), "cpu": cpu_seconds(),
                  "v1": str(hashes.v1), "v2": str(hashes.v2)}))
""".replace("PEAK\n", PEAK)


def make_folder(folder: Path) -> int:
    folder.mkdir()
    block = random.Random(42).randbytes(16 * MIB)
    total = 0
    for i, (name, size) in enumerate(SHARDS.items()):
        with open(folder / name, "wb") as fh:
            left = size
            while left:
                # vary each block a little so no two pieces are equal
                chunk = (i * 1_000_003 + left).to_bytes(8, "little") + block[8 : min(left, len(block))]
                fh.write(chunk[:left])
                left -= min(left, len(chunk))
        total += size
    return total


def warm(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb", buffering=0) as fh:
            while fh.read(16 * MIB):
                pass


def run(script: str, folder: Path) -> dict:
    out = subprocess.run([sys.executable, "-c", script, str(folder), str(ROOT)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main(rounds: int = 5) -> dict:
    try:
        import libtorrent  # noqa: F401
    except ImportError:
        print("bench_create: libtorrent is not installed; skipped")
        return {}
    with tempfile.TemporaryDirectory(prefix="modelreg-bench-") as tmp:
        folder = Path(tmp) / "Bench-Model-2B"
        total = make_folder(folder)
        warm(folder)
        ours, theirs = [], []
        for _ in range(rounds):  # interleaved, so both sides meet the same background load
            ours.append(run(OURS, folder))
            theirs.append(run(LIBTORRENT, folder))
    best_ours = min(ours, key=lambda r: r["seconds"])
    best_theirs = min(theirs, key=lambda r: r["seconds"])
    same = (best_ours["v1"], best_ours["v2"]) == (best_theirs["v1"], best_theirs["v2"])
    ratio = best_theirs["seconds"] / best_ours["seconds"]
    gbps = lambda r: total / r["seconds"] / 1e9  # noqa: E731
    print(f"hybrid torrent of {total / 1e9:.2f} GB ({len(SHARDS)} files, page cache warm, "
          f"{os.cpu_count()} cores), best of {rounds}:")
    print(f"  modelreg   {best_ours['seconds']:.2f} s  {gbps(best_ours):.2f} GB/s  "
          f"CPU {best_ours['cpu']:.2f} s  peak RSS {best_ours['rss'] / MIB:.0f} MiB")
    print(f"  libtorrent {best_theirs['seconds']:.2f} s  {gbps(best_theirs):.2f} GB/s  "
          f"CPU {best_theirs['cpu']:.2f} s  peak RSS {best_theirs['rss'] / MIB:.0f} MiB")
    print(f"  speed ratio {ratio:.2f}x (target >= {TARGET}x: {'PASS' if ratio >= TARGET else 'FAIL'}); "
          f"same infohashes: {'yes' if same else 'NO'}")
    return {"ours_s": best_ours["seconds"], "libtorrent_s": best_theirs["seconds"], "ratio": ratio,
            "rss": best_ours["rss"], "same_infohashes": same}


if __name__ == "__main__":
    main()
