"""``modelreg serve``: builds, serves under the base path on 127.0.0.1, rebuilds when the registry changes."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str) -> bytes | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read()
    except (urllib.error.URLError, OSError):
        return None


def wait_for(check, seconds: float = 20.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    return None


def copy_model(corpus_dir: Path, registry: Path, index: int) -> None:
    path = sorted(corpus_dir.rglob("*.torrent"))[index]
    target = registry / path.relative_to(corpus_dir)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)


def test_serve_builds_serves_and_rebuilds_on_change(corpus_dir: Path, tmp_path: Path):
    registry = tmp_path / "registry"
    copy_model(corpus_dir, registry, 0)
    port = free_port()
    base = f"http://127.0.0.1:{port}/mirror/"
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "build.py"), "serve", "--registry", str(registry), "--out",
         str(tmp_path / "site"), "--base-url", "/mirror/", "--port", str(port)],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        index = wait_for(lambda: fetch(base))
        assert index is not None, "the preview server did not answer"
        assert b"data-model-id" in index and b"livereload.js" in index  # the reload script is injected
        assert len(json.loads(fetch(base + "api/models.json"))) == 1

        copy_model(corpus_dir, registry, 1)
        grown = wait_for(lambda: (d := fetch(base + "api/models.json")) and len(json.loads(d)) == 2)
        assert grown, "the site was not rebuilt after a torrent was added"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    output = proc.stdout.read().decode()
    assert "built 1 models" in output and "built 2 models" in output


def test_serve_reports_a_port_in_use(tmp_path: Path):
    registry = tmp_path / "registry"
    registry.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(ROOT / "build.py"), "serve", "--registry", str(registry), "--out",
             str(tmp_path / "site"), "--port", str(port)],
            cwd=tmp_path, capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
