"""Preview the site: build it, serve it on 127.0.0.1, rebuild and reload the browser when a source changes.

Sources are the registry folder, the templates and the configuration file. A rebuild that fails prints
the error and keeps serving the last good site. The site is served under its ``base_url`` (other paths
redirect there), so a preview of ``/mirror/`` checks the links it will have.

A small polling watcher and the standard library's HTTP server, as MkDocs did when it dropped livereload:
no private API of another package to follow. A watcher thread compares snapshots of the sources (path,
size, modification time, inode), so a file that appears counts as a change even when its modification
time is old (torrents copied with ``cp -p`` or ``rsync -a``). Each HTML page gets ``livereload.js``
(served from the same origin, no inline script), which long-polls the server and reloads the page after
a good rebuild.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from modelreg.config import Config
from modelreg.errors import ModelregError, ServeError
from modelreg.site.build import BuildReport, build_site, site_path

#: Seconds between two scans of the sources, and a change's settling time before the rebuild.
POLL = 0.3
SETTLE = 0.2
#: How long a reload request waits for a new build before the browser asks again.
LONG_POLL = 25.0

RELOAD_SCRIPT = """(function () {
  var url = document.currentScript.src.replace(/livereload\\.js.*$/, "livereload"), seen = null;
  function poll() {
    fetch(url + "?v=" + (seen === null ? "" : seen), {cache: "no-store"})
      .then(function (r) { return r.text(); })
      .then(function (v) { if (seen !== null && v !== seen) { location.reload(); } else { seen = v; poll(); } })
      .catch(function () { setTimeout(poll, 1000); });
  }
  poll();
})();
"""

Snapshot = dict[str, tuple[int, int, int]]


class Preview:
    """A site being previewed: how to get its config, and how to rebuild it."""

    def __init__(self, load_config: Callable[[], Config], config_file: Path | None = None):
        self.load_config = load_config
        self.config_file = config_file
        self.config = load_config()
        self.built = False

    def rebuild(self, *_: object) -> BuildReport | None:
        """Build again with the current config; on an error, say so and keep the previous site.

        Raises:
            ServeError: the first build failed and there is no previous site to serve.
        """
        first = not self.built
        self.built = True
        try:
            self.config = self.load_config()
            report = build_site(self.config)
        except ModelregError as exc:
            if first and not self.config.path(self.config.out).is_dir():
                raise ServeError(f"{exc} (nothing to serve)") from None
            print(f"error: {exc} (serving the previous build)", file=sys.stderr, flush=True)
            return None
        print(report.summary(), file=sys.stderr if report.errors else sys.stdout, flush=True)
        return report

    def sources(self) -> list[Path]:
        paths = [self.config.path(self.config.registry), self.config.path(self.config.theme_dir)]
        if self.config_file is not None:
            paths.append(self.config_file)
        return paths


def snapshot(paths: list[Path]) -> Snapshot:
    """What the files below ``paths`` look like now: ``{path: (size, mtime_ns, inode)}``."""
    found: Snapshot = {}

    def note(path: str) -> None:
        try:
            st = os.stat(path)
        except OSError:
            return
        found[path] = (st.st_size, st.st_mtime_ns, st.st_ino)

    for root in paths:
        if root.is_file():
            note(str(root))
            continue
        for folder, _, files in os.walk(root):  # links to folders are not followed: no loops
            for name in files:
                note(os.path.join(folder, name))
    return found


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Callable, preview: Preview):
        self.preview = preview
        self.build = 0  # bumped after each good rebuild: the pages reload
        self.changed = threading.Condition()
        super().__init__(address, handler)

    def built(self) -> None:
        with self.changed:
            self.build += 1
            self.changed.notify_all()


class _Handler(SimpleHTTPRequestHandler):
    """The built site under its base path, HTML pages with the reload script; other paths redirect."""

    server: _Server

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        base = self.server.preview.config.base_url
        path, _, query = self.path.partition("?")
        if not path.startswith(base):
            return self._redirect(base)
        rest = "/" + path[len(base):]
        if rest == "/livereload.js":
            return self._send(RELOAD_SCRIPT.encode(), "text/javascript; charset=utf-8", head)
        if rest == "/livereload":
            return self._send(self._wait_for_build(query).encode(), "text/plain; charset=utf-8", head)
        self.path = rest + (f"?{query}" if query else "")
        local = Path(self.translate_path(self.path))
        if local.is_dir():
            if not rest.endswith("/"):
                return self._redirect(path + "/")
            local = local / "index.html"
        if local.suffix == ".html" and local.is_file():
            try:
                page = local.read_bytes()
            except OSError:
                return self.send_error(HTTPStatus.NOT_FOUND)
            return self._send(_with_reload_script(page, base), "text/html; charset=utf-8", head)
        return super().do_HEAD() if head else super().do_GET()

    def _wait_for_build(self, query: str) -> str:
        seen = parse_qs(query).get("v", [""])[0]
        with self.server.changed:
            self.server.changed.wait_for(lambda: str(self.server.build) != seen, timeout=LONG_POLL)
            return str(self.server.build)

    def _redirect(self, location: str) -> None:
        self.send_response(HTTPStatus.FOUND)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a preview is always fresh
        super().end_headers()

    def list_directory(self, path: str | os.PathLike[str]) -> None:
        self.send_error(HTTPStatus.NOT_FOUND, "no index.html here")  # a site has pages, not listings
        return None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's signature
        pass  # requests are not logged: the terminal shows builds


def _with_reload_script(page: bytes, base: str) -> bytes:
    tag = f'<script src="{base}livereload.js"></script>'.encode()
    at = page.lower().rfind(b"</body>")
    return page[:at] + tag + page[at:] if at >= 0 else page + tag


def _watch(server: _Server, preview: Preview, seen: Snapshot, stop: threading.Event) -> None:
    """Rebuild when a source changes; a good rebuild reloads the pages."""
    while not stop.wait(POLL):
        now = snapshot(preview.sources())
        if now == seen:
            continue
        stop.wait(SETTLE)  # let a copy of several files finish
        seen = snapshot(preview.sources())
        if preview.rebuild() is not None:
            server.built()


def serve(preview: Preview, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Build, then serve until interrupted (Ctrl-C), rebuilding on every change of a source.

    Raises:
        ServeError: the first build failed and there is no previous site, or the port cannot be listened on.
    """
    seen = snapshot(preview.sources())  # changes during the first build trigger a rebuild
    preview.rebuild()  # raises ServeError when it fails and there is no previous site
    root = site_path(preview.config)
    try:
        server = _Server((host, port), partial(_Handler, directory=str(root)), preview)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(server, preview, seen, stop), name="modelreg-watch",
                               daemon=True)
    watcher.start()
    print(f"serving http://{host}:{port}{preview.config.base_url} (Ctrl-C to stop)", flush=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # stop like Ctrl-C: a rebuild under way finishes
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        signal.signal(signal.SIGTERM, previous)
        stop.set()
        server.server_close()
        watcher.join()


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt
