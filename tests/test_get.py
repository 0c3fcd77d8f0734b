"""``modelreg get`` on loopback: a site and a registry built from a model the test makes, a hybrid torrent
whose web seed is a local Range server, libtorrent peers; then the real huggingface_hub reads the cache."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from swarmutil import COMMIT, REPO_ID, FileServer, Seeder, publish, tree_bytes

from modelreg.cli import main
from modelreg.errors import FileCheckError, SourceError, StalledError, SwarmError
from modelreg.hf.metadata import ModelMeta, RepoFile
from modelreg.registry.metacache import MetaCache
from modelreg.swarm import hfcache
from modelreg.swarm.get import GetOptions, get, selected
from modelreg.swarm.monitor import Traffic
from modelreg.swarm.resolve import Registry, open_source
from modelreg.torrent.metainfo import Torrent

ROOT = Path(__file__).resolve().parents[1]
QUIET = dict(dht=False, lsd=False, quiet=True)


def snapshot(cache: Path) -> Path:
    return hfcache.repo_folder(cache, REPO_ID) / "snapshots" / COMMIT


def run_get(source: str, cache: Path, *extra: str) -> int:
    return main(["get", REPO_ID, "--from", source, "--cache-dir", str(cache), "--no-dht", "--no-lsd", "-q", *extra])


def test_get_from_a_site_then_huggingface_hub_loads_it_offline(tmp_path, monkeypatch, capsys):
    ws = FileServer(tmp_path / "source")
    with ws:
        pub = publish(tmp_path, ws.url)
        with FileServer(pub.site) as site:
            cache = tmp_path / "hf"
            monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # no --cache-dir: the variable huggingface_hub reads
            assert main(["get", REPO_ID, "--from", site.url, "--no-dht", "--no-lsd", "-q"]) == 0
    summary = capsys.readouterr().out
    assert f"{REPO_ID}@{COMMIT[:12]}: {len(pub.files)} file(s)" in summary
    repo = hfcache.repo_folder(cache, REPO_ID)
    assert (repo / "refs" / "main").read_text() == COMMIT
    assert not (repo / hfcache.INCOMPLETE).exists()
    # etags as the hub's: LFS files by SHA-256, the others by git blob SHA-1; relative links.
    weights = pub.files["model-00001-of-00002.safetensors"]
    link = snapshot(cache) / "model-00001-of-00002.safetensors"
    assert os.readlink(link) == "../../blobs/" + hashlib.sha256(weights).hexdigest()
    readme = pub.files["README.md"]
    assert os.readlink(snapshot(cache) / "README.md") == "../../blobs/" + hashlib.sha1(
        b"blob %d\0" % len(readme) + readme).hexdigest()
    assert os.readlink(snapshot(cache) / "extra/nested/deep/weights.bin").startswith("../../../../../blobs/")
    # The real huggingface_hub, offline, in a fresh process (it reads HF_HUB_OFFLINE at import).
    script = """if True:
        import json, os, sys
        from huggingface_hub import hf_hub_download, scan_cache_dir, snapshot_download
        repo, cache = sys.argv[1], sys.argv[2]
        folder = snapshot_download(repo, local_files_only=True)
        files = {}
        for d, _, names in os.walk(folder):
            for n in names:
                p = os.path.join(d, n)
                files[os.path.relpath(p, folder)] = open(p, "rb").read().hex()
        config = hf_hub_download(repo, "config.json", revision="main")
        info = scan_cache_dir(cache)
        r = [r for r in info.repos if r.repo_id == repo][0]
        print(json.dumps({"files": files, "config": open(config, "rb").read().hex(), "warnings": [str(w) for w in info.warnings],
                          "size": r.size_on_disk, "refs": sorted(r.refs), "nb_files": r.nb_files}))
    """
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(cache))
    done = subprocess.run([sys.executable, "-c", script, REPO_ID, str(cache)], capture_output=True, text=True,
                          env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert {k: bytes.fromhex(v) for k, v in seen["files"].items()} == pub.files
    assert bytes.fromhex(seen["config"]) == pub.files["config.json"]
    assert seen["warnings"] == []
    assert seen["size"] == sum(map(len, pub.files.values()))
    assert seen["nb_files"] == len(pub.files) and seen["refs"] == ["main"]


def test_include_fetches_only_the_pieces_the_selected_files_touch(tmp_path):
    with FileServer(tmp_path / "source") as ws:
        pub = publish(tmp_path, ws.url)
        cache = tmp_path / "hf"
        assert run_get(str(pub.registry), cache, "--include", "*.json") == 0
        served = ws.total
    placed = tree_bytes(snapshot(cache))
    assert placed == {k: v for k, v in pub.files.items() if k.endswith(".json")}
    torrent = Torrent.from_bytes(pub.torrent_bytes)
    pl = torrent.piece_length
    pieces = set()
    for f in torrent.files:
        if f.path_str.endswith(".json"):
            first, last = f.offset // pl, (f.offset + f.size - 1) // pl
            pieces |= set(range(max(0, first - 1), min(torrent.num_pieces, last + 2)))
    assert 0 < served <= len(pieces) * pl
    assert served < torrent.total_size / 2
    # The rest later: the JSON files' pieces are not fetched again.
    with FileServer(tmp_path / "source") as ws2:
        entry = Registry(pub.registry).entry(REPO_ID, None)
        entry = type(entry)(**{**entry.__dict__, "torrent": Torrent.from_bytes(_with_webseed(pub, ws2.url))})
        get(entry, cache, GetOptions(stall_timeout=20, **QUIET))
        assert ws2.served.get(f"{pub.name}/config.json", 0) == 0
        # Once all is there, get again fetches nothing.
        before = ws2.total
        again = get(entry, cache, GetOptions(stall_timeout=20, **QUIET))
        assert ws2.total == before and len(again.files) == len(pub.files)
    assert tree_bytes(snapshot(cache)) == pub.files


def _with_webseed(pub, url: str) -> bytes:
    from modelreg.torrent.bencode import decode_torrent, encode

    top, _ = decode_torrent(pub.torrent_bytes)
    top[b"url-list"] = [url.encode()]
    return encode(top)


def test_peer_only_then_peer_and_web_seed(tmp_path):
    dead = FileServer(tmp_path / "source")
    pub = publish(tmp_path, dead.url)
    dead.stop()  # the torrent's web seed: nobody answers
    seeder = Seeder(pub.torrent_bytes, pub.source)
    try:
        entry = open_source(str(pub.registry)).entry(REPO_ID, None)
        report = get(entry, tmp_path / "hf1", GetOptions(peers=(("127.0.0.1", seeder.port),), stall_timeout=20, **QUIET))
        assert tree_bytes(snapshot(tmp_path / "hf1")) == pub.files
        assert report.peer_bytes > 0 and report.webseed_bytes == 0
        # Both: a slow web seed and a peer as slow each supply part of it (neither finishes alone first,
        # however busy the machine is).
        seeder.ses.apply_settings({"upload_rate_limit": 100_000})
        with FileServer(tmp_path / "source", rate=100_000) as ws:
            both = type(entry)(**{**entry.__dict__, "torrent": Torrent.from_bytes(_with_webseed(pub, ws.url))})
            report = get(both, tmp_path / "hf2", GetOptions(peers=(("127.0.0.1", seeder.port),), stall_timeout=20,
                                                            **QUIET))
            assert ws.total > 0
        assert tree_bytes(snapshot(tmp_path / "hf2")) == pub.files
        assert report.peer_bytes > 0 and report.webseed_bytes > 0
    finally:
        seeder.close()


def test_blocks_never_told_finished_count_for_the_address_they_were_asked_from():
    # libtorrent 2.1 drops the finished alert of a block written after the torrent has every piece (under
    # load a whole small download: "peer only" once reported 0 bytes from peers): once the download is
    # settled, such a block counts for the address it was last requested from
    web, peer = ("127.0.0.1", 8000), ("127.0.0.1", 6881)
    traffic = Traffic(32 * 1024, 40 * 1024, ("http://127.0.0.1:8000/files",))

    def alert(piece, block, endpoint):
        return SimpleNamespace(piece_index=piece, block_index=block, endpoint=endpoint)

    traffic.request(alert(0, 0, peer))
    traffic.request(alert(0, 0, web))  # asked again elsewhere (the first request timed out)
    traffic.request(alert(0, 1, web))
    traffic.block(alert(0, 1, peer))  # told finished: from where it came, whoever was asked
    traffic.request(alert(1, 0, peer))  # the last piece: 8 KiB
    assert (traffic.webseed_bytes, traffic.peer_bytes) == (0, 16384)  # while downloading: only blocks told
    assert traffic.settled() == (16384, 16384 + 8192)
    assert traffic.settled() == (16384, 16384 + 8192)  # nothing counted twice


def test_a_corrupt_web_seed_byte_is_refetched_from_a_peer(tmp_path):
    with FileServer(tmp_path / "source") as ws:
        pub = publish(tmp_path, ws.url)
        ws.corrupt[f"{pub.name}/model-00001-of-00002.safetensors"] = {70_000}
        seeder = Seeder(pub.torrent_bytes, pub.source)
        try:
            assert run_get(str(pub.registry), tmp_path / "hf", "--peer", f"127.0.0.1:{seeder.port}",
                           "--stall-timeout", "20") == 0
        finally:
            seeder.close()
    assert tree_bytes(snapshot(tmp_path / "hf")) == pub.files


def test_a_piece_that_failed_is_counted_even_when_told_after_the_download_ended(tmp_path, monkeypatch):
    # the web seed's copy of a piece fails its check and a peer's passes, and the download ends, all
    # between two polls: the failure's alert is still queued when the download loop returns, and is
    # taken while waiting for the writes. It must still count: the files are checked again on disk
    # before anything is placed (a file was once placed with the failed copy's byte this way, under load)
    import modelreg.swarm.get as get_module

    checked = []
    real_recheck = get_module._recheck

    def download(ses, handle, entry, wanted, options, traffic, report, hasher):
        # as the real loop, but no alert is taken: web seed alone until a piece failed, then the peer
        deadline = time.monotonic() + 30
        while handle.status().total_failed_bytes == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        handle.connect_peer(peer)
        while not handle.status().is_seeding and time.monotonic() < deadline:
            time.sleep(0.05)
        assert report.hash_failures == 0  # nothing told yet

    def recheck(*args):
        checked.append(args)
        return real_recheck(*args)

    monkeypatch.setattr(get_module, "_download", download)
    monkeypatch.setattr(get_module, "_recheck", recheck)
    with FileServer(tmp_path / "source") as ws:
        pub = publish(tmp_path, ws.url)
        ws.corrupt[f"{pub.name}/model-00001-of-00002.safetensors"] = {70_000}
        seeder = Seeder(pub.torrent_bytes, pub.source)
        peer = ("127.0.0.1", seeder.port)
        try:
            report = get(open_source(str(pub.registry)).entry(REPO_ID, None), tmp_path / "hf",
                         GetOptions(stall_timeout=20, **QUIET))
        finally:
            seeder.close()
    assert report.hash_failures >= 1 and len(checked) == 1
    assert tree_bytes(snapshot(tmp_path / "hf")) == pub.files


@pytest.mark.parametrize("flips", [0, 1, 9])
def test_after_a_failed_piece_the_files_are_checked_again_on_disk(tmp_path, monkeypatch, flips):
    # a piece failed its check during the download (as a corrupt web seed makes one fail): the pieces are
    # checked again from disk before anything is placed. A byte of a file wrong there (as libtorrent's disk
    # threads once left one) is downloaded again, and the file hashed again; still wrong after that (here:
    # flipped after every download), the get fails naming the file, with nothing placed. The check's result
    # is read however late this process wakes after it (here 0.5 s): libtorrent has paused the torrent by
    # then, so a piece found bad is not already downloaded again from the (local, fast) web seed and taken
    # for one found good (under load that let the flipped byte through about 1 run in 8)
    import modelreg.swarm.get as get_module

    rel = "model-00001-of-00002.safetensors"
    real_download, real_flush, real_wait = get_module._download, get_module._flush, get_module._wait_for
    flipped = []

    def download(*args):
        real_download(*args)
        args[6].hash_failures += 1  # the report

    def flush(ses, handle, entry, traffic, report, hasher):
        real_flush(ses, handle, entry, traffic, report, hasher)
        if len(flipped) < flips:
            (path,) = [path for name, path, _ in hasher.files.values() if name == rel]
            with open(path, "r+b") as f:
                f.seek(70_000)
                byte = f.read(1)
                f.seek(70_000)
                f.write(bytes([byte[0] ^ 0xFF]))
            flipped.append(path)

    def wait_for(ses, handle, kind, *args):
        real_wait(ses, handle, kind, *args)
        if kind is get_module.lt().torrent_checked_alert:
            time.sleep(0.5)

    monkeypatch.setattr(get_module, "_download", download)
    monkeypatch.setattr(get_module, "_flush", flush)
    monkeypatch.setattr(get_module, "_wait_for", wait_for)
    with FileServer(tmp_path / "source") as ws:
        pub = publish(tmp_path, ws.url)
        entry = open_source(str(pub.registry)).entry(REPO_ID, None)
        assert rel not in entry.lfs_sha256  # only the torrent's pieces can tell
        if flips <= get_module.RECHECKS:
            get(entry, tmp_path / "hf", GetOptions(stall_timeout=20, **QUIET))
            assert tree_bytes(snapshot(tmp_path / "hf")) == pub.files and len(flipped) == flips
            # the blob is named by the SHA-256 of the bytes placed, not of those first hashed
            assert os.path.basename(os.readlink(snapshot(tmp_path / "hf") / rel)) == hashlib.sha256(pub.files[rel]).hexdigest()
            return
        with pytest.raises(FileCheckError, match=rel):
            get(entry, tmp_path / "hf", GetOptions(stall_timeout=20, **QUIET))
    assert len(flipped) == get_module.RECHECKS + 1
    assert not snapshot(tmp_path / "hf").exists()
    repo = hfcache.repo_folder(tmp_path / "hf", REPO_ID)
    assert list((repo / "blobs").iterdir() if (repo / "blobs").exists() else []) == []


def test_a_corrupt_web_seed_alone_fails_naming_the_file_and_places_nothing(tmp_path):
    with FileServer(tmp_path / "source") as ws:
        pub = publish(tmp_path, ws.url)
        ws.corrupt[f"{pub.name}/model-00002-of-00002.safetensors"] = {5}
        entry = open_source(str(pub.registry)).entry(REPO_ID, None)
        with pytest.raises(StalledError) as caught:
            get(entry, tmp_path / "hf", GetOptions(stall_timeout=2, **QUIET))
    assert "model-00002-of-00002.safetensors" in str(caught.value)
    assert "config.json" not in str(caught.value)
    assert not snapshot(tmp_path / "hf").exists()
    repo = hfcache.repo_folder(tmp_path / "hf", REPO_ID)
    assert not (repo / "refs").exists() and list((repo / "blobs").iterdir() if (repo / "blobs").exists() else []) == []


def test_metadata_sha256_mismatch_fails_naming_the_file(tmp_path):
    with FileServer(tmp_path / "source") as ws:
        pub = publish(tmp_path, ws.url)
        files = tuple(RepoFile(p, len(b), hashlib.sha256(b).hexdigest() if p.endswith(".safetensors") else None)
                      for p, b in pub.files.items())
        wrong = tuple(RepoFile(f.path, f.size, "0" * 64) if f.path == "model-00002-of-00002.safetensors" else f
                      for f in files)
        MetaCache.for_registry(pub.registry).store_meta(ModelMeta(REPO_ID, COMMIT, commit=COMMIT, files=wrong), "2026-11-29T00:00:00Z")
        entry = open_source(str(pub.registry)).entry(REPO_ID, None)
        assert entry.lfs_sha256["model-00002-of-00002.safetensors"] == "0" * 64
        with pytest.raises(FileCheckError, match="model-00002-of-00002.safetensors"):
            get(entry, tmp_path / "hf", GetOptions(stall_timeout=20, **QUIET))
        assert not snapshot(tmp_path / "hf").exists()
        # With the right metadata it places the files (and checked them against it).
        MetaCache.for_registry(pub.registry).store_meta(ModelMeta(REPO_ID, COMMIT, commit=COMMIT, files=files), "2026-11-29T00:00:00Z")
        get(open_source(str(pub.registry)).entry(REPO_ID, COMMIT[:8]), tmp_path / "hf", GetOptions(stall_timeout=20,
                                                                                                   **QUIET))
    assert tree_bytes(snapshot(tmp_path / "hf")) == pub.files


def test_killed_half_way_resumes_without_fetching_verified_pieces_again(tmp_path):
    from modelreg.swarm import get as get_module

    with FileServer(tmp_path / "source", rate=150_000) as ws:
        pub = publish(tmp_path, ws.url)
        total = Torrent.from_bytes(pub.torrent_bytes).total_size
        cache = tmp_path / "hf"
        env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        proc = subprocess.Popen([sys.executable, "-m", "modelreg", "get", REPO_ID, "--from", str(pub.registry),
                                 "--cache-dir", str(cache), "--no-dht", "--no-lsd", "-q"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while ws.total < total / 2:
            assert proc.poll() is None and time.monotonic() < deadline, "the download did not get half-way"
            time.sleep(0.02)
        proc.kill()
        proc.wait(10)
        first = ws.total
    assert not snapshot(cache).exists()  # nothing placed by the killed run
    work = hfcache.repo_folder(cache, REPO_ID) / hfcache.INCOMPLETE
    assert any(work.rglob("*.safetensors"))
    assert not [p for p in work.rglob("*") if ".pad" in p.parts]  # BEP 47 pad files never reach the disk
    with FileServer(tmp_path / "source") as ws2:
        entry = open_source(str(pub.registry)).entry(REPO_ID, None)
        entry = type(entry)(**{**entry.__dict__, "torrent": Torrent.from_bytes(_with_webseed(pub, ws2.url))})
        get_module.get(entry, cache, GetOptions(stall_timeout=20, **QUIET))
        second = ws2.total
    assert tree_bytes(snapshot(cache)) == pub.files
    slack = 4 * pub.piece_length  # pieces still in flight when the first run was killed
    assert second <= total - first + slack, (first, second, total)


def test_errors_are_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("MODELREG_FROM", raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["get", REPO_ID, "--cache-dir", str(tmp_path / "hf")]) == 1
    assert "--from" in capsys.readouterr().err
    pub = publish(tmp_path, "http://127.0.0.1:9/")
    assert run_get(str(pub.registry), tmp_path / "hf", "--include", "*.gguf") == 1
    assert "matches" in capsys.readouterr().err
    monkeypatch.setenv("MODELREG_FROM", str(pub.registry))
    assert main(["get", "Other/Model", "--cache-dir", str(tmp_path / "hf")]) == 1
    assert "Other/Model is not in this registry" in capsys.readouterr().err
    assert main(["get", REPO_ID, "--revision", "f" * 40, "--cache-dir", str(tmp_path / "hf")]) == 1
    assert "no torrent for revision" in capsys.readouterr().err
    assert main(["get", REPO_ID, "--peer", "nonsense"]) == 2
    with pytest.raises(SourceError):
        open_source(str(tmp_path / "missing"))


def test_selection_and_cache_location(monkeypatch, tmp_path):
    assert selected("config.json", ("*.json",), ())
    assert selected("tokenizer/tokenizer.json", ("*.json",), ())
    assert not selected("model.safetensors", ("*.json",), ())
    assert not selected("tokenizer/vocab.txt", (), ("tokenizer",))
    assert selected("a.bin", (), ("*.json",))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert hfcache.hub_cache_dir() == tmp_path / ".cache" / "huggingface" / "hub"
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    assert hfcache.hub_cache_dir() == tmp_path / "home" / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert hfcache.hub_cache_dir() == tmp_path / "hub"
    assert hfcache.hub_cache_dir(tmp_path / "x") == tmp_path / "x"
    with pytest.raises(SwarmError):
        hfcache.check_relpath("../etc/passwd")
    assert hfcache.looks_lfs("sub/model.safetensors", 10)
    assert not hfcache.looks_lfs("config.json", 10)
    assert hfcache.looks_lfs("config.json", hfcache.LFS_SIZE + 1)
    assert hfcache.lfs_patterns("*.foo filter=lfs diff=lfs\n# c\n*.txt text\n") == ("*.foo",)


def test_seed_time_seeds_what_get_placed(tmp_path):
    import socket
    import threading

    from swarmutil import download_from_peer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with FileServer(tmp_path / "source") as ws:
        pub = publish(tmp_path, ws.url)
        entry = open_source(str(pub.registry)).entry(REPO_ID, None)
        done: list = []
        thread = threading.Thread(target=lambda: done.append(
            get(entry, tmp_path / "hf", GetOptions(seed_time=4, port=port, stall_timeout=20, **QUIET))))
        thread.start()
        try:
            deadline = time.monotonic() + 20
            while not (snapshot(tmp_path / "hf") / "config.json").exists():
                assert time.monotonic() < deadline
                time.sleep(0.05)
            before = ws.total
            ws.stop()  # from now on only get's own seeding can serve the client
            download_from_peer(pub.torrent_bytes, tmp_path / "client", port)
        finally:
            thread.join(30)
    assert tree_bytes(tmp_path / "client" / pub.name) == pub.files
    assert done and done[0].uploaded > 0 and before > 0


def test_other_commands_do_not_import_libtorrent():
    code = ("import importlib, sys\nfrom modelreg.commands import COMMANDS\n"
            "for name in COMMANDS: importlib.import_module(f'modelreg.commands.{name}')\n"
            "print('libtorrent' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
