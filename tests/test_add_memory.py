"""A streamed ``modelreg add`` of a model much larger than its buffers: bounded memory, nothing on disk.

The full-size run (20 GB) is ``bench/bench_add.py``; this one streams 1.5 GB in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fakehub import Generated, fake_hub

from modelreg.torrent.metainfo import Torrent

ROOT = Path(__file__).resolve().parents[1]
SIZE = 1_500_000_000
MIB = 1024 * 1024

# Runs ``modelreg add`` as its own child and reports that child's peak RSS: RUSAGE_CHILDREN of a fresh
# process covers that one command only, not the test runner's other children. The child reports the bytes
# it sent to storage itself (/proc/self/io), which other jobs writing to the same disk do not change.
COMMAND = """
import sys
from modelreg.cli import main
code = main()
io = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
print("WRITE_BYTES", io["write_bytes"], flush=True)
sys.exit(code)
"""
WRAPPER = """
import json, resource, subprocess, sys
code = subprocess.call([sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
print(json.dumps({"code": code, "peak_rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024}))
"""


def test_streamed_add_keeps_memory_bounded_and_writes_no_model_bytes(tmp_path):
    for hub in fake_hub():
        weights = Generated(SIZE, 21)
        repo = hub.add_repo("Big/Model", {"model.safetensors": weights, "config.json": b"{}"})
        repo.files["model.safetensors"].sha256()  # hashed here, not during the client's listing request
        registry = tmp_path / "registry"
        env = {**os.environ, **hub.env(tmp_path / "hf-cache"), "PYTHONPATH": str(ROOT)}
        env.pop("HF_TOKEN", None)
        out = subprocess.run(
            [sys.executable, "-c", WRAPPER, COMMAND, "add", "Big/Model", "--registry", str(registry), "-q", "--jobs", "4"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["code"] == 0, out.stderr
        torrent = Torrent.read(registry / "big" / "model" / "Model.torrent")
        assert torrent.total_size == SIZE + 2
        assert result["peak_rss"] < 512 * MIB, f"peak RSS {result['peak_rss'] / MIB:.0f} MiB"
        written = int(next(line for line in out.stdout.splitlines() if line.startswith("WRITE_BYTES")).split()[1])
        assert written < SIZE // 100, f"the command wrote {written} bytes to storage"
        assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["Model.json", "Model.torrent"]
        assert hub.max_in_flight["cdn"] <= 4
