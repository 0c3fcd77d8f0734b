"""Helpers for the get/seed tests: a Range-answering file server that counts (and can corrupt) what it
serves, a model with its registry, site and hybrid torrent, and a libtorrent seeder on 127.0.0.1."""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

import libtorrent as lt
from loopback import LoopbackServer, QuietHandler, requested_range, send_range_head
from ltutil import make_torrent

from modelreg.config import Config
from modelreg.site.build import build_site

REPO_ID = "TestOrg/Tiny-Model"
COMMIT = hashlib.sha1(b"tiny model commit").hexdigest()


class FileServer(LoopbackServer):
    """Files under ``root`` over HTTP on 127.0.0.1: 206 for a Range request (a BEP 19 web seed needs it).

    ``served`` counts body bytes per path; ``corrupt`` maps a path to byte offsets sent flipped;
    ``rate`` caps the bytes per second of each answer (0: no cap).
    """

    def __init__(self, root: Path, rate: int = 0):
        self.root, self.rate = root, rate
        self.served: dict[str, int] = {}
        self.corrupt: dict[str, set[int]] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802
                server.answer(self)

        super().__init__(Handler)

    @property
    def total(self) -> int:
        with self.lock:
            return sum(self.served.values())

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        rel = unquote(h.path.split("?")[0]).lstrip("/")
        path = self.root / rel
        if rel.endswith("/"):
            path = path / "index.html"
        if ".." in rel.split("/") or not path.is_file():
            h.send_error(404)
            return
        data = path.read_bytes()
        status, start, end = requested_range(h.headers.get("Range"), len(data))
        body = bytearray(data[start:end])
        for offset in self.corrupt.get(rel.rstrip("/"), ()):
            if start <= offset < end:
                body[offset - start] ^= 0xFF
        step = max(1, self.rate // 20) if self.rate else len(body) or 1
        try:
            send_range_head(h, status, start, end, len(data))
            for pos in range(0, len(body), step):
                h.wfile.write(body[pos : pos + step])
                with self.lock:
                    self.served[rel] = self.served.get(rel, 0) + len(body[pos : pos + step])
                if self.rate:
                    time.sleep(step / self.rate)
        except OSError:
            pass


def model_files(seed: int = 7) -> dict[str, bytes]:
    """A small model: LFS weights (safetensors, bin), JSON and text files, a nested path."""
    rng = random.Random(seed)
    return {
        ".gitattributes": b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n",
        "config.json": b'{"model_type": "tiny", "hidden_size": 8}\n',
        "model-00001-of-00002.safetensors": rng.randbytes(150_000),
        "model-00002-of-00002.safetensors": rng.randbytes(90_000),
        "tokenizer/tokenizer.json": b'{"version": "1.0", "vocab": ' + b'"x",' * 3000 + b'"y"}\n',
        "tokenizer/vocab.txt": b"\n".join(b"tok%d" % i for i in range(2000)),
        "extra/nested/deep/weights.bin": rng.randbytes(40_000),
        "README.md": b"# Tiny model\n",
    }


@dataclass
class Published:
    """The model on disk (``source/<name>/``), its torrent with a web seed, a registry and a built site."""

    files: dict[str, bytes]
    root: Path
    torrent_bytes: bytes
    registry: Path
    site: Path
    piece_length: int

    @property
    def name(self) -> str:
        return REPO_ID.split("/")[1]

    @property
    def source(self) -> Path:
        return self.root / "source"


def publish(root: Path, webseed_url: str, files: dict[str, bytes] | None = None, piece_length: int = 16384) -> Published:
    """Make the torrent (libtorrent, hybrid, web seed ``webseed_url``), put it in a registry with a sidecar
    pinning ``COMMIT``, and build the site."""
    files = files or model_files()
    name = REPO_ID.split("/")[1]
    data = make_torrent(root / "source", {f"{name}/{k}": v for k, v in files.items()}, piece_length=piece_length,
                        webseeds=(webseed_url,))
    registry = root / "registry"
    folder = registry / REPO_ID
    folder.mkdir(parents=True)
    (folder / f"{name}.torrent").write_bytes(data)
    (folder / f"{name}.json").write_text(f'{{"repo_id": "{REPO_ID}", "revision": "{COMMIT}"}}')
    site = root / "site"
    build_site(Config(registry=str(registry), out=str(site), root=root), incremental=False)
    return Published(files, root, data, registry, site, piece_length)


class Seeder:
    """A plain libtorrent session seeding a folder on 127.0.0.1 (no DHT, no discovery, no web seeds)."""

    def __init__(self, torrent_bytes: bytes, save_path: Path, webseeds: bool = False):
        self.ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                               "enable_upnp": False, "enable_natpmp": False, "alert_mask": 0,
                               "allow_multiple_connections_per_ip": True})
        atp = lt.add_torrent_params()
        atp.ti = lt.torrent_info(torrent_bytes)
        if not webseeds:
            atp.ti.set_web_seeds([])
        atp.save_path = str(save_path)
        self.handle = self.ses.add_torrent(atp)
        deadline = time.monotonic() + 20
        while not self.handle.status().is_seeding:
            assert time.monotonic() < deadline, "the seeder did not find its files complete"
            time.sleep(0.05)
        self.port = self.ses.listen_port()

    @property
    def uploaded(self) -> int:
        return self.handle.status().total_payload_upload

    def close(self) -> None:
        self.ses.remove_torrent(self.handle)
        del self.ses


def download_from_peer(torrent_bytes: bytes, dest: Path, port: int, timeout: float = 30) -> None:
    """A libtorrent client with no web seed, DHT or discovery downloads from 127.0.0.1:``port`` alone."""
    ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                      "enable_upnp": False, "enable_natpmp": False, "alert_mask": 0,
                      "allow_multiple_connections_per_ip": True})
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(torrent_bytes)
    atp.ti.set_web_seeds([])
    atp.save_path = str(dest)
    handle = ses.add_torrent(atp)
    deadline = time.monotonic() + timeout
    last = 0.0
    try:
        while not handle.status().is_seeding:
            if time.monotonic() - last > 2:
                handle.connect_peer(("127.0.0.1", port))
                last = time.monotonic()
            if time.monotonic() > deadline:
                raise TimeoutError(f"peer download: {handle.status().progress:.0%} after {timeout} s")
            time.sleep(0.05)
    finally:
        ses.remove_torrent(handle)
        del ses


def tree_bytes(folder: Path) -> dict[str, bytes]:
    """Every file below ``folder`` (symlinks followed) by its relative path."""
    out = {}
    for dirpath, _, names in os.walk(folder, followlinks=True):
        for n in names:
            p = Path(dirpath) / n
            out[p.relative_to(folder).as_posix()] = p.read_bytes()
    return out
