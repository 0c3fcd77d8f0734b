"""The gateway's HTTP client for Hugging Face: file listings, LFS redirects, byte ranges, retries.

Every upstream call retries per :mod:`modelreg.hf.retry` (the policy the commands use) on 429 and passing
5xx answers (honouring ``Retry-After``), dropped connections and timeouts, then gives up with an
:class:`~modelreg.errors.UpstreamError` (502, or 504 after timeouts) that the client sees as a clear error. Redirects are followed by hand and only to hosts
the :class:`~modelreg.webseed.hosts.RedirectPolicy` allows. Concurrent look-ups of the same listing or
the same CDN URL share one request.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import aiohttp

from modelreg import __version__
from modelreg.errors import UpstreamError, WebseedError
from modelreg.hf.retry import RetryPolicy, retry_after, retryable_status
from modelreg.webseed.hosts import RedirectPolicy
from modelreg.webseed.metrics import Metrics
from modelreg.webseed.routes import Served

_REDIRECTS = (301, 302, 303, 307, 308)
#: How long a signed CDN URL is reused when it carries no expiry we can read.
DEFAULT_CDN_TTL = 300.0
_MAX_HOPS = 4
_CACHE_ENTRIES = 4096
_PROGRESS_RESETS_RETRIES = 1 << 20
#: Bytes per socket read of a file's body (asyncio reads 256 KiB; larger reads cut the per-chunk work of
#: the loop, aiohttp's parser and the fill by 4 for a fast upstream: measured in BENCHMARKS.md).
_RECV_BYTES = 1 << 20
#: aiohttp's read buffer per response (it stops reading the socket at twice this much unconsumed).
_READ_BUFFER = 2 << 20


#: The gateway's default: quicker than a command's, since a BitTorrent client is waiting on the answer.
GATEWAY_RETRY = RetryPolicy(retries=4, base_delay=0.2, max_delay=5.0, max_retry_after=30.0)


class _Retryable(Exception):
    def __init__(self, message: str, kind: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


@dataclass
class _CdnUrl:
    url: str
    reuse_until: float


class Upstream:
    """One aiohttp session to the hub endpoint and the CDN hosts it redirects to."""

    def __init__(
        self,
        endpoint: str,
        policy: RedirectPolicy,
        metrics: Metrics,
        retry: RetryPolicy = GATEWAY_RETRY,
        timeout: float = 30.0,
        token: str | None = None,
        max_connections: int = 64,
    ):
        self.endpoint = endpoint.rstrip("/")
        self._hub_netloc = urlsplit(self.endpoint).netloc
        self.policy = policy
        self.metrics = metrics
        self.retry = retry
        self.timeout = timeout
        self.max_connections = max_connections
        self._auth = {"Authorization": f"Bearer {token}"} if token else {}
        self._session: aiohttp.ClientSession | None = None
        self._index: OrderedDict[tuple[str, str], dict[str, bool]] = OrderedDict()
        self._cdn: OrderedDict[tuple[str, str, str], _CdnUrl] = OrderedDict()
        self._pending: dict[Any, asyncio.Future] = {}

    async def start(self) -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=self.timeout)
        self._session = aiohttp.ClientSession(
            timeout=timeout,
            connector=aiohttp.TCPConnector(limit=self.max_connections),
            headers={"User-Agent": f"modelreg-webseed/{__version__}"},
            auto_decompress=False,
            read_bufsize=_READ_BUFFER,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("Upstream.start() was not awaited")
        return self._session

    # -- listings and locations --------------------------------------------------------------------

    async def lfs_index(self, served: Served) -> dict[str, bool]:
        """``{path: is_lfs}`` from HF's listing of the revision (cached: a commit never changes)."""
        found = self._index.get(served.key)
        if found is not None:
            self._index.move_to_end(served.key)
            return found

        async def fetch() -> dict[str, bool]:
            url = f"{self.endpoint}/api/models/{served.repo_id}/revision/{served.revision}?blobs=true"
            data = await self._retrying(f"listing of {served.repo_id}@{served.revision}", lambda: self._json(url))
            siblings = data.get("siblings") if isinstance(data, dict) else None
            if not isinstance(siblings, list):
                raise UpstreamError(502, f"{url}: the answer has no 'siblings' file list")
            index = {s["rfilename"]: bool(s.get("lfs")) for s in siblings if isinstance(s, dict) and "rfilename" in s}
            _remember(self._index, served.key, index)
            return index

        return await self._once(("index", served.key), fetch)

    async def locate(self, served: Served, path: str) -> tuple[str, str]:
        """``(url, kind)``: the signed CDN URL of an LFS file (kind "cdn"), else its resolve URL.

        Raises:
            UpstreamError: HF's listing lacks a file the torrent has (502), or HF keeps failing.
            WebseedError: 404 for a path that is not a file of the served revision.
        """
        index = await self.lfs_index(served)
        if path not in index:
            if served.torrent is None:
                raise WebseedError(404, f"{path!r} is not a file of {served.repo_id}@{served.revision}")
            raise UpstreamError(502, f"HF lists no {path!r} in {served.repo_id}@{served.revision}")
        resolve = served.resolve_url(self.endpoint, path)
        if not index[path]:
            return resolve, "resolve"
        key = (*served.key, path)
        cached = self._cdn.get(key)
        if cached is not None and cached.reuse_until > time.time():
            return cached.url, "cdn"

        async def fetch() -> tuple[str, str]:
            url = await self._retrying(f"redirect of {path}", lambda: self._follow_head(resolve))
            if urlsplit(url).netloc == self._hub_netloc:
                return url, "resolve"
            reuse = _reuse_until(url, time.time())
            if reuse > time.time():
                _remember(self._cdn, key, _CdnUrl(url, reuse))
            return url, "cdn"

        return await self._once(("cdn", key), fetch)

    def forget_cdn(self, served: Served, path: str) -> None:
        self._cdn.pop((*served.key, path), None)

    # -- bytes -------------------------------------------------------------------------------------

    async def iter_range(self, served: Served, path: str, start: int, end: int) -> AsyncIterator[bytes]:
        """The bytes ``[start, end)`` of a file, resuming where a dropped or failed response stopped.

        Raises:
            UpstreamError: HF answers an error, a wrong range or no range (502), or keeps failing after the retries (502/504).
        """
        pos, failures, progress = start, 0, 0
        while pos < end:
            url, kind = await self.locate(served, path)
            try:
                resp = await self._get(url, {"Range": f"bytes={pos}-{end - 1}"})
                try:
                    _check_status(resp, url)
                    if kind == "cdn" and resp.status in (403, 404, 410):
                        self.forget_cdn(served, path)
                        raise _Retryable(f"{_host(url)} refused the signed URL (expired?)", "cdn_refused")
                    if resp.status not in (200, 206):
                        raise UpstreamError(502, f"{_host(url)} answered HTTP {resp.status} for {path}")
                    if resp.status == 206 and not resp.headers.get("Content-Range", "").startswith(f"bytes {pos}-"):
                        raise UpstreamError(502, f"{_host(url)} sent the wrong range for {path}")
                    if resp.status == 200 and pos != 0:
                        raise UpstreamError(502, f"{_host(url)} ignored the Range header for {path}")
                    _widen_reads(resp)
                    # The body as it arrived (no re-chunking, which would join and copy the bytes again).
                    async for data, _ in resp.content.iter_chunks():
                        if not data:
                            continue
                        data = data[: end - pos]
                        pos += len(data)
                        progress += len(data)
                        if progress >= _PROGRESS_RESETS_RETRIES:
                            failures, progress = 0, 0
                        yield data
                        if pos >= end:
                            break
                    if pos < end:
                        raise _Retryable(f"{_host(url)} closed the connection early", "short_body")
                finally:
                    resp.release()
            except (TimeoutError, _Retryable, aiohttp.ClientError) as exc:
                failures += 1
                await self._after_failure(f"bytes of {path}", exc, failures)

    # -- plumbing ----------------------------------------------------------------------------------

    async def _once(self, key: Any, fetch: Callable[[], Awaitable[Any]]) -> Any:
        """Run ``fetch`` once for every caller that asks for ``key`` while it runs."""
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        task = asyncio.ensure_future(fetch())
        self._pending[key] = task
        task.add_done_callback(lambda _: self._pending.pop(key, None))
        return await asyncio.shield(task)

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        failures = 0
        while True:
            try:
                return await attempt()
            except (TimeoutError, _Retryable, aiohttp.ClientError) as exc:
                failures += 1
                await self._after_failure(what, exc, failures)

    async def _after_failure(self, what: str, exc: BaseException, failures: int) -> None:
        kind = exc.kind if isinstance(exc, _Retryable) else "timeout" if isinstance(exc, asyncio.TimeoutError) else "connection"
        self.metrics.upstream_errors[kind] += 1
        after = exc.retry_after if isinstance(exc, _Retryable) else None
        wait = self.retry.wait(failures - 1, after)
        if wait is None:
            status = 504 if kind == "timeout" else 502
            why = self.retry.why_not(failures - 1, after)
            raise UpstreamError(status, f"Hugging Face kept failing for {what} ({why}): {exc or kind}")
        self.metrics.upstream_retries += 1
        await asyncio.sleep(wait)

    async def _get(self, url: str, headers: dict[str, str], method: str = "GET") -> aiohttp.ClientResponse:
        """A response after following allowed redirects by hand (the caller releases it)."""
        for _ in range(_MAX_HOPS):
            self.metrics.upstream_requests += 1
            extra = self._auth if urlsplit(url).netloc == self._hub_netloc else {}
            resp = await self.session.request(method, url, headers={**headers, **extra}, allow_redirects=False)
            if resp.status not in _REDIRECTS:
                return resp
            resp.release()
            url = self._checked_location(url, resp)
        raise UpstreamError(502, f"too many redirects from {url}")

    async def _follow_head(self, url: str) -> str:
        """Where ``url`` finally points: HEAD without following, then each allowed ``Location``."""
        for _ in range(_MAX_HOPS):
            self.metrics.upstream_requests += 1
            extra = self._auth if urlsplit(url).netloc == self._hub_netloc else {}
            async with self.session.head(url, headers=extra, allow_redirects=False) as resp:
                _check_status(resp, url)
                if resp.status not in _REDIRECTS:
                    if resp.status >= 400:
                        raise UpstreamError(502, f"{_host(url)} answered HTTP {resp.status} for {url}")
                    return url
                nxt = self._checked_location(url, resp)
            if urlsplit(nxt).netloc != self._hub_netloc:
                return nxt
            url = nxt
        raise UpstreamError(502, f"too many redirects from {url}")

    def _checked_location(self, url: str, resp: aiohttp.ClientResponse) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise UpstreamError(502, f"{_host(url)} sent a redirect without a Location")
        target = urljoin(url, location)
        if not self.policy.allows(target):
            raise UpstreamError(
                502,
                f"Hugging Face redirected to {_host(target)!r}, which is not an allowed redirect host "
                "(add it with --redirect-host if you trust it)",
            )
        return target

    async def _json(self, url: str) -> Any:
        resp = await self._get(url, {"Accept": "application/json"})
        try:
            _check_status(resp, url)
            if resp.status != 200:
                raise UpstreamError(502, f"{url}: Hugging Face answered HTTP {resp.status}")
            try:
                return await resp.json(content_type=None)
            except ValueError as exc:
                raise UpstreamError(502, f"{url}: the answer is not JSON ({exc})") from exc
        finally:
            resp.release()


