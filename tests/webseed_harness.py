"""Helpers for the web-seed gateway tests and benchmark: a gateway on 127.0.0.1 in a background thread,
a model repository on the fake hub with its hybrid torrent, and the two real BitTorrent clients."""

from __future__ import annotations

import asyncio
import http.client
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import libtorrent as lt
from aiohttp import web

from modelreg.hf.retry import RetryPolicy
from modelreg.torrent.create import LocalSource, create_torrent
from modelreg.torrent.metainfo import Torrent, torrent_with_extras
from modelreg.webseed import Gateway, GatewaySettings, Served, ServeSet, make_runner

FAST_RETRY = RetryPolicy(retries=3, base_delay=0.02, max_delay=0.1, max_retry_after=0.2)


class AppThread:
    """An aiohttp application serving on 127.0.0.1:<port> (free by default) from its own event loop thread."""

    def __init__(self, runner: web.AppRunner, port: int = 0):
        self.runner = runner
        self.port = port
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._start())
        self._ready.set()
        self.loop.run_forever()

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def __enter__(self):
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError(f"{type(self).__name__}: the server did not start")
        return self

    def __exit__(self, *exc) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro):
        """Run a coroutine on the server's loop (to reach its state safely)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


class GatewayThread(AppThread):
    """A gateway serving on 127.0.0.1:<free port> from its own event loop thread."""

    def __init__(self, gateway: Gateway, access_log: str | None = None, port: int = 0):
        self.gateway = gateway
        self.access_log = access_log
        super().__init__(make_runner(gateway, access_log), port)


def fetch(server: AppThread | int, path: str, method: str = "GET", headers: dict | None = None,
          timeout: float = 30) -> tuple[int, dict, bytes]:
    """One request to a server on 127.0.0.1 (a running server or its port): status, headers and body. Only the
    headers given are sent (and Host): no Accept-Encoding of http.client's own."""
    port = server if isinstance(server, int) else server.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, dict(resp.headers), resp.read()
    finally:
        conn.close()


