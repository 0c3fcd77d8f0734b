"""The command line: exit codes, --strict, and a failed build that leaves the previous site untouched."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ltutil import make_torrent

from modelreg import cli
from modelreg.site import build as builder

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registry(tmp_path):
    reg = tmp_path / "registry"
    for org, name in (("OrgA", "model-one"), ("OrgB", "model-two")):
        path = reg / org / name / f"{name}.torrent"
        path.parent.mkdir(parents=True)
        path.write_bytes(make_torrent(tmp_path / "src" / name, {f"{name}/w.bin": name.encode() * 999}))
    return reg


def run(*argv: str) -> int:
    return cli.main(list(argv))


def test_build_is_the_default_command(registry, tmp_path, capsys):
    assert run("--registry", str(registry), "--out", str(tmp_path / "site")) == 0
    assert "built 2 models" in capsys.readouterr().out
    assert (tmp_path / "site" / "models" / "OrgA" / "model-one" / "index.html").is_file()


def test_bad_torrent_is_reported_and_the_rest_built(registry, tmp_path, capsys):
    (registry / "OrgC" / "broken").mkdir(parents=True)
    (registry / "OrgC" / "broken" / "b.torrent").write_bytes(b"d4:infod")
    assert run("build", "--registry", str(registry), "--out", str(tmp_path / "site")) == 0
    err = capsys.readouterr().err
    assert "built 2 models" in err and "b.torrent" in err and "Traceback" not in err


def test_strict_fails_and_writes_nothing(registry, tmp_path, capsys):
    out = tmp_path / "site"
    assert run("build", "--registry", str(registry), "--out", str(out)) == 0
    capsys.readouterr()
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (registry / "OrgC" / "broken").mkdir(parents=True)
    (registry / "OrgC" / "broken" / "b.torrent").write_bytes(b"garbage")
    assert run("build", "--strict", "--registry", str(registry), "--out", str(out)) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: 1 problem(s)") and "b.torrent" in err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site-versions", "registry", "site", "src"]


def test_failed_render_leaves_previous_site(registry, tmp_path, monkeypatch):
    out = tmp_path / "site"
    assert run("--registry", str(registry), "--out", str(out)) == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def half_then_fail(catalog, config, staging, **incremental):
        (staging / "index.html").write_text("half")
        raise OSError("disk full")

    monkeypatch.setattr(builder, "render_site", half_then_fail)
    with pytest.raises(OSError):
        run("--registry", str(registry), "--out", str(out))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site-versions", "registry", "site", "src"]


def test_usage_errors_exit_2(capsys):
    assert run("build", "--no-such-option") == 2
    assert run("--help") == 0
    assert "build" in capsys.readouterr().out


def test_bad_config_is_a_clear_error(tmp_path, registry, capsys):
    config = tmp_path / "modelreg.toml"
    config.write_text('titel = "typo"\n')
    assert run("--config", str(config), "--registry", str(registry)) == 1
    assert capsys.readouterr().err == f"error: {config}: unknown option 'titel'; did you mean 'title'?\n"
    config.write_text('base_url = "https://x.example/"\n')
    assert run("--config", str(config), "--registry", str(registry)) == 1
    assert "'base_url' must be a path" in capsys.readouterr().err
    assert run("--registry", str(tmp_path / "missing")) == 1
    assert "the registry folder does not exist" in capsys.readouterr().err


def test_build_py_entry_point(registry, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "build.py"), "--registry", str(registry), "--out",
                           str(tmp_path / "s")], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "s" / "api" / "models.json").is_file()
