"""HTTP servers on 127.0.0.1 for the tests: a threaded server in the background (:class:`LoopbackServer`),
a folder served as is (:func:`serve_folder`: a built site), and the ``Range`` answer a BEP 19 web seed needs
(:func:`requested_range`, :func:`send_range_head`)."""

from __future__ import annotations

import functools
import re
import threading
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing (the tests' output stays readable)."""

    def log_message(self, *args) -> None:
        pass


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class LoopbackServer:
    """A :class:`ThreadingHTTPServer` on 127.0.0.1:<free port>, listening from construction (so its URL can be
    written into what it will serve) and serving in a daemon thread from :meth:`start` (or ``with``) until :meth:`stop` (or the end of ``with``)."""

    def __init__(self, handler):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self):
        self.thread.start()
        return self

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.thread.join(5)
        self.httpd.server_close()


def serve_folder(folder: Path) -> LoopbackServer:
    """The files under ``folder`` as a static host serves them (``index.html`` for a folder)."""
    return LoopbackServer(functools.partial(_QuietFiles, directory=str(folder)))


def requested_range(header: str | None, size: int) -> tuple[int, int, int]:
    """``(status, start, end)`` of the answer to a ``Range: bytes=A-[B]`` header over ``size`` bytes: 206 and the
    bytes asked for (the end clamped to the file), else 200 and the whole file."""
    m = re.fullmatch(r"bytes=(\d+)-(\d*)", header or "")
    if not m:
        return 200, 0, size
    return 206, int(m.group(1)), min(size, int(m.group(2) or size - 1) + 1)


def send_range_head(h: BaseHTTPRequestHandler, status: int, start: int, end: int, size: int) -> None:
    """The status line and headers of an answer of bytes ``start:end`` of ``size`` (``Content-Range`` on a 206)."""
    h.send_response(status)
    h.send_header("Content-Length", str(end - start))
    if status == 206:
        h.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
    h.end_headers()
