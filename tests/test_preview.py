"""The preview server (site/preview.py): the site under its base path, the reload script on every page, a
long poll that answers after a good rebuild, a torrent copied with an old mtime counted as a change."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from modelreg.torrent.create import create_torrent
from modelreg.torrent.source import LocalSource

ROOT = Path(__file__).resolve().parents[1]


def _torrent(tmp: Path, name: str) -> bytes:
    folder = tmp / "src" / name
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(name.encode() * 1000)
    return create_torrent(LocalSource.open(folder))


def _get(port: int, path: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_preview_serves_under_the_base_path_and_reloads_after_a_rebuild(tmp_path):
    registry = tmp_path / "registry"
    (registry / "org" / "one").mkdir(parents=True)
    (registry / "org" / "one" / "One.torrent").write_bytes(_torrent(tmp_path, "One"))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "modelreg", "serve", "--registry", str(registry), "--out", str(tmp_path / "site"),
         "--base-url", "/mirror/", "--port", str(port)],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, headers, page = _get(port, "/mirror/")
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()
                time.sleep(0.1)
        assert status == 200 and page.rstrip().endswith(b"</html>")
        assert b'<script src="/mirror/livereload.js"></script></body>' in page
        assert _get(port, "/")[:2][0] == 302 and _get(port, "/elsewhere")[1]["Location"] == "/mirror/"
        assert _get(port, "/mirror/api")[1]["Location"] == "/mirror/api/"  # a folder: its base-relative slash
        status, headers, script = _get(port, "/mirror/livereload.js")
        assert status == 200 and b"location.reload()" in script and headers["Content-Type"].startswith("text/javascript")
        status, headers, models = _get(port, "/mirror/api/models.json")
        assert status == 200 and len(json.loads(models)) == 1 and b"livereload" not in models
        assert _get(port, "/mirror/../../etc/passwd")[0] in (302, 404)
        assert _get(port, "/mirror/static/")[0] == 404  # no folder listings

        build = _get(port, "/mirror/livereload?v=")[2].decode()  # the current build, at once
        answer: list[str] = []
        waiting = threading.Thread(target=lambda: answer.append(_get(port, f"/mirror/livereload?v={build}", 60)[2]))
        waiting.start()
        time.sleep(0.5)
        assert not answer  # nothing changed: the poll waits
        copied = registry / "org" / "two" / "Two.torrent"
        copied.parent.mkdir()
        copied.write_bytes(_torrent(tmp_path, "Two"))
        os.utime(copied, (1_000_000_000, 1_000_000_000))  # as `cp -p` leaves it: older than the server
        waiting.join(60)
        assert answer and answer[0].decode() != build
        assert len(json.loads(_get(port, "/mirror/api/models.json")[2])) == 2
    finally:
        proc.terminate()
        proc.wait(30)
    output = proc.stdout.read().decode()
    assert "Traceback" not in output
