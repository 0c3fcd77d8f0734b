"""How long the command line takes to start, as a ratio to the bare interpreter measured in the same run.

``modelreg --help`` and ``modelreg verify`` (of a 1 MB torrent) against ``python -c pass`` and against
importing every command's module (what each start cost before the command line imported lazily). Each is
the median of N runs, the three interleaved so the machine's load hits them alike.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 15


def _time(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from modelreg.commands import COMMANDS
    from modelreg.torrent.create import LocalSource, create_torrent

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        (folder / "w.bin").write_bytes(os.urandom(1 << 20))
        torrent = Path(tmp) / "model.torrent"
        torrent.write_bytes(create_torrent(LocalSource.open(folder), piece_length=1 << 18))
        every = "; ".join(f"import modelreg.commands.{name}" for name in COMMANDS)
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "modelreg --help": [sys.executable, "-m", "modelreg", "--help"],
            "modelreg verify": [sys.executable, "-m", "modelreg", "verify", "-q", str(torrent), str(folder)],
            "import every command (eager)": [sys.executable, "-c", every],
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(RUNS):
            for name, argv in cases.items():
                times[name].append(_time(argv, env))
    base = statistics.median(times["python -c pass"])
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:30s} {median * 1000:7.0f} ms  {median / base:5.1f}x python -c pass")


if __name__ == "__main__":
    main()
