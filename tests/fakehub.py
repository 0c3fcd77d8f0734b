"""An in-process fake of huggingface.co over real HTTP on 127.0.0.1.

Two origins run in background threads: the hub (``hub.endpoint``: the JSON API, ``resolve`` and ``raw``
downloads) and a CDN (``hub.cdn_endpoint``) to which LFS files redirect with a signed, expiring URL.
The real ``huggingface_hub`` works against it (``HfApi(endpoint=hub.endpoint)``, ``endpoint=`` on the download
functions, or ``HF_ENDPOINT`` in a subprocess: see ``FakeHub.env``). Large files are ``Generated``:
deterministic content produced on the fly at several GB/s (``python tests/fakehub.py`` measures it).

Usage::

    with FakeHub() as hub:
        repo = hub.add_repo("Org/Name", {"config.json": b"{}", "model.safetensors": Generated(10**8, seed=1)})
        HfApi(endpoint=hub.endpoint).model_info("Org/Name", files_metadata=True)
        repo.commit({"config.json": b"{ }"})          # main moves on; repo.history keeps the old sha served
        hub.inject("cdn", 503, times=2)               # the next two CDN requests fail
        with hub.offline(): ...                        # connections refused

As a pytest fixture: ``yield from fake_hub()`` inside your own fixture.

Notes: an LFS file's SHA-256 (needed for its redirect and metadata) is computed on first use at ~2 GB/s and
cached process-wide per (size, seed); for files of many GB call ``repo.files[path].sha256()`` in the test setup
so a client's 10 s metadata timeout is not spent hashing. libtorrent sessions must set
``ssrf_mitigation=False`` to follow the redirect to the loopback CDN (its URL carries a query string).
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

__all__ = [
    "DEFAULT_GITATTRIBUTES",
    "Commit",
    "Fault",
    "FakeHub",
    "Generated",
    "Repo",
    "RepoEntry",
    "RequestRecord",
    "fake_hub",
    "is_lfs_path",
]

PERIOD = 1_048_573  # prime length of a Generated file's base buffer: content[o] = base[o % PERIOD]
CHUNK = 1 << 20  # largest slice handed to the socket at once
LFS_SIZE_THRESHOLD = 10 * 1024 * 1024  # HF refuses regular (non-LFS) files above 10 MiB

# The .gitattributes HF writes into every new model repo, plus *.gguf which every GGUF repo adds.
_LFS_PATTERNS = (
    "*.7z *.arrow *.bin *.bz2 *.ckpt *.ftz *.gz *.h5 *.joblib *.lfs.* *.mlmodel *.model *.msgpack *.npy *.npz "
    "*.onnx *.ot *.parquet *.pb *.pickle *.pkl *.pt *.pth *.rar *.safetensors saved_model/**/* *.tar.* *.tar "
    "*.tflite *.tgz *.wasm *.xz *.zip *.zst *tfevents*"
).split()
DEFAULT_GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in _LFS_PATTERNS).encode()
_LFS_GLOBS = (*_LFS_PATTERNS, "*.gguf")

_DEFAULT_DATE = "2024-01-01T00:00:00.000Z"
_TEXT_SUFFIXES = (".json", ".md", ".txt", ".jinja", ".py", ".yaml", ".yml", ".gitattributes", ".model")


def is_lfs_path(path: str, size: int) -> bool:
    """Whether HF would store ``path`` of ``size`` bytes with Git LFS (default .gitattributes or > 10 MiB)."""
    if size > LFS_SIZE_THRESHOLD:
        return True
    name = path.rsplit("/", 1)[-1]
    for pattern in _LFS_GLOBS:
        if pattern == "saved_model/**/*":
            if path.startswith("saved_model/"):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


# --------------------------------------------------------------------------------------------------- content


@lru_cache(maxsize=64)
def _base(seed: int) -> bytes:
    """PERIOD pseudo-random bytes for ``seed``, followed by their first CHUNK bytes again (so any slice of at most
    CHUNK bytes starting inside the period is contiguous)."""
    block = hashlib.shake_256(b"fakehub-generated:%d" % seed).digest(PERIOD)
    return block + block[:CHUNK]


_hash_cache: dict[tuple, str] = {}
_hash_locks: dict[tuple, threading.Lock] = {}
_hash_guard = threading.Lock()


def _cached_hash(key: tuple, compute) -> str:
    """Compute a digest once per key even when many server threads ask at the same time."""
    value = _hash_cache.get(key)
    if value is not None:
        return value
    with _hash_guard:
        lock = _hash_locks.setdefault(key, threading.Lock())
    with lock:
        value = _hash_cache.get(key)
        if value is None:
            value = _hash_cache[key] = compute()
    return value


@dataclass(frozen=True)
class Generated:
    """A file of ``size`` deterministic pseudo-random bytes for ``seed``, produced on the fly, never stored."""

    size: int
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 0:
            raise ValueError(f"Generated size must be >= 0, got {self.size}")

    def chunks(self, start: int = 0, end: int | None = None, chunk: int = CHUNK) -> Iterator[memoryview]:
        """Yield the bytes of ``[start, end)`` as memoryview slices of at most ``chunk`` (<= CHUNK) bytes."""
        end = self.size if end is None else min(end, self.size)
        chunk = min(chunk, CHUNK)
        view = memoryview(_base(self.seed))
        pos = start
        while pos < end:
            n = min(chunk, end - pos)
            o = pos % PERIOD
            yield view[o : o + n]
            pos += n

    def read(self, offset: int = 0, length: int | None = None) -> bytes:
        """The bytes at ``[offset, offset + length)`` (clamped to the file), like a file read."""
        end = self.size if length is None else offset + length
        return b"".join(self.chunks(offset, end))

    def sha256(self) -> str:
        """Hex SHA-256 of the whole content (computed once per (size, seed), then cached)."""
        return _cached_hash(("sha256", self.size, self.seed), lambda: _digest(hashlib.sha256(), self))

    def git_sha1(self) -> str:
        """Git blob id of the content: sha1(b"blob <size>\\0" + content)."""
        return _cached_hash(
            ("git", self.size, self.seed), lambda: _digest(hashlib.sha1(b"blob %d\0" % self.size), self)
        )


Content = bytes | Generated


def _digest(h, content: Content) -> str:
    for piece in _chunks(content, 0, _size(content)):
        h.update(piece)
    return h.hexdigest()


def _size(content: Content) -> int:
    return content.size if isinstance(content, Generated) else len(content)


def _chunks(content: Content, start: int, end: int, chunk: int = CHUNK) -> Iterator[memoryview]:
    if isinstance(content, Generated):
        yield from content.chunks(start, end, chunk)
        return
    view = memoryview(content)
    for pos in range(start, end, chunk):
        yield view[pos : min(pos + chunk, end)]


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# --------------------------------------------------------------------------------------------------- repos


@dataclass
class RepoEntry:
    """One file of one revision. ``last_commit`` is the sha of the commit that last changed it."""

    path: str
    content: Content
    lfs: bool
    last_commit: str = ""
    _sha256: str | None = field(default=None, repr=False, compare=False)

    @property
    def size(self) -> int:
        return _size(self.content)

    def sha256(self) -> str:
        if self._sha256 is None:
            c = self.content
            self._sha256 = c.sha256() if isinstance(c, Generated) else hashlib.sha256(c).hexdigest()
        return self._sha256

    def pointer(self) -> bytes:
        """The Git LFS pointer file git stores for this entry."""
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256()}\nsize {self.size}\n"
        ).encode()

    def blob_id(self) -> str:
        """Git blob id as HF reports it: of the pointer for LFS files, of the content otherwise."""
        if self.lfs:
            return _git_blob_id(self.pointer())
        c = self.content
        return c.git_sha1() if isinstance(c, Generated) else _git_blob_id(c)

    def read(self, offset: int = 0, length: int | None = None) -> bytes:
        c = self.content
        if isinstance(c, Generated):
            return c.read(offset, length)
        return bytes(c[offset : None if length is None else offset + length])


@dataclass(frozen=True)
class Commit:
    """One revision of a repo: an immutable snapshot of its files."""

    sha: str
    parent: str | None
    files: Mapping[str, RepoEntry]
    message: str
    date: str
    author: str


def _iso(value: datetime | str | None, default: str) -> str:
    if value is None:
        return default
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value


def _now() -> str:
    return _iso(datetime.now(UTC), _DEFAULT_DATE)


class Repo:
    """A model repository on the fake hub. Metadata attributes are plain and may be changed by tests."""

    def __init__(self, repo_id: str, **meta) -> None:
        if repo_id.count("/") != 1 or not all(repo_id.split("/")):
            raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
        self.repo_id = repo_id
        self.author = repo_id.split("/")[0]
        self.license: str | None = meta.pop("license", None)
        self.pipeline_tag: str | None = meta.pop("pipeline_tag", None)
        self.library_name: str | None = meta.pop("library_name", None)
        self.tags: list[str] = list(meta.pop("tags", ()) or ())
        self.downloads: int = meta.pop("downloads", 0)
        self.likes: int = meta.pop("likes", 0)
        self.trending_score: int = meta.pop("trending_score", 0)
        self.created_at: str = _iso(meta.pop("created_at", None), _DEFAULT_DATE)
        self.last_modified: str | None = _iso(meta.pop("last_modified", None), "") or None
        gated = meta.pop("gated", False)
        if gated not in (False, "auto", "manual"):
            raise ValueError(f"gated must be False, 'auto' or 'manual', got {gated!r}")
        self.gated: bool | str = gated
        self.private: bool = meta.pop("private", False)
        self.disabled: bool = meta.pop("disabled", False)
        self.card_data: dict | None = meta.pop("card_data", None)
        self.safetensors: dict | None = meta.pop("safetensors", None)
        self.gguf: dict | None = meta.pop("gguf", None)
        self.base_model: str | list[str] | None = meta.pop("base_model", None)
        if meta:
            raise TypeError(f"unknown repo metadata: {', '.join(sorted(meta))}")
        self.commits: dict[str, Commit] = {}
        self.history: list[str] = []  # commit shas, oldest first
        self.branches: dict[str, str] = {}
        self.tags_refs: dict[str, str] = {}
        self._lock = threading.Lock()

    # -- revisions
    @property
    def sha(self) -> str:
        """Commit sha of ``main``."""
        return self.branches["main"]

    @property
    def files(self) -> Mapping[str, RepoEntry]:
        """Files at ``main``."""
        return self.commits[self.sha].files

    def commit(
        self,
        files: Mapping[str, Content | None],
        *,
        message: str | None = None,
        branch: str = "main",
        sha: str | None = None,
        replace: bool = False,
        lfs: set[str] | frozenset[str] | None = None,
        date: datetime | str | None = None,
    ) -> str:
        """Make a new revision on ``branch`` and return its sha; older revisions stay served.

        ``files`` update the parent's files (``None`` deletes a path) unless ``replace`` starts from nothing; the
        parent of a new branch is ``main``.
        ``lfs`` names the paths stored with LFS; otherwise HF's rule decides (extension or size > 10 MiB).
        """
        with self._lock:
            parent = self.branches.get(branch, self.branches.get("main"))  # a new branch starts from main
            base = {} if replace or parent is None else dict(self.commits[parent].files)
            changed: dict[str, Content] = {}
            for path, content in files.items():
                path = path.strip("/")
                if content is None:
                    base.pop(path, None)
                elif isinstance(content, (bytes, bytearray, memoryview)):
                    changed[path] = bytes(content)
                elif isinstance(content, Generated):
                    changed[path] = content
                else:
                    raise TypeError(f"{path}: content must be bytes or Generated, got {type(content).__name__}")
            message = message or ("Initial commit" if parent is None else f"Update {len(changed)} file(s)")
            if sha is None:
                h = hashlib.sha1(f"{self.repo_id}\0{parent}\0{message}\0".encode())
                for path in sorted(base):
                    if path not in changed:
                        h.update(f"{path}\0{base[path].last_commit}".encode())
                for path in sorted(changed):
                    c = changed[path]
                    desc = f"g{c.size}:{c.seed}" if isinstance(c, Generated) else hashlib.sha1(c).hexdigest()
                    h.update(f"{path}\0{desc}\0{lfs is not None and path in lfs}".encode())
                sha = h.hexdigest()
            if not re.fullmatch(r"[0-9a-f]{40}", sha) or sha in self.commits:
                raise ValueError(f"commit sha must be 40 lowercase hex digits and new, got {sha!r}")
            for path, content in changed.items():
                is_lfs = path in lfs if lfs is not None else is_lfs_path(path, _size(content))
                base[path] = RepoEntry(path, content, is_lfs, sha)
            if date is None:
                date = (self.last_modified or self.created_at) if parent is None else _now()
            commit = Commit(sha, parent, dict(sorted(base.items())), message, _iso(date, _DEFAULT_DATE), self.author)
            self.commits[sha] = commit
            self.history.append(sha)
            self.branches[branch] = sha
            if branch == "main":
                self.last_modified = commit.date
            return sha

    def set_branch(self, name: str, sha: str) -> None:
        if sha not in self.commits:
            raise KeyError(f"{self.repo_id}: unknown commit {sha}")
        self.branches[name] = sha

    def tag(self, name: str, sha: str | None = None) -> None:
        self.tags_refs[name] = sha or self.sha

    def resolve(self, revision: str | None) -> Commit | None:
        """The commit for a branch, tag or full sha (``None`` means ``main``), or None if unknown."""
        rev = revision or "main"
        if rev.startswith("refs/heads/"):
            rev = rev[len("refs/heads/") :]
        sha = self.branches.get(rev) or self.tags_refs.get(rev.removeprefix("refs/tags/"))
        if sha is None and rev in self.commits:
            sha = rev
        return self.commits.get(sha) if sha else None

    def entry(self, path: str, revision: str | None = None) -> RepoEntry:
        commit = self.resolve(revision)
        if commit is None:
            raise KeyError(f"{self.repo_id}: unknown revision {revision}")
        return commit.files[path]

    # -- JSON
    def card(self) -> dict | None:
        data = dict(self.card_data or {})
        for key, value in (
            ("license", self.license),
            ("library_name", self.library_name),
            ("pipeline_tag", self.pipeline_tag),
            ("base_model", self.base_model),
        ):
            if value is not None:
                data.setdefault(key, value)
        return data or None

    def all_tags(self, commit: Commit) -> list[str]:
        """Tags as HF computes them: the given ones plus library, formats, task, license, base model, region."""
        tags = list(self.tags)
        derived = [self.library_name]
        if any(p.endswith(".safetensors") for p in commit.files):
            derived.append("safetensors")
        if any(p.endswith(".gguf") for p in commit.files):
            derived.append("gguf")
        derived.append(self.pipeline_tag)
        if self.license:
            derived.append(f"license:{self.license}")
        bases = [self.base_model] if isinstance(self.base_model, str) else list(self.base_model or ())
        derived.extend(f"base_model:{b}" for b in bases)
        derived.append("region:us")
        for tag in derived:
            if tag and tag not in tags:
                tags.append(tag)
        return tags

    def info_json(self, commit: Commit, *, blobs: bool, security: bool = False) -> dict:
        siblings = []
        for path, entry in commit.files.items():
            sib: dict = {"rfilename": path}
            if blobs:
                sib["size"] = entry.size
                sib["blobId"] = entry.blob_id()
                if entry.lfs:
                    sib["lfs"] = {"sha256": entry.sha256(), "size": entry.size, "pointerSize": len(entry.pointer())}
            siblings.append(sib)
        data: dict = {
            "_id": hashlib.sha1(self.repo_id.encode()).hexdigest()[:24],
            "id": self.repo_id,
            "modelId": self.repo_id,
            "author": self.author,
            "sha": commit.sha,
            "lastModified": commit.date,
            "createdAt": self.created_at,
            "private": self.private,
            "gated": self.gated,
            "disabled": self.disabled,
            "downloads": self.downloads,
            "likes": self.likes,
            "trendingScore": self.trending_score,
            "tags": self.all_tags(commit),
            "siblings": siblings,
            "spaces": [],
            "usedStorage": sum(e.size for e in commit.files.values()),
        }
        for key, value in (
            ("library_name", self.library_name),
            ("pipeline_tag", self.pipeline_tag),
            ("cardData", self.card()),
            ("gguf", self.gguf),
        ):
            if value is not None:
                data[key] = value
        if self.safetensors is not None:
            params = dict(self.safetensors.get("parameters", self.safetensors))
            data["safetensors"] = {"parameters": params, "total": self.safetensors.get("total", sum(params.values()))}
        if security:
            data["securityRepoStatus"] = {"scansDone": True, "filesWithIssues": []}
        return data

    def list_json(self, commit: Commit, *, full: bool) -> dict:
        info = self.info_json(commit, blobs=False)
        keys = ["_id", "id", "likes", "trendingScore", "private", "downloads", "tags", "pipeline_tag",
                "library_name", "createdAt", "modelId"]
        if full:
            keys += ["author", "sha", "lastModified", "gated", "disabled", "siblings"]
        return {k: info[k] for k in keys if k in info}


# --------------------------------------------------------------------------------------------------- faults, records


@dataclass
class Fault:
    """A failure the next matching request(s) suffer; see ``FakeHub.inject``."""

    kind: str
    status: int | None = None
    path: re.Pattern | None = None
    times: int | None = 1
    retry_after: float | None = None
    delay: float | None = None
    drop_after: int | None = None
    corrupt: bool | int = False
    rate: float | None = None
    hits: int = 0

    def matches(self, kind: str, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if self.kind != "any" and self.kind != kind:
            return False
        return self.path is None or self.path.search(path) is not None


@dataclass
class RequestRecord:
    """One request as the fake hub saw it. ``status`` is set when headers go out; ``bytes_sent`` counts body bytes
    handed to the socket (it grows while a body streams)."""

    origin: str  # "hub" or "cdn"
    kind: str  # "api", "resolve" or "cdn"
    method: str
    path: str
    query: str
    range: str | None
    authorization: bool
    headers: dict[str, str]
    status: int | None = None
    bytes_sent: int = 0
    fault: Fault | None = None
    started: float = 0.0
    finished: float | None = None


# --------------------------------------------------------------------------------------------------- HTTP plumbing


@dataclass
class _Response:
    status: int
    headers: list[tuple[str, str]]
    body: Content = b""
    start: int = 0
    end: int | None = None  # body slice [start, end)

    @property
    def length(self) -> int:
        return (_size(self.body) if self.end is None else self.end) - self.start


def _error(status: int, message: str, code: str | None = None, headers=()) -> _Response:
    hdrs = [("Content-Type", "application/json; charset=utf-8"), ("X-Error-Message", message), *headers]
    if code:
        hdrs.append(("X-Error-Code", code))
    return _Response(status, hdrs, json.dumps({"error": message}).encode())


def _json(data, status: int = 200, headers=()) -> _Response:
    return _Response(status, [("Content-Type", "application/json; charset=utf-8"), *headers], json.dumps(data).encode())


def _parse_range(header: str | None, size: int) -> tuple[int, int] | None | str:
    """(start, end_exclusive) for one satisfiable byte range; None to serve the whole body; "416" if unsatisfiable."""
    if not header:
        return None
    m = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header)
    if not m or (not m.group(1) and not m.group(2)):
        return None  # malformed or multi-range: ignored, like S3/CloudFront
    first, last = m.group(1), m.group(2)
    if not first:
        n = int(last)
        if n == 0 or size == 0:
            return "416"
        return max(0, size - n), size
    start = int(first)
    end = size if not last else min(int(last) + 1, size)
    if last and int(last) < start:
        return None
    if start >= size:
        return "416"
    return start, end


def _ranged(status_headers: list[tuple[str, str]], body: Content, range_header: str | None) -> _Response:
    size = _size(body)
    rng = _parse_range(range_header, size)
    headers = [*status_headers, ("Accept-Ranges", "bytes")]
    if rng == "416":
        return _Response(416, [*headers, ("Content-Range", f"bytes */{size}")], b"")
    if rng is None:
        return _Response(200, headers, body)
    start, end = rng
    return _Response(206, [*headers, ("Content-Range", f"bytes {start}-{end - 1}/{size}")], body, start, end)


def _content_type(path: str) -> str:
    if path.endswith(_TEXT_SUFFIXES) and not path.endswith(".model"):
        return "text/plain; charset=utf-8"
    return "application/octet-stream"


class _Server(ThreadingHTTPServer):
    daemon_threads = False  # threads are tracked and joined on close
    block_on_close = True
    request_queue_size = 1024
    allow_reuse_address = True

    def __init__(self, address, hub: FakeHub, origin: str) -> None:
        self.hub = hub
        self.origin = origin
        self.closing = threading.Event()
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request, client_address) -> None:  # quiet: clients hang up mid-body all the time
        pass

    def drop_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Dropped(Exception):
    """The fault said to hang up mid-body."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeHub/1.0"
    sys_version = ""
    server: _Server

    def log_message(self, format, *args) -> None:  # noqa: A002 - stdlib signature
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, _Dropped):
            self.close_connection = True

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        hub = self.server.hub
        origin = self.server.origin
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        auth = self.headers.get("Authorization")
        kind = "cdn" if origin == "cdn" else ("api" if split.path.startswith("/api/") else "resolve")
        record = RequestRecord(
            origin=origin,
            kind=kind,
            method=method,
            path=split.path,
            query=split.query,
            range=self.headers.get("Range"),
            authorization=bool(auth),
            headers=dict(self.headers.items()),
            started=time.monotonic(),
        )
        hub._enter(origin)
        try:
            fault = hub._take_fault(kind, split.path)
            record.fault = fault
            if fault is not None and fault.delay:
                self.server.closing.wait(fault.delay)
            if fault is not None and fault.status is not None:
                extra = [("Retry-After", f"{fault.retry_after:g}")] if fault.retry_after is not None else []
                response = _error(fault.status, f"Injected fault: HTTP {fault.status}", headers=extra)
            else:
                token = auth[7:].strip() if auth and auth[:7].lower() == "bearer " else None
                request = _Request(method, split.path, split.query, self.headers.get("Range"), token, body)
                try:
                    response = hub._route(origin, request)
                except Exception as exc:  # a bug in the fake must be visible, not a hang
                    response = _error(500, f"fakehub internal error: {exc!r}")
            self._send(method, response, record, fault)
        finally:
            record.finished = time.monotonic()
            hub._leave(origin)

    def _send(self, method: str, response: _Response, record: RequestRecord, fault: Fault | None) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value if value.isascii() else value.encode("ascii", "backslashreplace").decode())
        self.send_header("Content-Length", str(response.length))
        self.end_headers()
        record.status = response.status
        self.server.hub._record(record)
        if method == "HEAD":
            return
        drop_after = fault.drop_after if fault is not None else None
        flip = None
        if fault is not None and fault.corrupt is not False and response.length:
            flip = response.length // 2 if fault.corrupt is True else int(fault.corrupt)
        rate = fault.rate if fault is not None else None
        chunk = CHUNK if not rate else max(1024, min(CHUNK, int(rate / 20)))
        began = time.monotonic()
        sent = 0
        for piece in _chunks(response.body, response.start, response.start + response.length, chunk):
            if drop_after is not None and sent + len(piece) > drop_after:
                piece = piece[: drop_after - sent]
            if flip is not None and sent <= flip < sent + len(piece):
                damaged = bytearray(piece)
                damaged[flip - sent] ^= 0xFF
                piece = memoryview(damaged)
            if rate:
                wait = began + sent / rate - time.monotonic()
                if wait > 0 and self.server.closing.wait(wait):
                    raise _Dropped()
            record.bytes_sent += len(piece)
            self.connection.sendall(piece)
            sent += len(piece)
            if drop_after is not None and sent >= drop_after:
                break
        if drop_after is not None:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            raise _Dropped()


