"""Staged updates of the site folder: nothing changes on failure, only differences on success, and an
interrupted update is finished by the next one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelreg import fsutil
from modelreg.fsutil import atomic_write_bytes, staged_update


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


@pytest.fixture
def site(tmp_path):
    out = tmp_path / "site"
    with staged_update(out, tmp_path / "state") as stage:  # first build: the staging folder becomes the site
        write(stage.dir, "index.html", b"v1")
        write(stage.dir, "models/a/one/index.html", b"a1")
        write(stage.dir, "models/b/two/index.html", b"b1")
        write(stage.dir, "old/gone.txt", b"x")
    return out


def test_in_place_update_keeps_replaces_and_deletes(site, tmp_path):
    inode = (site / "models/a/one/index.html").stat().st_ino
    with staged_update(site, tmp_path / "state") as stage:
        assert stage.target == site.resolve()
        stage.keep("models/a/one/index.html")
        write(stage.dir, "index.html", b"v2")
        write(stage.dir, "models/c/three/index.html", b"c1")
    assert tree(site) == {"index.html": b"v2", "models/a/one/index.html": b"a1", "models/c/three/index.html": b"c1"}
    assert (site / "models/a/one/index.html").stat().st_ino == inode  # kept files are not rewritten
    assert not (site / "old").exists() and not (site / "models/b").exists()  # emptied folders go too
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site", "state"]
    record = json.loads((tmp_path / "state" / "files.json").read_text())["files"]
    assert record == sorted(tree(site))


def test_failed_build_changes_nothing(site, tmp_path):
    before = tree(site)
    with pytest.raises(RuntimeError):
        with staged_update(site, tmp_path / "state") as stage:
            write(stage.dir, "index.html", b"half")
            raise RuntimeError("template error")
    assert tree(site) == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_interrupted_update_is_rolled_forward(site, tmp_path, monkeypatch):
    real_apply = fsutil._apply

    def die_half_way(target, staging, delete):
        first = next(p for p in sorted(staging.rglob("*")) if p.is_file())
        (target / first.relative_to(staging)).write_bytes(first.read_bytes())
        first.unlink()
        raise KeyboardInterrupt  # killed after one file of the update

    monkeypatch.setattr(fsutil, "_apply", die_half_way)
    with pytest.raises(KeyboardInterrupt):
        with staged_update(site, tmp_path / "state") as stage:
            write(stage.dir, "index.html", b"v2")
            write(stage.dir, "models/b/two/index.html", b"b2")
    assert (tmp_path / "state" / "journal.json").exists()
    monkeypatch.setattr(fsutil, "_apply", real_apply)
    with staged_update(site, tmp_path / "state") as stage:  # the next build first finishes the last one
        assert tree(site) == {"index.html": b"v2", "models/b/two/index.html": b"b2"}
        stage.keep("index.html")
        stage.keep("models/b/two/index.html")
    assert tree(site) == {"index.html": b"v2", "models/b/two/index.html": b"b2"}
    assert not (tmp_path / "state" / "journal.json").exists()


def test_a_file_becomes_a_folder_and_back(site, tmp_path):
    with staged_update(site, tmp_path / "state") as stage:
        write(stage.dir, "index.html/inner", b"now a folder")
        write(stage.dir, "models", b"now a file")
    assert tree(site) == {"index.html/inner": b"now a folder", "models": b"now a file"}


def test_without_a_record_the_tree_is_walked(site, tmp_path):
    write(site, "stray.txt", b"not written by a build")
    (tmp_path / "state" / "files.json").unlink(missing_ok=True)
    with staged_update(site, tmp_path / "state") as stage:
        for rel in ("index.html", "models/a/one/index.html", "models/b/two/index.html", "old/gone.txt"):
            stage.keep(rel)
    assert "stray.txt" not in tree(site) and len(tree(site)) == 4


def test_without_state_the_folder_is_replaced_whole(site, tmp_path):
    with staged_update(site) as stage:
        assert stage.target is None
        write(stage.dir, "only.html", b"1")
    assert tree(site) == {"only.html": b"1"}


def test_atomic_write_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.torrent"
    atomic_write_bytes(target, b"old")
    monkeypatch.setattr(fsutil.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["x.torrent"] and target.read_bytes() == b"old"
