"""Wrong invocations and busy ports: one line that says what is wrong, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from modelreg import cli

ROOT = Path(__file__).resolve().parents[1]
REV = "0123456789abcdef0123456789abcdef01234567"


def modelreg(*argv: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelreg", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_an_unknown_command_is_named_with_the_list(capsys):
    assert cli.main(["frobnicate"]) == 2
    err = capsys.readouterr().err
    assert len(lines(err)) == 1 and "unknown command 'frobnicate'" in err
    assert "add, build, create, verify" in err and "unrecognized arguments" not in err


def test_a_bad_option_prints_the_commands_own_usage(capsys):
    assert cli.main(["build", "--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: modelreg build ") and "--refresh-metadata" in err
    assert "unrecognized arguments: --bogus" in err and "COMMAND" not in err


def test_every_command_has_help_and_the_top_level_help_lists_them(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("add", "build", "create", "verify", "refresh", "webseed", "mirror", "serve"):
        assert f"    {name} " in out
    assert "render the registry into a static site" in out
    assert cli.main(["verify", "--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: modelreg verify")


@pytest.mark.parametrize("command", ["webseed", "serve"])
def test_a_port_out_of_range_is_a_usage_error(command, tmp_path, capsys):
    assert cli.main([command, "--port", "99999"]) == 2
    err = capsys.readouterr().err
    assert "port 99999 is out of range" in err and "Traceback" not in err


def test_webseed_on_a_busy_port_says_so_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = modelreg("webseed", "--port", str(port), "--allow", f"Org/Name@{REV}", "--registry",
                        str(tmp_path), cwd=tmp_path)
    assert done.returncode == 1
    assert lines(done.stderr) == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]
    assert "modelreg webseed:" not in done.stderr  # no banner for a gateway that never listened


def test_serve_on_a_busy_port_fails_before_saying_it_serves(tmp_path):
    (tmp_path / "registry").mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = modelreg("serve", "--registry", str(tmp_path / "registry"), "--out", str(tmp_path / "site"),
                        "--port", str(port), cwd=tmp_path)
    assert done.returncode == 1
    assert "serving" not in done.stdout
    assert lines(done.stderr) == [f"error: cannot listen on 127.0.0.1:{port}: Address already in use"]


def test_serve_whose_first_build_fails_says_one_thing(tmp_path):
    done = modelreg("serve", "--registry", str(tmp_path / "missing"), "--out", str(tmp_path / "site"),
                    "--port", "0", cwd=tmp_path)
    assert done.returncode == 1
    assert len(lines(done.stderr)) == 1, done.stderr
    assert "nothing to serve" in done.stderr and "previous build" not in done.stderr
    assert "the registry folder does not exist" in done.stderr


def test_a_build_without_site_url_warns_that_feed_links_are_host_relative(tmp_path, capsys):
    (tmp_path / "registry").mkdir()
    assert cli.main(["build", "--registry", str(tmp_path / "registry"), "--out", str(tmp_path / "site")]) == 0
    err = capsys.readouterr().err
    assert "warning: site_url is not set" in err and "feed" in err
    (tmp_path / "modelreg.toml").write_text('site_url = "https://models.example.org"\n')
    assert cli.main(["build", "--config", str(tmp_path / "modelreg.toml"), "--registry",
                     str(tmp_path / "registry"), "--out", str(tmp_path / "site")]) == 0
    assert "site_url" not in capsys.readouterr().err


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the test runs: connections are refused


@pytest.mark.parametrize(("argv", "named"), [
    (["add", "--trending", "-1"], "--trending"),
    (["add", "Org/Model", "--jobs", "0"], "--jobs"),
    (["add", "Org/Model", "--piece-length", "3"], "piece length 3"),
    (["add", "Org/Model", "--v2-only", "--piece-length", "48K"], "piece length 49152"),
])
def test_add_refuses_bad_options_before_asking_the_hub(argv, named, tmp_path, capsys):
    # The hub refuses connections: a check made only after asking it would report that instead.
    code = cli.main([*argv, "--hf-endpoint", f"http://127.0.0.1:{_closed_port()}", "--registry", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1 and lines(err) == [err.strip()] and named in err and "reach" not in err
    assert not any(tmp_path.iterdir())


def test_create_refuses_a_bad_piece_length_before_reading_the_folder(tmp_path, capsys):
    folder = tmp_path / "model"
    folder.mkdir()  # empty: scanning it first would report "no files" instead
    code = cli.main(["create", "-q", str(folder), "--piece-length", "3", "-o", str(tmp_path / "out.torrent")])
    err = capsys.readouterr().err
    assert code == 1 and lines(err) == [err.strip()] and "piece length 3 is invalid" in err
    assert not (tmp_path / "out.torrent").exists()


@pytest.mark.parametrize("argv", [["--help"], ["verify", "{torrent}", "{folder}", "-q"], ["create", "--help"]])
def test_help_and_verify_load_none_of_the_other_commands_libraries(argv, tmp_path):
    # Issue 9: importing every command up front made each start take ~1.5 s (speed itself: bench/bench_cli.py).
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w" * 1000)
    torrent = tmp_path / "model.torrent"
    assert cli.main(["create", "-q", str(folder), "-o", str(torrent)]) == 0
    argv = [a.format(torrent=torrent, folder=folder) for a in argv]
    heavy = ("aiohttp", "huggingface_hub", "httpx2", "jinja2", "libtorrent", "markdown", "nh3")
    code = ("import contextlib, io, sys\nfrom modelreg import cli\nwith contextlib.redirect_stdout(io.StringIO()):\n"
            f"    code = cli.main({argv!r})\nprint(code, sorted(m for m in {heavy!r} if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "0 []", run.stdout + run.stderr