@dataclass
class _Request:
    method: str
    path: str
    query: str
    range: str | None
    token: str | None
    body: bytes

    def params(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for key, value in parse_qsl(self.query, keep_blank_values=True):
            out.setdefault(key.removesuffix("[]"), []).append(value)
        return out

    def flag(self, name: str) -> bool:
        values = self.params().get(name)
        return bool(values) and values[-1].lower() in ("1", "true", "yes")


class _Origin:
    """One listening server (hub or CDN) on a fixed port that can be stopped and restarted."""

    def __init__(self, hub: FakeHub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.port = 0
        self.server: _Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        server = _Server(("127.0.0.1", self.port), self.hub, self.name)
        self.port = server.server_address[1]
        self.server = server
        self.thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"fakehub-{self.name}", daemon=True
        )
        self.thread.start()

    def stop(self) -> None:
        server, thread = self.server, self.thread
        if server is None:
            return
        self.server = self.thread = None
        server.closing.set()
        server.shutdown()
        server.drop_connections()
        server.server_close()  # closes the listener and joins the connection threads
        if thread is not None:
            thread.join()


class _Offline:
    """Returned by ``FakeHub.offline()``; as a context manager it brings the hub back online on exit."""

    def __init__(self, hub: FakeHub) -> None:
        self.hub = hub

    def __enter__(self) -> FakeHub:
        return self.hub

    def __exit__(self, *exc) -> None:
        self.hub.online()


# --------------------------------------------------------------------------------------------------- the hub


class FakeHub:
    """A fake huggingface.co (hub + CDN) on 127.0.0.1. Start with ``with FakeHub() as hub`` or ``start()``/``stop()``.

    ``tokens``: accepted bearer tokens (gated and private repos need one). ``tree_page_size`` /
    ``list_page_size``: entries per page before a ``Link: rel="next"`` header. ``cdn_ttl``: seconds a signed CDN
    URL stays valid at least (its ``Expires`` is in whole seconds: up to one more).
    """

    def __init__(
        self,
        *,
        tokens: set[str] | None = None,
        tree_page_size: int = 1000,
        list_page_size: int = 1000,
        cdn_ttl: float = 3600,
    ) -> None:
        self.tokens: set[str] = set(tokens or ())
        self.tree_page_size = tree_page_size
        self.list_page_size = list_page_size
        self.cdn_ttl = cdn_ttl
        self.repos: dict[str, Repo] = {}
        self.requests: list[RequestRecord] = []
        self.max_in_flight: dict[str, int] = {"hub": 0, "cdn": 0}
        self.in_flight: dict[str, int] = {"hub": 0, "cdn": 0}
        self.faults: list[Fault] = []
        self._secret = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._cdn_blobs: dict[str, tuple[str, RepoEntry]] = {}  # sha256 -> (repo_id, entry)
        self._hub = _Origin(self, "hub")
        self._cdn = _Origin(self, "cdn")
        self._request_ids = 0

    # -- lifecycle
    def start(self) -> FakeHub:
        self._hub.start()
        self._cdn.start()
        return self

    def stop(self) -> None:
        """Stop both origins: closes listeners and live connections and joins every server thread."""
        self._hub.stop()
        self._cdn.stop()

    def __enter__(self) -> FakeHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def offline(self) -> _Offline:
        """Refuse every connection (listeners closed, open connections cut) until ``online()``; usable as a context
        manager that goes back online on exit."""
        self.stop()
        return _Offline(self)

    def online(self) -> None:
        """Listen again on the same ports after ``offline()``."""
        if self._hub.server is None:
            self._hub.start()
        if self._cdn.server is None:
            self._cdn.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.port}"

    @property
    def cdn_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._cdn.port}"

    def env(self, cache_dir: str | os.PathLike | None = None) -> dict[str, str]:
        """Environment variables pointing a subprocess' huggingface_hub at this hub (merge into os.environ);
        ``cache_dir`` also moves its download cache (HF_HUB_CACHE) away from the user's."""
        env = {
            "HF_ENDPOINT": self.endpoint,
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
            "HF_HUB_OFFLINE": "0",
        }
        if cache_dir is not None:
            env["HF_HUB_CACHE"] = os.fspath(cache_dir)
        return env

    # -- repos
    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, Content] | None = None,
        *,
        lfs: set[str] | frozenset[str] | None = None,
        sha: str | None = None,
        message: str | None = None,
        card: str | None = None,
        gitattributes: bool = False,
        **meta,
    ) -> Repo:
        """Create a repo with one commit on ``main``.

        ``files``: path -> bytes or Generated. ``lfs``: paths stored with LFS (default: HF's rule). ``card``: README
        text; a README.md with the card metadata as YAML front matter is added unless ``files`` has one.
        ``gitattributes``: add HF's default .gitattributes. ``meta``: license, pipeline_tag, library_name, tags,
        downloads, likes, trending_score, created_at, last_modified, gated, private, disabled, card_data,
        safetensors ({dtype: count} or {"parameters": ..., "total": ...}), gguf, base_model.
        """
        repo = Repo(repo_id, **meta)
        files = dict(files or {})
        if gitattributes and ".gitattributes" not in files:
            files[".gitattributes"] = DEFAULT_GITATTRIBUTES
        if card is not None and "README.md" not in files:
            files["README.md"] = _readme(repo.card(), card)
        repo.commit(files, sha=sha, message=message, lfs=lfs)
        with self._lock:
            if repo_id.lower() in (r.lower() for r in self.repos):
                raise ValueError(f"repo {repo_id} already exists")
            self.repos[repo_id] = repo
        return repo

    def remove_repo(self, repo_id: str) -> None:
        with self._lock:
            del self.repos[repo_id]

    def repo(self, repo_id: str) -> Repo:
        return self.repos[repo_id]

    def url(self, repo_id: str, path: str, revision: str = "main") -> str:
        """The ``resolve`` URL of a file, as ``huggingface_hub.hf_hub_url`` builds it."""
        return f"{self.endpoint}/{repo_id}/resolve/{quote(revision, safe='')}/{quote(path)}"

    def cdn_url(self, repo_id: str, path: str, revision: str = "main", *, expires_in: float | None = None) -> str:
        """A signed CDN URL for an LFS file, valid for ``expires_in`` seconds (default ``cdn_ttl``; negative means
        already expired)."""
        entry = self.repos[repo_id].entry(path, revision)
        return self._cdn_location(repo_id, entry, self.cdn_ttl if expires_in is None else expires_in)

    # -- faults
    def inject(
        self,
        kind: str,
        status: int | None = None,
        *,
        path: str | None = None,
        times: int | None = 1,
        retry_after: float | None = None,
        delay: float | None = None,
        drop_after: int | None = None,
        corrupt: bool | int = False,
        rate: float | None = None,
    ) -> Fault:
        """Make the next ``times`` (None: every) matching requests fail; returns the Fault (see ``.hits``).

        ``kind``: "api" (/api/...), "resolve" (/{repo}/resolve|raw/...), "cdn" or "any"; ``path``: regex searched in
        the URL path. ``status``: answer with this HTTP error (``retry_after`` adds Retry-After). ``delay``: wait
        this many seconds first. ``drop_after``: send that many body bytes then close the connection.
        ``corrupt``: flip one body byte (True: the middle one; an int: that offset in the body sent). ``rate``:
        stream the body at this many bytes per second. A request takes the first matching fault still having
        uses left, so faults are consumed in the order injected.
        """
        if kind not in ("api", "resolve", "cdn", "any"):
            raise ValueError(f"fault kind must be api, resolve, cdn or any, got {kind!r}")
        fault = Fault(
            kind, status, re.compile(path) if path else None, times, retry_after, delay, drop_after, corrupt, rate
        )
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def _take_fault(self, kind: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if fault.matches(kind, path):
                    fault.hits += 1
                    return fault
        return None

    # -- observability
    def reset_stats(self) -> None:
        with self._lock:
            self.requests.clear()
            self.max_in_flight = {"hub": 0, "cdn": 0}

    def find_requests(
        self, *, origin: str | None = None, method: str | None = None, path: str | None = None
    ) -> list[RequestRecord]:
        """Recorded requests filtered by origin, method and a regex searched in the path."""
        with self._lock:
            records = list(self.requests)
        return [
            r
            for r in records
            if (origin is None or r.origin == origin)
            and (method is None or r.method == method)
            and (path is None or re.search(path, r.path))
        ]

    def _record(self, record: RequestRecord) -> None:
        with self._lock:
            self.requests.append(record)

    def _enter(self, origin: str) -> None:
        with self._lock:
            self.in_flight[origin] += 1
            self.max_in_flight[origin] = max(self.max_in_flight[origin], self.in_flight[origin])

    def _leave(self, origin: str) -> None:
        with self._lock:
            self.in_flight[origin] -= 1

    # -- routing
    def _route(self, origin: str, req: _Request) -> _Response:
        if req.method not in ("GET", "HEAD", "POST"):
            return _error(405, "Method not allowed")
        if origin == "cdn":
            return self._serve_cdn(req)
        parts = [unquote(p) for p in req.path.split("/")[1:]]
        if parts[:2] == ["api", "models"]:
            if len(parts) == 2 or (len(parts) == 3 and parts[2] == ""):
                return self._list_models(req)
            if len(parts) >= 4:
                return self._api_repo(req, f"{parts[2]}/{parts[3]}", parts[4:])
        if len(parts) >= 5 and parts[2] in ("resolve", "raw"):
            return self._download(req, f"{parts[0]}/{parts[1]}", parts[2], parts[3], "/".join(parts[4:]))
        return _error(404, "Not Found")

    def _find_repo(self, repo_id: str, req: _Request) -> Repo | _Response:
        repo = self.repos.get(repo_id)
        if repo is None:
            lowered = repo_id.lower()
            repo = next((r for rid, r in list(self.repos.items()) if rid.lower() == lowered), None)
        if repo is None or (repo.private and req.token not in self.tokens):
            return _error(404, "Repository not found", "RepoNotFound")
        if repo.disabled:
            return _error(403, "Access to this resource is disabled.")
        return repo

    def _api_repo(self, req: _Request, repo_id: str, rest: list[str]) -> _Response:
        repo = self._find_repo(repo_id, req)
        if isinstance(repo, _Response):
            return repo
        action = rest[0] if rest else ""
        if action == "refs":
            return self._refs(repo)
        if req.method == "POST" and action != "paths-info":
            return _error(405, "Method not allowed")
        revision = rest[1] if len(rest) >= 2 else None
        commit = repo.resolve(revision)
        if commit is None:
            return _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        if action in ("", "revision"):
            return self._model_info(req, repo, commit)
        if action == "tree":
            return self._tree(req, repo, commit, "/".join(rest[2:]).strip("/"))
        if action == "commits":
            return self._commits(req, repo, commit)
        if action == "paths-info" and req.method == "POST":
            return self._paths_info(req, repo, commit)
        return _error(404, "Not Found")

    def _model_info(self, req: _Request, repo: Repo, commit: Commit) -> _Response:
        data = repo.info_json(commit, blobs=req.flag("blobs"), security=req.flag("securityStatus"))
        expand = req.params().get("expand")
        if expand:
            data = {k: v for k, v in data.items() if k in ("_id", "id") or k in expand}
        return _json(data)

    def _entry_json(self, entry: RepoEntry, commit: Commit, repo: Repo, expand: bool) -> dict:
        out: dict = {"type": "file", "oid": entry.blob_id(), "size": entry.size, "path": entry.path}
        if entry.lfs:
            out["lfs"] = {"oid": entry.sha256(), "size": entry.size, "pointerSize": len(entry.pointer())}
        if expand:
            last = repo.commits.get(entry.last_commit, commit)
            out["lastCommit"] = {"id": last.sha, "title": last.message, "date": last.date}
            out["securityFileStatus"] = {
                "status": "safe",
                "avScan": {"virusFound": False, "virusNames": None},
                "pickleImportScan": None,
            }
        return out

    def _dir_json(self, path: str, commit: Commit) -> dict:
        oid = hashlib.sha1(f"tree\0{commit.sha}\0{path}".encode()).hexdigest()
        return {"type": "directory", "oid": oid, "size": 0, "path": path}

    def _tree_items(self, commit: Commit, prefix: str, recursive: bool) -> list[str] | None:
        """Paths (directories end with '/') under ``prefix``, sorted; None if ``prefix`` is not a directory."""
        base = prefix + "/" if prefix else ""
        items: set[str] = set()
        for path in commit.files:
            if not path.startswith(base):
                continue
            rest = path[len(base) :].split("/")
            if recursive:
                for i in range(1, len(rest)):
                    items.add(base + "/".join(rest[:i]) + "/")
                items.add(path)
            else:
                items.add(base + rest[0] + ("/" if len(rest) > 1 else ""))
        if prefix and not items:
            return None
        return sorted(items, key=lambda p: p.rstrip("/"))

    def _tree(self, req: _Request, repo: Repo, commit: Commit, prefix: str) -> _Response:
        recursive = req.flag("recursive")
        expand = req.flag("expand")
        items = self._tree_items(commit, prefix, recursive)
        if items is None:
            return _error(404, f"Entry not found: {prefix}", "EntryNotFound", [("X-Repo-Commit", commit.sha)])
        page_size = min(self.tree_page_size, 50) if expand else self.tree_page_size
        start = _decode_cursor(req.params().get("cursor", [""])[-1])
        page = items[start : start + page_size]
        data = [
            self._dir_json(p.rstrip("/"), commit) if p.endswith("/") else self._entry_json(
                commit.files[p], commit, repo, expand
            )
            for p in page
        ]
        headers = [("X-Repo-Commit", commit.sha)]
        if start + page_size < len(items):
            query = {"recursive": str(recursive).lower(), "expand": str(expand).lower()}
            headers.append(("Link", self._next_link(req, query, start + page_size)))
        return _json(data, headers=headers)

    def _next_link(self, req: _Request, query: dict, index: int) -> str:
        query = {**query, "cursor": base64.urlsafe_b64encode(str(index).encode()).decode()}
        return f'<{self.endpoint}{req.path}?{urlencode(query, doseq=True)}>; rel="next"'

    def _paths_info(self, req: _Request, repo: Repo, commit: Commit) -> _Response:
        form: dict[str, list[str]] = {}
        for key, value in parse_qsl(req.body.decode(), keep_blank_values=True):
            form.setdefault(key.removesuffix("[]"), []).append(value)
        expand = (form.get("expand") or ["false"])[-1].lower() == "true"
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                out.append(self._entry_json(commit.files[path], commit, repo, expand))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(self._dir_json(path, commit))
        return _json(out)

    def _refs(self, repo: Repo) -> _Response:
        def ref(name: str, sha: str, kind: str) -> dict:
            return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": sha}

        return _json(
            {
                "branches": [ref(n, s, "heads") for n, s in repo.branches.items()],
                "converts": [],
                "tags": [ref(n, s, "tags") for n, s in repo.tags_refs.items()],
                "pullRequests": [],
            }
        )

    def _commits(self, req: _Request, repo: Repo, commit: Commit) -> _Response:
        chain = []
        current: Commit | None = commit
        while current is not None:
            chain.append(
                {
                    "id": current.sha,
                    "title": current.message,
                    "message": "",
                    "authors": [{"user": current.author, "avatar": None}],
                    "date": current.date,
                }
            )
            current = repo.commits.get(current.parent) if current.parent else None
        page = req.params().get("p", ["0"])[-1]
        start = int(page) if page.isdigit() else 0
        size = min(self.list_page_size, 50)
        headers = []
        if (start + 1) * size < len(chain):
            headers.append(("Link", f'<{self.endpoint}{req.path}?p={start + 1}>; rel="next"'))
        return _json(chain[start * size : (start + 1) * size], headers=headers)

    def _list_models(self, req: _Request) -> _Response:
        params = req.params()
        one = {k: v[-1] for k, v in params.items()}
        with self._lock:
            repos = list(self.repos.values())
        selected = []
        for repo in repos:
            if repo.private and req.token not in self.tokens:
                continue
            commit = repo.commits[repo.sha]
            tags = repo.all_tags(commit)
            if one.get("search") and one["search"].lower() not in repo.repo_id.lower():
                continue
            if one.get("author") and one["author"].lower() != repo.author.lower():
                continue
            if one.get("pipeline_tag") and one["pipeline_tag"] != repo.pipeline_tag:
                continue
            if "gated" in one and (repo.gated is not False) != (one["gated"].lower() == "true"):
                continue
            if any(f not in tags for f in params.get("filter", [])):
                continue
            selected.append(repo)
        sort = one.get("sort")
        keys = {
            "trendingScore": lambda r: r.trending_score,
            "trending_score": lambda r: r.trending_score,
            "downloads": lambda r: r.downloads,
            "likes": lambda r: r.likes,
            "createdAt": lambda r: r.created_at,
            "lastModified": lambda r: r.last_modified or "",
            "id": lambda r: r.repo_id.lower(),
        }
        if sort in keys:
            selected.sort(key=keys[sort], reverse=one.get("direction", "-1") != "1")
        full = one.get("full", "").lower() == "true"
        expand = params.get("expand")
        items = []
        for repo in selected:
            commit = repo.commits[repo.sha]
            if expand:
                info = repo.info_json(commit, blobs=False)
                items.append({k: v for k, v in info.items() if k in ("_id", "id") or k in expand})
            else:
                items.append(repo.list_json(commit, full=full))
        limit = int(one["limit"]) if one.get("limit", "").isdigit() else None
        page_size = min(self.list_page_size, limit) if limit else self.list_page_size
        start = _decode_cursor(one.get("cursor", ""))
        headers = []
        if start + page_size < len(items):
            query = {k: v for k, v in params.items() if k != "cursor"}
            headers.append(("Link", self._next_link(req, query, start + page_size)))
        return _json(items[start : start + page_size], headers=headers)

    def _download(self, req: _Request, repo_id: str, mode: str, revision: str, path: str) -> _Response:
        repo = self._find_repo(repo_id, req)
        if isinstance(repo, _Response):
            return repo
        if repo.gated and req.token not in self.tokens:
            message = (
                f"Access to model {repo.repo_id} is restricted. You must have access to it and be authenticated to "
                "access it. Please log in."
            )
            return _error(401, message, "GatedRepo")
        commit = repo.resolve(revision)
        if commit is None:
            return _error(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        entry = commit.files.get(path)
        common = [("X-Repo-Commit", commit.sha), ("X-Request-Id", self._request_id())]
        if entry is None:
            return _error(404, "Entry not found", "EntryNotFound", common)
        if entry.lfs and mode == "raw":
            pointer = entry.pointer()
            return _ranged(
                [*common, ("Content-Type", "text/plain; charset=utf-8"), ("ETag", f'"{entry.blob_id()}"')],
                pointer,
                req.range,
            )
        if entry.lfs:
            location = self._cdn_location(repo.repo_id, entry, self.cdn_ttl)
            body = f"Found. Redirecting to {location}".encode()
            headers = [
                *common,
                ("Location", location),
                ("X-Linked-Size", str(entry.size)),
                ("X-Linked-Etag", f'"{entry.sha256()}"'),
                ("ETag", f'W/"{hashlib.sha1(body).hexdigest()[:32]}"'),
                ("Content-Type", "text/plain; charset=utf-8"),
                ("Vary", "Origin, Accept"),
            ]
            return _Response(302, headers, body)
        headers = [
            *common,
            ("Content-Type", _content_type(path)),
            ("ETag", f'"{entry.blob_id()}"'),
            ("Content-Disposition", _disposition(path)),
        ]
        return _ranged(headers, entry.content, req.range)

    def _request_id(self) -> str:
        with self._lock:
            self._request_ids += 1
            return f"Root=1-fakehub-{self._request_ids:08x}"

    # -- CDN
    def _sign(self, path: str, expires: int) -> str:
        return hmac.new(self._secret, f"{path}\0{expires}".encode(), hashlib.sha256).hexdigest()

    def _cdn_location(self, repo_id: str, entry: RepoEntry, ttl: float) -> str:
        sha = entry.sha256()
        with self._lock:
            self._cdn_blobs[sha] = (repo_id, entry)
        repo_hash = hashlib.sha256(repo_id.encode()).hexdigest()
        path = f"/repos/{repo_hash[:2]}/{repo_hash[2:4]}/{repo_hash}/{sha}"
        expires = math.ceil(time.time() + ttl)  # whole seconds, never short of ttl
        query = urlencode(
            {
                "response-content-disposition": _disposition(entry.path),
                "Expires": expires,
                "Signature": self._sign(path, expires),
                "Key-Pair-Id": "KFAKEHUB",
            }
        )
        return f"{self.cdn_endpoint}{path}?{query}"

    def _serve_cdn(self, req: _Request) -> _Response:
        if req.method == "POST":
            return _error(405, "Method not allowed")
        params = {k: v[-1] for k, v in req.params().items()}
        expires, signature = params.get("Expires", ""), params.get("Signature", "")
        if not expires.lstrip("-").isdigit() or not hmac.compare_digest(
            signature, self._sign(req.path, int(expires))
        ):
            return _cdn_denied("AccessDenied", "Access denied")
        if int(expires) < time.time():
            return _cdn_denied("AccessDenied", "Request has expired")
        sha = req.path.rsplit("/", 1)[-1]
        with self._lock:
            found = self._cdn_blobs.get(sha)
        if found is None:
            return _cdn_denied("NoSuchKey", "The specified key does not exist.", 404)
        _, entry = found
        headers = [
            ("Content-Type", "application/octet-stream"),
            ("ETag", f'"{sha}"'),
            ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
            ("Content-Disposition", params.get("response-content-disposition") or _disposition(entry.path)),
            ("Cache-Control", "public, max-age=604800, immutable"),
            ("X-Cache", "Hit from cloudfront"),
        ]
        return _ranged(headers, entry.content, req.range)


def _cdn_denied(code: str, message: str, status: int = 403) -> _Response:
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return _Response(status, [("Content-Type", "application/xml")], body.encode())


def _disposition(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\";"


def _decode_cursor(cursor: str) -> int:
    if not cursor:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(cursor.encode()).decode()))
    except (ValueError, UnicodeDecodeError):
        return 0


def _readme(card_data: dict | None, text: str) -> bytes:
    if not card_data:
        return text.encode()
    import yaml

    return f"---\n{yaml.safe_dump(card_data, sort_keys=False)}---\n\n{text}".encode()


def fake_hub(**kwargs) -> Iterator[FakeHub]:
    """Generator fixture body: ``yield from fake_hub()`` inside a pytest fixture (or wrap with pytest.fixture)."""
    with FakeHub(**kwargs) as hub:
        yield hub


def _bench(size: int = 2 * 10**9) -> None:
    """Stream a ``size``-byte Generated file from the CDN over loopback and compare with a bare TCP stream of the
    same bytes (the reference, measured in the same run). Run: ``python tests/fakehub.py [size]``."""
    import http.client
    import shutil
    import subprocess

    def drain(read_into) -> int:
        buf = memoryview(bytearray(4 << 20))
        total = 0
        while n := read_into(buf):
            total += n
        return total

    content = Generated(size, seed=1)
    with FakeHub() as hub:
        hub.add_repo("bench/stream", {"model.safetensors": content})
        url = urlsplit(hub.cdn_url("bench/stream", "model.safetensors"))
        conn = http.client.HTTPConnection(url.hostname, url.port)
        t = time.perf_counter()
        conn.request("GET", f"{url.path}?{url.query}")
        got = drain(conn.getresponse().readinto)
        fake = got / (time.perf_counter() - t)
        conn.close()
        assert got == size
        curl = None
        if shutil.which("curl"):
            out = subprocess.run(
                ["curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", urlunsplit(url)],
                capture_output=True, text=True, check=True,
            )
            curl = float(out.stdout)

    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            for piece in content.chunks():
                conn.sendall(piece)

    sender = threading.Thread(target=serve)
    sender.start()
    with socket.create_connection(listener.getsockname()) as sock:
        t = time.perf_counter()
        got = drain(sock.recv_into)
        bare = got / (time.perf_counter() - t)
    sender.join()
    listener.close()
    print(f"fakehub CDN -> http.client: {fake / 1e9:.2f} GB/s")
    if curl is not None:
        print(f"fakehub CDN -> curl:        {curl / 1e9:.2f} GB/s")
    print(f"bare TCP reference:         {bare / 1e9:.2f} GB/s")
    print(f"ratio fakehub/reference = {fake / bare:.2f} (target >= 0.5, and > 1.5 GB/s absolute)")


if __name__ == "__main__":
    import sys

    _bench(int(sys.argv[1]) if len(sys.argv) > 1 else 2 * 10**9)