def raw_exchange(gw: AppThread, data: bytes | str, timeout: float = 10) -> bytes:
    """Send ``data`` as is (a str as Latin-1) and read the answer until the server closes."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=timeout) as sock:
        sock.sendall(data.encode("latin-1") if isinstance(data, str) else data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def make_files(sizes: dict[str, int], seed: int = 1) -> dict[str, bytes]:
    rng = random.Random(seed)
    return {path: rng.randbytes(size) for path, size in sizes.items()}


@dataclass
class Model:
    """A repository on the fake hub and the hybrid torrent of the same files."""

    repo_id: str
    revision: str
    files: dict[str, bytes]
    torrent: Torrent

    @property
    def served(self) -> Served:
        return Served.of(self.repo_id, self.revision, self.torrent)

    def webseed(self, gateway_url: str) -> str:
        return f"{gateway_url}/v1/{self.repo_id}/{self.revision}/"

    def torrent_bytes(self, gateway_url: str) -> bytes:
        return torrent_with_extras(self.torrent, webseeds=[self.webseed(gateway_url)])


def make_model(
    hub, tmp: Path, repo_id: str, files: dict[str, bytes], piece_length: int = 64 * 1024, mode: str = "hybrid"
) -> Model:
    """Publish ``files`` (paths inside the repo) on the hub and make the torrent named after the repo."""
    repo = hub.add_repo(repo_id, files)
    return Model(repo_id, repo.sha, files, make_torrent(tmp, repo_id.split("/")[1], files, piece_length, mode))


def make_torrent(
    tmp: Path, name: str, files: dict[str, bytes], piece_length: int, mode: str = "hybrid", maker: str = "modelreg"
) -> Torrent:
    """A multi-file torrent ``name`` of ``files`` (hybrid, v1 or v2), made by ``modelreg.torrent.create`` or libtorrent."""
    root = tmp / "source"
    for rel, data in files.items():
        path = root / name / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    if maker == "modelreg":
        data = create_torrent(LocalSource.open(root / name), piece_length=piece_length, mode=mode)
        return Torrent.from_bytes(data, source=f"{name}.torrent")
    fs = lt.file_storage()
    lt.add_files(fs, str(root / name))
    flags = {"hybrid": 0, "v1": lt.create_torrent.v1_only, "v2": lt.create_torrent.v2_only}[mode]
    ct = lt.create_torrent(fs, piece_length, flags)
    lt.set_piece_hashes(ct, str(root))
    return Torrent.from_bytes(lt.bencode(ct.generate()), source=f"{name}.torrent")


class GatewayProcess:
    """``modelreg webseed ARGS --port <free port>`` in another process (this checkout's modelreg), ready once its
    ``/healthz`` answers; stopped with SIGTERM at the end of ``with``, then ``returncode`` and ``stderr`` are set."""

    def __init__(self, args: list[str], cwd: Path, preexec_fn=None):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [sys.executable, "-c", "import sys; from modelreg.cli import main; sys.exit(main())", "webseed",
               *args, "--port", str(self.port)]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=cwd, preexec_fn=preexec_fn,
                                     env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        self.returncode: int | None = None
        self.stderr = ""

    def __enter__(self) -> GatewayProcess:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.proc.poll() is None:
            try:
                if fetch(self.port, "/healthz", timeout=2)[0] == 200:
                    return self
            except OSError:
                time.sleep(0.05)
        self.__exit__()
        raise AssertionError(f"the gateway did not answer /healthz (exit {self.returncode}): {self.stderr[-2000:]}")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, self.stderr = self.proc.communicate(timeout=10)
        self.returncode = self.proc.returncode


def start_gateway(
    model_or_serve, mode: str, hub, cache: Path | None = None, access_log: str | None = None, **settings
) -> GatewayThread:
    serve = model_or_serve if isinstance(model_or_serve, ServeSet) else ServeSet([model_or_serve.served])
    cdn = hub.cdn_endpoint.split("://")[1]
    options = dict(
        mode=mode,
        hf_endpoint=hub.endpoint,
        redirect_hosts=(cdn,),
        cache_dir=cache,
        retry=FAST_RETRY,
        upstream_timeout=10,
    )
    options.update(settings)
    return GatewayThread(Gateway(GatewaySettings(**options), serve), access_log)


def libtorrent_download(torrent_bytes: bytes, dest: Path, timeout: float = 60, wait_retry: int = 1) -> float:
    """Download with libtorrent and no peers (web seed only); returns the seconds it took.

    ``wait_retry`` is libtorrent's ``urlseed_wait_retry`` (30 s by default; 1 s keeps tests fast).
    """
    ses = lt.session(
        {
            "listen_interfaces": "127.0.0.1:0",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "urlseed_wait_retry": wait_retry,
            "alert_mask": 0,
        }
    )
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent_bytes)
    atp.save_path = str(dest)
    started = time.monotonic()
    handle = ses.add_torrent(atp)
    try:
        while not handle.status().is_seeding:
            if time.monotonic() - started > timeout:
                st = handle.status()
                raise TimeoutError(f"libtorrent: {st.progress:.0%} after {timeout} s ({st.errc.message()})")
            time.sleep(0.05)
        return time.monotonic() - started
    finally:
        ses.remove_torrent(handle)
        del ses


def aria2c_download(torrent_bytes: bytes, dest: Path, timeout: float = 60) -> float:
    """Download with aria2c (v1 view of the torrent, pad files as plain files); returns the seconds."""
    dest.mkdir(parents=True, exist_ok=True)
    path = dest.parent / f"{dest.name}.torrent"
    path.write_bytes(torrent_bytes)
    cmd = [
        shutil.which("aria2c") or "aria2c",
        "--seed-time=0",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--file-allocation=none",
        "--summary-interval=0",
        "--console-log-level=warn",
        "--retry-wait=1",
        "--max-tries=10",
        "--listen-port=6881-6999",
        f"--dir={dest}",
        str(path),
    ]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise RuntimeError(f"aria2c exited {done.returncode}: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    return time.monotonic() - started


def downloaded(dest: Path, model: Model) -> dict[str, bytes]:
    name = model.torrent.name
    return {rel: (dest / name / rel).read_bytes() for rel in model.files}
