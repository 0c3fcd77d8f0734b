"""A :class:`~modelreg.torrent.source.Source` that streams a Hugging Face repository's files over HTTP.

Nothing is written to disk: each file is fetched from ``<endpoint>/<org>/<name>/resolve/<commit>/<path>``
in ranges of :data:`CHUNK_SIZE` bytes by a few threads that download ahead of the hashing engine, into a
bounded window of large buffers that the engine consumes in order (each reused once the engine is done
with it). LFS files redirect to a CDN with a
signed URL; it is kept for the next ranges of the same file and asked for again when it expires (403).
The token goes to the hub only, never to the CDN.

Every answer is checked against the listing made at the start
(:func:`~modelreg.hf.snapshot.fetch_snapshot`): the commit (``X-Repo-Commit``), the file's identity
(``ETag`` or ``X-Linked-Etag``) and its size. A difference means the repository changed under the run
and raises :class:`~modelreg.errors.RepoChangedError`. The engine checks each LFS file's SHA-256 as it
streams (:attr:`SourceFile.sha256 <modelreg.torrent.source.SourceFile>`).
Lost connections resume with a ``Range`` request; 429 and 5xx answers are retried per
:class:`modelreg.hf.retry.RetryPolicy`, honouring ``Retry-After``.

The module is a little over 400 lines on purpose: it is one class whose download protocol (redirects,
CDN link renewal, resumption, the checks above and the retries) reads best in one place.
"""

from __future__ import annotations

import collections
import http.client
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from urllib.parse import urljoin, urlsplit

from modelreg import __version__
from modelreg.errors import DownloadError, RepoChangedError
from modelreg.hf.buffers import BufferPool
from modelreg.hf.retry import Pause, RetryPolicy, retry_after, retryable_status
from modelreg.hf.snapshot import ListedFile, Snapshot, resolve_url
from modelreg.torrent.source import SourceFile

#: Bytes per range request and per buffer handed to the engine.
CHUNK_SIZE = 16 * 1024 * 1024
#: Parallel downloads; with CHUNK_SIZE this bounds the source's buffers to about
#: (jobs + AHEAD) * CHUNK_SIZE.
DEFAULT_JOBS = 4
AHEAD = 2

MAX_REDIRECTS = 5
USER_AGENT = f"modelreg/{__version__}"


