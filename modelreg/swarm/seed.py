"""``modelreg seed``: seed every registry torrent whose files are found complete and verified on this machine.

Places looked in, first match wins per torrent: the Hugging Face cache (``snapshots/<commit>/`` of the
repository, the commit from the registry or from ``refs/<branch>``), plain model folders (``<dir>/<name>/``
or ``<dir>/`` itself), and the web-seed gateway's mirror cache (``<cache>/<infohash>/data/``). The files are
seeded where they are: libtorrent is told each file's real path (its file renaming, with absolute paths),
and the torrent runs in upload mode, so nothing is ever written there. libtorrent checks every piece
when a torrent is added; only a torrent found complete is seeded, the others are reported and dropped.
The registry is read again every ``rescan`` seconds, so new torrents start seeding without a restart.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

from modelreg.errors import ModelregError, SwarmError
from modelreg.swarm import hfcache
from modelreg.swarm.monitor import human_bytes
from modelreg.swarm.resolve import Entry, Registry, Site
from modelreg.swarm.session import lt, make_session, torrent_params
from modelreg.torrent.metainfo import Torrent


@dataclass(frozen=True)
class Places:
    """Where ``seed`` looks for files."""

    hf_cache: Path | None = None
    dirs: tuple[Path, ...] = ()
    webseed_cache: Path | None = None


def locate(entry: Entry, places: Places) -> tuple[str, dict[int, Path]] | None:
    """(where, layout index -> real path) for the first place holding every file of the torrent at its size."""
    torrent = entry.torrent
    candidates: list[tuple[str, Callable[[str], Path | None]]] = []
    if places.hf_cache is not None:
        repo = hfcache.repo_folder(places.hf_cache, entry.repo_id)
        commit = entry.commit or _ref(repo, entry.branch)
        if commit:
            candidates.append((f"{repo}/snapshots/{commit}", lambda rel: hfcache.snapshot_file(repo, commit, rel)))
    for d in places.dirs:
        for base in ((d, d / torrent.name) if torrent.single_file else (d / torrent.name, d)):
            root = base.parent if torrent.single_file else base
            candidates.append((str(base), lambda rel, root=root: _plain(root, rel)))
    if places.webseed_cache is not None:
        data = places.webseed_cache / (torrent.infohash_v1 or torrent.infohash_v2 or "-") / "data"  # webseed.cache
        candidates.append((str(data), lambda rel: _plain(data, rel)))
    for where, find in candidates:
        paths = {}
        for i, f in enumerate(torrent.layout):
            if f.is_pad:
                continue
            path = find(f.path_str)
            if path is None or path.stat().st_size != f.size:
                break
            paths[i] = path
        else:
            return where, paths
    return None


def _ref(repo: Path, branch: str) -> str | None:
    try:
        text = repo.joinpath("refs", *hfcache.check_relpath(branch)).read_text().strip()
    except (OSError, SwarmError, UnicodeDecodeError):
        return None
    return text or None


def _plain(root: Path, rel: str) -> Path | None:
    try:
        path = root.joinpath(*hfcache.check_relpath(rel)).resolve(strict=True)
    except (OSError, RuntimeError, SwarmError):
        return None
    return path if path.is_file() else None


def add_in_place(ses: Any, torrent: Torrent, paths: dict[int, Path], *, checked: bool = False) -> Any:
    """Add ``torrent`` to seed the files at ``paths`` where they are, in upload mode (libtorrent writes nothing).

    ``checked`` skips libtorrent's check of every piece (only for files just verified).
    """
    lib = lt()
    first = next(iter(paths.values()))
    atp = torrent_params(torrent.raw, str(first.parent))
    atp.renamed_files = {i: str(p.absolute()) for i, p in paths.items()}
    atp.flags |= lib.torrent_flags.upload_mode
    atp.flags &= ~lib.torrent_flags.auto_managed
    atp.flags &= ~lib.torrent_flags.paused
    if checked:
        atp.flags |= lib.torrent_flags.seed_mode
    return ses.add_torrent(atp)


def seed_for(ses: Any, entry: Entry, repo: Path, seconds: float, peers: tuple[tuple[str, int], ...],
             log: TextIO) -> int:
    """After ``get``: seed what it placed (partly placed torrents: their complete pieces) for ``seconds``;
    returns the bytes uploaded."""
    paths = {}
    for i, f in enumerate(entry.torrent.layout):
        blob = None if f.is_pad else hfcache.snapshot_file(repo, entry.commit or "", f.path_str)
        if blob is not None:
            paths[i] = blob
    if not paths:
        return 0
    handle = add_in_place(ses, entry.torrent, paths)
    for peer in peers:
        handle.connect_peer(peer)
    print(f"seeding {entry.repo_id} for {seconds:g} s", file=log, flush=True)
    time.sleep(seconds)
    uploaded = handle.status().total_payload_upload
    ses.remove_torrent(handle)
    return uploaded


@dataclass
class Seeding:
    """One torrent the seeder handles."""

    entry: Entry
    where: str
    handle: Any
    state: str = "checking"
    checked: bool = False
    peers: int = 0
    uploaded: int = 0
    signature: tuple = field(default=())


class Seeder:
    """Seeds what it finds, re-reads the registry every ``rescan`` seconds, stops when ``stop`` is set."""

    def __init__(self, source: Site | Registry, places: Places, *, port: int = 0, dht: bool = True, lsd: bool = True,
                 rescan: float = 300.0, report_every: float = 60.0, log: TextIO = sys.stdout):
        self.source, self.places, self.log = source, places, log
        self.rescan, self.report_every = rescan, report_every
        self.ses = make_session(port, dht=dht, lsd=lsd)
        self.port = self.ses.listen_port()
        self.torrents: dict[str, Seeding] = {}
        #: Torrents found incomplete or corrupt, with the files' (path, size, mtime) then: tried again when those change.
        self.rejected: dict[str, tuple] = {}
        self.metrics_text = ""

    def run(self, stop: threading.Event) -> None:
        next_scan = next_report = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_scan:
                self.scan()
                next_scan = now + self.rescan
            self.poll()
            if now >= next_report and self.report_every > 0:
                if next_report:
                    self.report()
                next_report = now + self.report_every
            stop.wait(0.2)
        self.poll()
        self.report(final=True)
        for s in self.torrents.values():
            self.ses.remove_torrent(s.handle)
        self.torrents.clear()

    def scan(self) -> None:
        try:
            entries, errors = self.source.entries()
        except ModelregError as exc:
            print(f"warning: cannot read {self.source}: {exc}", file=self.log, flush=True)
            return
        for exc in errors:
            print(f"warning: {exc}", file=self.log, flush=True)
        for entry in entries:
            key = entry.torrent.infohash_v1 or entry.torrent.infohash_v2 or ""
            if key in self.torrents:
                continue
            found = locate(entry, self.places)
            if found is None:
                continue
            where, paths = found
            signature = tuple((str(p), *_stat(p)) for p in paths.values())
            if self.rejected.get(key) == signature:
                continue
            self.rejected.pop(key, None)
            handle = add_in_place(self.ses, entry.torrent, paths)
            self.torrents[key] = Seeding(entry, where, handle, signature=signature)

    def poll(self) -> None:
        lib = lt()
        checking = (lib.torrent_status.checking_files, lib.torrent_status.checking_resume_data)
        for alert in self.ses.pop_alerts():  # errors show in the status below
            if isinstance(alert, lib.torrent_checked_alert):
                for s in self.torrents.values():
                    if s.handle == alert.handle:
                        s.checked = True
        for key, s in list(self.torrents.items()):
            st = s.handle.status()
            s.peers, s.uploaded = st.num_peers, st.total_payload_upload
            if not s.checked or st.state in checking:
                continue
            if st.errc.value() or not st.is_seeding:
                why = st.errc.message() if st.errc.value() else f"{st.num_pieces} of {s.entry.torrent.num_pieces} pieces verified"
                print(f"not seeding {s.entry.repo_id} from {s.where}: {why}", file=self.log, flush=True)
                self.ses.remove_torrent(s.handle)
                self.rejected[key] = s.signature
                del self.torrents[key]
            elif s.state != "seeding":
                s.state = "seeding"
                print(f"seeding {s.entry.repo_id} ({key[:12]}, {human_bytes(s.entry.torrent.total_size)}) from {s.where}",
                      file=self.log, flush=True)
        self.metrics_text = self.render_metrics()

    def report(self, final: bool = False) -> None:
        seeding = [s for s in self.torrents.values() if s.state == "seeding"]
        head = "stopped; seeded" if final else "seeding"
        print(f"{head} {len(seeding)} torrent(s) on port {self.port}", file=self.log, flush=True)
        for s in seeding:
            print(f"  {s.entry.repo_id}: {s.peers} peer(s), uploaded {human_bytes(s.uploaded)}", file=self.log, flush=True)

    def render_metrics(self) -> str:
        """The seeder's counters in the Prometheus text format (0.0.4), like the gateway's ``/metrics``."""
        seeding = [s for s in self.torrents.values() if s.state == "seeding"]
        lines = ["# HELP modelreg_seed_torrents Torrents being seeded.", "# TYPE modelreg_seed_torrents gauge",
                 f"modelreg_seed_torrents {len(seeding)}",
                 "# HELP modelreg_seed_peers Peers connected, by repository.", "# TYPE modelreg_seed_peers gauge"]
        lines += [f'modelreg_seed_peers{{repo="{_label(s.entry.repo_id)}"}} {s.peers}' for s in seeding]
        lines += ["# HELP modelreg_seed_uploaded_bytes_total Payload bytes uploaded, by repository.",
                  "# TYPE modelreg_seed_uploaded_bytes_total counter"]
        lines += [f'modelreg_seed_uploaded_bytes_total{{repo="{_label(s.entry.repo_id)}"}} {s.uploaded}' for s in seeding]
        return "\n".join(lines) + "\n"


def _stat(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def serve_metrics(seeder: Seeder, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve ``GET /metrics`` from a daemon thread; the caller shuts the server down.

    Raises:
        SwarmError: the port cannot be bound.
    """
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            if self.path.split("?")[0] != "/metrics":
                self.send_error(404)
                return
            body = seeder.metrics_text.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise SwarmError(f"cannot serve /metrics on {host}:{port}: {exc.strerror or exc}") from None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
