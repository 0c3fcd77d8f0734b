"""``modelreg seed`` on loopback: what ``get`` placed in the HF cache (and plain folders) is seeded in place,
and a libtorrent client with no web seed downloads it from that seeder alone."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from swarmutil import COMMIT, REPO_ID, FileServer, download_from_peer, publish, tree_bytes

from modelreg.swarm import hfcache
from modelreg.swarm.get import GetOptions, get
from modelreg.swarm.resolve import open_source
from modelreg.swarm.seed import Places, Seeder, locate

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(dht=False, lsd=False, quiet=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(proc: subprocess.Popen, lines: list[str], text: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return
    raise AssertionError(f"{text!r} not printed; got {''.join(lines)}")


def test_seed_hf_cache_serves_a_client_with_no_web_seed(tmp_path):
    cache = tmp_path / "hf"
    with FileServer(tmp_path / "source") as ws:
        pub = publish(tmp_path, ws.url)
        get(open_source(str(pub.registry)).entry(REPO_ID, None), cache, GetOptions(stall_timeout=20, **QUIET))
    # The web seed is gone; the cache is the only copy left besides the source folder (moved away).
    os.rename(pub.source, tmp_path / "gone")
    port, metrics_port = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "seed", "--hf-cache", str(cache), "--from", str(pub.site),
         "--port", str(port), "--metrics-port", str(metrics_port), "--no-dht", "--no-lsd", "--report-every", "0"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    try:
        wait_for(proc, lines, f"seeding {REPO_ID}")
        dest = tmp_path / "client"
        download_from_peer(pub.torrent_bytes, dest, port)
        assert tree_bytes(dest / pub.name) == pub.files
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
        assert "modelreg_seed_torrents 1" in metrics
        uploaded = [ln for ln in metrics.splitlines() if ln.startswith("modelreg_seed_uploaded_bytes_total{")]
        assert uploaded and int(uploaded[0].rsplit(" ", 1)[1]) >= sum(map(len, pub.files.values()))
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "stopped; seeded 1 torrent(s)" in out and f"  {REPO_ID}: " in out
    # Seeding wrote nothing into the cache.
    assert sorted(p.name for p in (hfcache.repo_folder(cache, REPO_ID)).iterdir()) == ["blobs", "refs", "snapshots"]


def run_seeder(seeder: Seeder, until, timeout: float = 20) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=seeder.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + timeout
    while not until() and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(20)


def test_seed_plain_folder_and_rejects_a_corrupt_cache(tmp_path, capsys):
    import io

    cache = tmp_path / "hf"
    with FileServer(tmp_path / "source") as ws:
        pub = publish(tmp_path, ws.url)
        get(open_source(str(pub.registry)).entry(REPO_ID, None), cache, GetOptions(stall_timeout=20, **QUIET))
    source = open_source(str(pub.registry))
    entry = source.entries()[0][0]
    # A flipped byte in a blob: the file is found, libtorrent's check fails it, it is not seeded.
    blob = hfcache.snapshot_file(hfcache.repo_folder(cache, REPO_ID), COMMIT, "model-00002-of-00002.safetensors")
    data = bytearray(blob.read_bytes())
    data[100] ^= 1
    blob.write_bytes(bytes(data))
    assert locate(entry, Places(hf_cache=cache)) is not None
    log = io.StringIO()
    seeder = Seeder(source, Places(hf_cache=cache), port=0, dht=False, lsd=False, report_every=0, log=log)
    run_seeder(seeder, lambda: "not seeding" in log.getvalue())
    assert "not seeding TestOrg/Tiny-Model" in log.getvalue() and "pieces verified" in log.getvalue()
    assert "stopped; seeded 0 torrent(s)" in log.getvalue()
    # A plain folder holding the model (named like the torrent) is seeded, once the registry the seeder
    # reads again and again lists it.
    later = tmp_path / "later"
    later.mkdir()
    log = io.StringIO()
    seeder = Seeder(open_source(str(later)), Places(dirs=(pub.source,)), port=0, dht=False, lsd=False,
                    rescan=0.2, report_every=0, log=log)
    stop = threading.Event()
    thread = threading.Thread(target=seeder.run, args=(stop,))
    thread.start()
    try:
        time.sleep(0.3)
        assert "seeding" not in log.getvalue()
        shutil.copytree(pub.registry, later, dirs_exist_ok=True)
        deadline = time.monotonic() + 20
        while f"seeding {REPO_ID}" not in log.getvalue():
            assert time.monotonic() < deadline, log.getvalue()
            time.sleep(0.05)
        download_from_peer(pub.torrent_bytes, tmp_path / "client", seeder.port)
    finally:
        stop.set()
        thread.join(20)
    assert tree_bytes(tmp_path / "client" / pub.name) == pub.files
    assert str(pub.source / pub.name) in log.getvalue()


def test_locate_finds_the_gateway_mirror_cache_and_plain_folders(tmp_path):
    pub = publish(tmp_path, "http://127.0.0.1:9/")
    entry = open_source(str(pub.registry)).entries()[0][0]
    key = entry.torrent.infohash_v1
    mirror = tmp_path / "mirror"
    shutil.copytree(pub.source / pub.name, mirror / key / "data")
    where, paths = locate(entry, Places(webseed_cache=mirror))
    assert where == str(mirror / key / "data")
    assert {entry.torrent.layout[i].path_str: p.read_bytes() for i, p in paths.items()} == pub.files
    where, _ = locate(entry, Places(dirs=(pub.source,)))
    assert where == str(pub.source / pub.name)
    # A file of the wrong size anywhere: that place does not hold the torrent.
    (mirror / key / "data" / "config.json").write_bytes(b"{}")
    assert locate(entry, Places(webseed_cache=mirror, hf_cache=tmp_path / "nothing")) is None


def test_seed_on_a_busy_port_is_a_one_line_error(tmp_path, capsys):
    from modelreg.cli import main

    pub = publish(tmp_path, "http://127.0.0.1:9/")
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["seed", "--from", str(pub.registry), "--hf-cache", str(tmp_path / "hf"), "--port", str(port),
                     "--no-dht", "--no-lsd"]) == 1
    assert f"cannot listen on port {port}" in capsys.readouterr().err