def _strip_etag(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip().removeprefix("W/").strip('"')


class _Connections(threading.local):
    """Keep-alive connections of one thread, one per host."""

    def __init__(self) -> None:
        self.by_host: dict[tuple[str, str], http.client.HTTPConnection] = {}


class HfSource:
    """The files of a :class:`Snapshot` (all, or the ``paths`` given), streamed from the hub.

    With ``single_file`` the source has exactly one file and the torrent is named after it. Files are
    listed sorted by path, the order hybrid and v2 torrents use, so the engine asks for them in the
    order they are downloaded. With ``check_lfs`` the engine checks each LFS file against its listed
    SHA-256 (one more hash pass over those bytes). ``jobs`` ranges download at once; call :meth:`close`
    (or use ``with``) to stop the download threads early.
    """

    def __init__(
        self,
        snapshot: Snapshot,
        *,
        endpoint: str,
        token: str | None = None,
        paths: Sequence[str] | None = None,
        single_file: bool = False,
        check_lfs: bool = True,
        jobs: int = DEFAULT_JOBS,
        chunk_size: int = CHUNK_SIZE,
        retry: RetryPolicy = RetryPolicy(),
        timeout: float = 60.0,
    ) -> None:
        """Stream ``files`` (paths of ``snapshot``; all of them when None) from ``endpoint`` at the snapshot's commit.

        Raises:
            DownloadError: nothing to stream, a file not in the snapshot, a single-file source of several files, or ``jobs`` below 1.
        """
        listed = {f.path: f for f in snapshot.files}
        if paths is not None:
            missing = [p for p in paths if p not in listed]
            if missing:
                raise DownloadError(
                    f"{snapshot.repo_id}: not in the repository at {snapshot.commit}: {', '.join(missing)}"
                )
            chosen = sorted((listed[p] for p in dict.fromkeys(paths)), key=lambda f: f.path.encode())
        else:
            chosen = list(snapshot.files)
        if not chosen:
            raise DownloadError(f"{snapshot.repo_id}: the repository has no files at {snapshot.commit}")
        if single_file and len(chosen) != 1:
            raise DownloadError(f"{snapshot.repo_id}: a single-file torrent needs exactly one file")
        if jobs < 1:
            raise DownloadError(f"--jobs must be at least 1, not {jobs}")
        self.snapshot = snapshot
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.single_file = single_file
        self.name = chosen[0].path.rsplit("/", 1)[-1] if single_file else snapshot.name
        self.repo_files = tuple(chosen)
        self.files = tuple(
            SourceFile((self.name,) if single_file else tuple(f.path.split("/")), f.size, False,
                       f.sha256 if check_lfs else None)
            for f in chosen
        )
        self.jobs = jobs
        self.chunk_size = chunk_size
        self.retry = retry
        self.timeout = timeout
        self._hub_netloc = urlsplit(self.endpoint).netloc
        self._index = {f: i for i, f in enumerate(self.files)}
        self._locations: dict[str, str] = {}  # path -> signed CDN URL
        self._lock = threading.Lock()
        self._local = _Connections()
        self._buffers = BufferPool(chunk_size, jobs + AHEAD + 8)
        self._all_connections: list[http.client.HTTPConnection] = []
        self._pool: ThreadPoolExecutor | None = None
        self._pending: collections.deque[tuple[int, Future]] = collections.deque()
        self._ranges: Iterator[tuple[int, int, int]] | None = None
        self._next_file = 0
        self._stopping = threading.Event()
        self._gate = Pause()  # after a Retry-After, no download asks again before it has passed

    @property
    def _resume_at(self) -> float:
        """``time.monotonic()`` before which no download asks again (after a ``Retry-After``)."""
        return self._gate.until

    def _pause(self, seconds: float) -> None:
        """Hold back every download's next request for ``seconds`` (a ``Retry-After``)."""
        self._gate.extend(seconds)

    # -- the Source protocol

    def chunks(self, file: SourceFile) -> Iterator[memoryview]:
        """The bytes of ``file`` in buffers of up to ``chunk_size`` bytes, downloaded ahead in parallel."""
        index = self._index[file]
        if self._pool is None or index != self._next_file:
            self._restart(index)
        self._next_file = index + 1
        pending = self._pending
        while pending and pending[0][0] == index:
            chunk = pending.popleft()[1].result()
            self._fill()
            yield chunk
            del chunk  # back to the pool once the engine is done with it

    def close(self) -> None:
        """Stop downloading: drop queued ranges, wait for running ones, close the connections."""
        self._stopping.set()  # wakes downloads waiting to retry
        self._stop_pool()
        with self._lock:
            conns, self._all_connections = self._all_connections, []
        for conn in conns:
            conn.close()

    def __enter__(self) -> HfSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- download ahead

    def _restart(self, index: int) -> None:
        self._stop_pool()
        self._stopping.clear()
        self._pool = ThreadPoolExecutor(self.jobs, thread_name_prefix="modelreg-download")
        self._ranges = self._plan(index)
        self._fill()

    def _stop_pool(self) -> None:
        pool, self._pool = self._pool, None
        pending, self._pending = self._pending, collections.deque()
        for _, future in pending:
            future.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _plan(self, first: int) -> Iterator[tuple[int, int, int]]:
        for index in range(first, len(self.files)):
            size = self.files[index].size
            for start in range(0, size, self.chunk_size):
                yield index, start, min(self.chunk_size, size - start)

    def _fill(self) -> None:
        assert self._pool is not None and self._ranges is not None
        while len(self._pending) < self.jobs + AHEAD:
            job = next(self._ranges, None)
            if job is None:
                return
            index, start, length = job
            self._pending.append((index, self._pool.submit(self._fetch, self.repo_files[index], start, length)))

    # -- one range

    def _fetch(self, file: ListedFile, start: int, length: int) -> memoryview:
        """``length`` bytes of ``file`` from ``start``: resumes, redirects, re-resolves and retries as needed."""
        try:
            return self._fetch_range(file, start, length)
        except BaseException:
            for conn in self._local.by_host.values():  # an answer may be half read: start afresh
                conn.close()
            self._local.by_host.clear()
            raise

    def _fetch_range(self, file: ListedFile, start: int, length: int) -> memoryview:
        _, view = self._buffers.take(length)
        got = 0
        attempt = 0
        redirects = 0
        hub_url = resolve_url(self.endpoint, self.snapshot.repo_id, self.snapshot.commit, file.path)
        url = self._locations.get(file.path, hub_url)
        while got < length:
            if self._stopping.is_set():
                raise DownloadError(f"{self._where(file)}: download stopped")
            problem: str
            after: float | None = None  # the server's Retry-After
            refreshed = False  # a new CDN link is asked for at once
            if not self._gate.wait(self._stopping):
                raise DownloadError(f"{self._where(file)}: download stopped")
            try:
                response = self._request(url, start + got, start + length - 1)
            except (OSError, http.client.HTTPException) as exc:
                self._drop_connection(url)
                problem = f"cannot reach {urlsplit(url).netloc}: {exc}"
            else:
                status = response.status
                on_hub = urlsplit(url).netloc == self._hub_netloc
                if on_hub:
                    self._check_hub_answer(file, response)
                if status in (301, 302, 303, 307, 308):
                    location = response.getheader("Location")
                    self._finish(response, url)
                    if not location or redirects >= MAX_REDIRECTS:
                        raise DownloadError(f"{self._where(file)}: too many or empty redirects from {url}")
                    redirects += 1
                    url = urljoin(url, location)
                    if urlsplit(url).netloc != self._hub_netloc:
                        with self._lock:
                            self._locations[file.path] = url
                    continue
                if status in (200, 206):
                    try:
                        got += self._read_body(file, response, view, got, start)
                    except (OSError, http.client.HTTPException) as exc:
                        self._drop_connection(url)
                        problem = f"lost the connection to {urlsplit(url).netloc}: {exc}"
                    else:
                        if got >= length:
                            if not response.isclosed():  # a 200 with more of the file than asked for
                                self._drop_connection(url)
                            break
                        self._drop_connection(url)
                        problem = f"the connection to {urlsplit(url).netloc} closed mid-file"
                elif status == 403 and not on_hub:
                    # The signed CDN URL expired (or was refused): ask the hub for a new one.
                    self._finish(response, url)
                    with self._lock:
                        if self._locations.get(file.path) == url:
                            del self._locations[file.path]
                    problem = "the CDN refused the download link (HTTP 403)"
                    url, redirects, refreshed = hub_url, 0, True
                elif status in (401, 403) and on_hub:
                    self._finish(response, url)
                    hint = ("the token in HF_TOKEN has no access to it" if self.token
                            else "set HF_TOKEN to a token with access")
                    raise DownloadError(f"{self._where(file)}: the hub refused access (HTTP {status}): {hint}")
                elif status == 404 and on_hub:
                    self._finish(response, url)
                    raise RepoChangedError(
                        f"{self._where(file)}: the hub no longer has this file at {self.snapshot.commit}; "
                        "the repository changed under the run"
                    )
                elif status == 416:
                    self._finish(response, url)
                    raise RepoChangedError(
                        f"{self._where(file)}: the server has fewer than the listed {file.size} bytes; "
                        "the repository changed under the run"
                    )
                elif retryable_status(status):
                    after = retry_after(response.headers)
                    self._finish(response, url)
                    problem = f"{urlsplit(url).netloc} answered HTTP {status}"
                else:
                    self._finish(response, url)
                    raise DownloadError(f"{self._where(file)}: {urlsplit(url).netloc} answered HTTP {status}")
            delay = self.retry.wait(attempt, after)
            if delay is None:
                raise DownloadError(f"{self._where(file)}: {problem} ({self.retry.why_not(attempt, after)})")
            if refreshed:
                delay = 0.0
            if after:
                self._pause(after)
            attempt += 1
            if delay and self._stopping.wait(delay):
                raise DownloadError(f"{self._where(file)}: download stopped")
        return view

    def _where(self, file: ListedFile) -> str:
        return f"{self.snapshot.repo_id}/{file.path}"

    def _request(self, url: str, first: int, last: int) -> http.client.HTTPResponse:
        parts = urlsplit(url)
        conn = self._connection(parts.scheme, parts.netloc)
        headers = {"Range": f"bytes={first}-{last}", "User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
        if self.token and parts.netloc == self._hub_netloc:
            headers["Authorization"] = f"Bearer {self.token}"
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            conn.request("GET", target, headers=headers)
            return conn.getresponse()
        except (OSError, http.client.HTTPException):
            # A kept-alive connection the server closed meanwhile: try once on a fresh one.
            conn.close()
            conn.request("GET", target, headers=headers)
            return conn.getresponse()

    def _connection(self, scheme: str, netloc: str) -> http.client.HTTPConnection:
        key = (scheme, netloc)
        conn = self._local.by_host.get(key)
        if conn is None:
            cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            conn = cls(netloc, timeout=self.timeout)
            self._local.by_host[key] = conn
            with self._lock:
                self._all_connections.append(conn)
        return conn

    def _drop_connection(self, url: str) -> None:
        parts = urlsplit(url)
        conn = self._local.by_host.pop((parts.scheme, parts.netloc), None)
        if conn is not None:
            conn.close()

    def _finish(self, response: http.client.HTTPResponse, url: str) -> None:
        """Read a short answer to its end so the connection can be kept; drop it if the answer is long."""
        length = response.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) <= 1 << 20:
            try:
                response.read()
                return
            except (OSError, http.client.HTTPException):
                pass
        self._drop_connection(url)

    def _check_hub_answer(self, file: ListedFile, response: http.client.HTTPResponse) -> None:
        """Raise :class:`RepoChangedError` when the hub describes another commit or another file."""
        commit = response.getheader("X-Repo-Commit")
        changed = None
        if commit and commit != self.snapshot.commit:
            changed = f"the hub serves commit {commit}, not {self.snapshot.commit}"
        elif file.sha256 is not None:
            linked = _strip_etag(response.getheader("X-Linked-Etag"))
            size = response.getheader("X-Linked-Size")
            if linked and linked != file.sha256:
                changed = f"its LFS SHA-256 is now {linked}, not the listed {file.sha256}"
            elif size and size.isdigit() and int(size) != file.size:
                changed = f"its size is now {size} bytes, not the listed {file.size}"
        elif response.status in (200, 206) and file.blob_id:
            etag = _strip_etag(response.getheader("ETag"))
            if etag and etag != file.blob_id:
                changed = f"its git blob is now {etag}, not the listed {file.blob_id}"
        if changed:
            response.close()
            raise RepoChangedError(f"{self._where(file)}: {changed}; the repository changed under the run")

    def _read_body(self, file: ListedFile, response: http.client.HTTPResponse, view: memoryview, got: int,
                   start: int) -> int:
        """Read the answer into ``view[got:]``; return the number of bytes read (short if the connection drops)."""
        want = len(view) - got
        if response.status == 206:
            first, total = _content_range(response.getheader("Content-Range"))
            if total is not None and total != file.size:
                response.close()
                raise RepoChangedError(
                    f"{self._where(file)}: the server has {total} bytes, not the listed {file.size}; "
                    "the repository changed under the run"
                )
            if first != start + got:
                response.close()
                raise DownloadError(f"{self._where(file)}: the server sent bytes from {first}, "
                                    f"not from {start + got} as asked")
        else:  # 200: the whole file, Range ignored
            length = response.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) != file.size:
                response.close()
                raise RepoChangedError(
                    f"{self._where(file)}: the server has {length} bytes, not the listed {file.size}; "
                    "the repository changed under the run"
                )
            _skip(response, start + got)
        target = view[got:]
        read = 0
        while read < want:
            n = response.readinto(target[read:])
            if not n:
                break
            read += n
        return read


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a ``Content-Range: bytes a-b/total`` header."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[6:].partition("/")
    first = span.split("-", 1)[0]
    return (int(first) if first.isdigit() else None), (int(total) if total.isdigit() else None)


def _skip(response: http.client.HTTPResponse, count: int) -> None:
    scratch = bytearray(min(count, 1 << 20))
    view = memoryview(scratch)
    while count > 0:
        n = response.readinto(view[: min(count, len(scratch))])
        if not n:
            raise http.client.IncompleteRead(b"")
        count -= n
