"""Issue 15, items 14-17: files changing under ``create``, a FIFO given to ``verify``, hostile names and
arguments given to ``add``. Each case is made by the test; each must fail cleanly and write nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fakehub import fake_hub

from modelreg.cli import main
from modelreg.errors import CreateError
from modelreg.torrent.create import create_torrent
from modelreg.torrent.source import LocalSource
from modelreg.torrent.verify import verify

MIB = 1024 * 1024
OLD = 1_600_000_000  # files that have not changed for a while, like a model folder being published


@pytest.fixture
def hub():
    yield from fake_hub()


def _model(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for name, size in (("a.bin", 3 * MIB), ("b.bin", MIB)):
        (folder / name).write_bytes(os.urandom(size))
        os.utime(folder / name, (OLD, OLD))
    return folder


def _overwrite_one_byte(path: Path) -> None:
    with open(path, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 1]))


def _rename_replace(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(bytes(data))
    os.replace(fresh, path)


@pytest.mark.parametrize("change, said", [
    (_overwrite_one_byte, "changed while it was hashed"),
    (_rename_replace, "changed while it was hashed"),
    (Path.unlink, "was deleted while it was hashed"),
])
def test_create_fails_naming_a_file_changed_while_hashed(tmp_path, change, said):
    folder = _model(tmp_path)
    done: list[int] = []

    def meanwhile(n: int) -> None:  # the first bytes of a.bin are hashed: now change it, keeping its size
        if not done:
            change(folder / "a.bin")
        done.append(n)

    with pytest.raises(CreateError) as caught:
        create_torrent(LocalSource.open(folder), piece_length=256 * 1024, progress=meanwhile)
    assert str(caught.value).startswith(f"{folder / 'a.bin'}: {said}")


def test_create_of_a_stable_folder_still_works(tmp_path):
    folder = _model(tmp_path)
    assert create_torrent(LocalSource.open(folder), piece_length=256 * 1024, progress=lambda n: None)


def _run_in_thread(argv: list[str]) -> int | None:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(main(argv)), daemon=True)
    thread.start()
    thread.join(30)
    return result[0] if result else None


@pytest.mark.parametrize("single", [False, True])
def test_verify_refuses_a_fifo_instead_of_hanging(tmp_path, capsys, single):
    folder = _model(tmp_path)
    target = folder / "b.bin" if not single else folder / "a.bin"
    torrent = tmp_path / "m.torrent"
    source = folder / "a.bin" if single else folder
    assert main(["create", "-q", str(source), "-o", str(torrent)]) == 0
    target.unlink()
    os.mkfifo(target)
    code = _run_in_thread(["verify", "-q", str(torrent), str(target if single else folder)])
    assert code == 1  # None: verify hung on the FIFO
    out = capsys.readouterr()
    assert f"not a regular file: {target.name}" in out.err
    report = verify(torrent, target if single else folder)
    assert not report.ok and report.not_regular == [target.name]


def test_a_failed_add_writes_nothing_for_a_hostile_hub_file_name(hub, tmp_path, capsys):
    hub.add_repo("Org/Hostile", {"a\\..\\..\\b.bin": b"x" * 1000, "config.json": b"{}"})
    registry = tmp_path / "registry"
    code = main(["add", "Org/Hostile", "--hf-endpoint", hub.endpoint, "--registry", str(registry), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "invalid file path" in err and "a\\\\..\\\\..\\\\b.bin" in err
    assert not registry.exists() or not any(registry.rglob("*"))
    assert not any(p for p in tmp_path.rglob("*") if p.is_file())
    assert not hub.find_requests(path="b.bin")  # refused before any download


@pytest.mark.parametrize("argv, said", [
    (["add", "<script>/x"], "'<script>/x' is not a repository id"),
    (["add", "Org/Model\n"], "is not a repository id"),
    (["add", "Org/Model", "--hf-endpoint", "http://[::1"], "--hf-endpoint must be an absolute http(s) URL"),
    (["add", "Org/Model", "--hf-endpoint", "http://127.0.0.1:99999"], "--hf-endpoint must be an absolute"),
])
def test_bad_add_arguments_are_one_line_errors(tmp_path, capsys, argv, said):
    assert main([*argv, "--registry", str(tmp_path / "r"), "-q"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("option, url, said", [
    ("--webseed", "notaurl", "--webseed must be an absolute http(s) URL, not 'notaurl'"),
    ("--webseed", "udp://127.0.0.1:1/", "--webseed must be an absolute http(s) URL"),
    ("--tracker", "ftp://x", "--tracker must be an absolute http/https/udp/wss URL, not 'ftp://x'"),
    ("--tracker", "http://[::1", "--tracker must be an absolute"),
])
def test_create_refuses_a_tracker_or_web_seed_that_is_no_url_before_hashing(tmp_path, capsys, option, url, said):
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w" * 1000)
    out = tmp_path / "model.torrent"
    assert main(["create", "-q", str(folder), "-o", str(out), option, url]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and said in err and err.count("\n") == 1
    assert not out.exists()


def test_add_refuses_a_tracker_that_is_no_url_before_asking_the_hub(hub, tmp_path, capsys):
    hub.add_repo("Org/Model", {"config.json": b"{}"})
    registry = tmp_path / "registry"
    code = main(["add", "Org/Model", "--hf-endpoint", hub.endpoint, "--registry", str(registry), "-q",
                 "--tracker", "ftp://x"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "--tracker must be an absolute" in err
    assert not registry.exists() and not hub.find_requests(origin="hub")


# -- a FIFO or a huge file named .torrent (item 6's bounded reads, wherever a torrent is read) -------------

REV = "0123456789abcdef0123456789abcdef01234567"


def _hostile_torrent(path: Path, kind: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)  # no writer: reading it the plain way blocks for ever
        return "the torrent is not a regular file but a FIFO"
    with open(path, "wb") as f:
        f.truncate(300 << 20)  # sparse: takes no room, but a plain read would hold 300 MiB
    return "the torrent is larger than 256 MiB (314,572,800 bytes)"


def _modelreg(*argv: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelreg", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("kind", ["fifo", "huge"])
@pytest.mark.parametrize("command", ["verify", "mirror"])
def test_a_fifo_or_huge_file_named_torrent_is_one_line_error(tmp_path, kind, command):
    torrent = tmp_path / "x.torrent"
    said = _hostile_torrent(torrent, kind)
    (tmp_path / "model").mkdir()
    argv = {"verify": ["verify", str(torrent), "model"],
            "mirror": ["mirror", str(torrent), "--cache", "cache", "--repo", f"Org/Name@{REV}"]}[command]
    done = _modelreg(*argv, cwd=tmp_path)
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == f"error: {torrent}: cannot read the file: {said}\n"
    assert not (tmp_path / "cache").exists()


def test_get_names_the_registry_torrent_it_cannot_read(tmp_path):
    said = _hostile_torrent(tmp_path / "registry" / "Org" / "Name" / "Name.torrent", "huge")
    done = _modelreg("get", "org/name", "--from", "registry", "--cache-dir", "hf", "-q", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr == f"error: registry/Org/Name/Name.torrent: cannot read the file: {said}\n"
    assert not (tmp_path / "hf").exists()
