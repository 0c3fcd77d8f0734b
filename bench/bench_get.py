"""``modelreg get`` against aria2c, both downloading the same .torrent from the same loopback web seed
(``python bench/bench_get.py [SIZE_MB]`` or ``python bench/run.py get``).

A model of SIZE_MB (default 2000: two safetensors shards and small JSON files), a hybrid torrent made by
libtorrent (4 MiB pieces), served by nginx (one worker) as the BEP 19 web seed. aria2c does not know BEP 47
pad files and asks the web seed for ``<name>/.pad/<N>``, so the served folder also holds those (zeros).
Each client runs in its own process, timed from start to exit, peak RSS from ``wait4``; ``get`` includes
its own check of every file (SHA-256 + git blob SHA-1) and placing them in the HF cache; aria2c
verifies the pieces only. Rounds alternate aria2c and get; medians are compared.
Targets: get within 1.25x of aria2c's time; get's peak RSS under 512 MiB.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

import warnings

import libtorrent as lt
from bench_webseed import start_nginx

TIME_TARGET = 1.25
RSS_TARGET_MIB = 512
ROUNDS = int(os.environ.get("BENCH_GET_ROUNDS", "2"))
PIECE = 4 << 20
REPO_ID = "Bench/Big-Model"
COMMIT = "b" * 40


def make_model(folder: Path, size_mb: int) -> None:
    """Two shards (random bytes, written in 8 MiB chunks) and a few small files."""
    folder.mkdir(parents=True)
    half = size_mb * 1_000_000 // 2
    for i, size in enumerate((half + 12_345, half - 12_345), 1):
        with open(folder / f"model-0000{i}-of-00002.safetensors", "wb") as f:
            left = size
            while left:
                n = min(left, 8 << 20)
                f.write(os.urandom(n))
                left -= n
    (folder / "config.json").write_text('{"model_type": "bench"}\n')
    (folder / "tokenizer.json").write_bytes(b'{"vocab": [' + b'"t",' * 200_000 + b'"end"]}\n')


def make_torrent(root: Path, name: str, webseed: str) -> bytes:
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the bindings' older file_storage API
    fs = lt.file_storage()
    lt.add_files(fs, str(root / name))
    ct = lt.create_torrent(fs, PIECE)
    ct.add_url_seed(webseed)
    lt.set_piece_hashes(ct, str(root))
    data = lt.bencode(ct.generate())
    # aria2c asks the web seed for the pad files: serve zeros for them.
    files = lt.torrent_info(data).files()
    for i in range(files.num_files()):
        if files.file_flags(i) & lt.file_storage.flag_pad_file:
            pad = root / files.file_path(i)
            pad.parent.mkdir(parents=True, exist_ok=True)
            pad.write_bytes(bytes(files.file_size(i)))
    return data


def timed(cmd: list[str], log: Path, env: dict | None = None, timeout: float = 900) -> tuple[float, float, float]:
    """(seconds, peak RSS in MiB, CPU seconds) of a command run to completion (its output into ``log``)."""
    with open(log, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                proc.kill()
                raise RuntimeError(f"{cmd[0]} still running after {timeout} s: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.02)
        seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
    return seconds, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def main(size_mb: int | None = None) -> None:
    size_mb = size_mb or int(os.environ.get("BENCH_GET_MB", "2000"))
    tmp = Path(tempfile.mkdtemp(prefix="bench-get-", dir=os.environ.get("BENCH_TMP")))
    tmp.chmod(0o755)  # nginx's worker reads the files as another user
    nginx = None
    try:
        www = tmp / "www"
        name = REPO_ID.split("/")[1]
        started = time.monotonic()
        make_model(www / name, size_mb)
        nginx, port = start_nginx(www, tmp)
        data = make_torrent(www, name, f"http://127.0.0.1:{port}/")
        registry = tmp / "registry" / REPO_ID
        registry.mkdir(parents=True)
        (registry / f"{name}.torrent").write_bytes(data)
        (registry / f"{name}.json").write_text(f'{{"repo_id": "{REPO_ID}", "revision": "{COMMIT}"}}')
        torrent_file = tmp / f"{name}.torrent"
        torrent_file.write_bytes(data)
        print(f"model of {size_mb} MB and its torrent made in {time.monotonic() - started:.1f} s")
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        aria, get = [], []
        for round_ in range(ROUNDS):
            dest = tmp / f"aria-{round_}"
            aria.append(timed([shutil.which("aria2c") or "aria2c", "--seed-time=0", "--enable-dht=false",
                               "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
                               "--file-allocation=none", "--summary-interval=0", "--console-log-level=warn",
                               "--max-tries=5", "--retry-wait=1",
                               "--listen-port=6881-6999", f"--dir={dest}", str(torrent_file)], tmp / "aria2c.log"))
            shutil.rmtree(dest)
            cache = tmp / f"hf-{round_}"
            get.append(timed([sys.executable, "-m", "modelreg", "get", REPO_ID, "--from", str(tmp / "registry"),
                              "--cache-dir", str(cache), "--no-dht", "--no-lsd", "-q"], tmp / "get.log", env))
            shutil.rmtree(cache)
            print(f"round {round_ + 1}: aria2c {aria[-1][0]:.2f} s ({aria[-1][1]:.0f} MiB, CPU {aria[-1][2]:.1f} s), "
                  f"get {get[-1][0]:.2f} s ({get[-1][1]:.0f} MiB, CPU {get[-1][2]:.1f} s)")
        a, g = statistics.median(t for t, _, _ in aria), statistics.median(t for t, _, _ in get)
        rss = max(r for _, r, _ in get)
        total = size_mb * 1e6
        print(f"aria2c {a:.2f} s ({total / a / 1e6:.0f} MB/s), get {g:.2f} s ({total / g / 1e6:.0f} MB/s): "
              f"ratio {g / a:.2f}x (target <= {TIME_TARGET}x); get peak RSS {rss:.0f} MiB "
              f"(target < {RSS_TARGET_MIB}); aria2c peak RSS {max(r for _, r, _ in aria):.0f} MiB")
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else None)