def _check_status(resp: aiohttp.ClientResponse, url: str) -> None:
    """Raise a retryable error for the statuses the retry policy asks again (429, 5xx...)."""
    if retryable_status(resp.status):
        raise _Retryable(f"{_host(url)} answered HTTP {resp.status}", f"http_{resp.status}",
                         retry_after(resp.headers))


def _widen_reads(resp: aiohttp.ClientResponse) -> None:
    """Read a body in socket reads of up to :data:`_RECV_BYTES` (plain asyncio socket transports only)."""
    transport = resp.connection.transport if resp.connection is not None else None
    if transport is not None and getattr(transport, "max_size", _RECV_BYTES) < _RECV_BYTES:
        transport.max_size = _RECV_BYTES


def _host(url: str) -> str:
    return urlsplit(url).netloc


def _reuse_until(url: str, now: float) -> float:
    """When to stop reusing a signed URL: a margin before its ``Expires`` / ``X-Amz-*`` expiry."""
    query = parse_qs(urlsplit(url).query)
    expires: float | None = None
    try:
        if "Expires" in query:
            expires = float(query["Expires"][0])
        elif "X-Amz-Date" in query and "X-Amz-Expires" in query:
            signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            expires = signed.timestamp() + float(query["X-Amz-Expires"][0])
    except ValueError:
        expires = None
    if expires is None:
        return now + DEFAULT_CDN_TTL
    margin = max(5.0, min(60.0, (expires - now) / 10))
    return expires - margin


def _remember(cache: OrderedDict, key: Any, value: Any) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > _CACHE_ENTRIES:
        cache.popitem(last=False)
