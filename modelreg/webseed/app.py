"""The web-seed gateway as an aiohttp application: routing, the two modes, limits, health and metrics.

``redirect`` mode answers each file request with a redirect: LFS files straight to their signed CDN
URL (resolved and cached by the gateway), other files to HF's ``resolve`` URL. ``mirror`` mode answers
with bytes from the verified piece cache, window by window: each window's pieces are made present and
checked (fetched from HF, or hashed again when read from disk for the first time since the file last
changed) while the previous window goes out with sendfile. Pad files are answered with zeros in both
modes. Every send has a send timeout (:mod:`.sending`); ``/healthz`` and ``/metrics`` are outside the
request slots, and connections stay within the open-file budget (:mod:`.connections`).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

from aiohttp import web

from modelreg.errors import UpstreamError, WebseedError
from modelreg.webseed.accesslog import GATEWAY, JsonAccessLogger, access_logger, note, server_logger
from modelreg.webseed.cache import PieceCache
from modelreg.webseed.connections import BudgetedRunner, fd_budget
from modelreg.webseed.fetcher import Fetcher
from modelreg.webseed.hosts import RedirectPolicy
from modelreg.webseed.metrics import Metrics
from modelreg.webseed.ranges import RangeNotSatisfiable, parse_range
from modelreg.webseed.routes import ServeSet, Target
from modelreg.webseed.sending import ClientStalled, send_file, write_zeros
from modelreg.webseed.settings import GatewaySettings
from modelreg.webseed.upstream import Upstream

#: Bytes made ready (fetched or checked) ahead per step when a mirror request streams a file.
WINDOW_BYTES = 8 << 20
#: Paths answered outside the request slots: a monitor must see a busy gateway, not a 503.
UNLIMITED_PATHS = frozenset({"/healthz", "/metrics"})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Gateway:
    """Everything a running gateway holds: what it serves, its upstream client, cache and counters."""

    def __init__(self, settings: GatewaySettings, serve: ServeSet, metrics: Metrics | None = None):
        self.settings = settings
        self.serve = serve
        self.metrics = metrics or Metrics()
        self.policy = RedirectPolicy.for_endpoint(settings.hf_endpoint, settings.redirect_hosts)
        self.upstream = Upstream(
            settings.hf_endpoint,
            self.policy,
            self.metrics,
            retry=settings.retry,
            timeout=settings.upstream_timeout,
            token=settings.token,
        )
        self.cache = (
            PieceCache(settings.cache_dir, self.metrics, settings.max_cache_size)
            if settings.cache_dir and self.mirror
            else None
        )
        self.fetcher = Fetcher(self.cache, self.upstream, self.metrics) if self.cache else None
        self._active = 0
        self._per_client: Counter[str] = Counter()
        #: Called with the application once built, to add more routes (the HF API of :mod:`.hfapi`).
        self.extensions: list[Callable[[web.Application], None]] = []

    @property
    def mirror(self) -> bool:
        return self.settings.mode == "mirror"

    async def start(self) -> None:
        await self.upstream.start()
        if self.cache:
            for served in self.serve:
                if served.torrent is not None:
                    self.cache.store(served)

    async def close(self) -> None:
        if self.fetcher:
            await self.fetcher.close()
        if self.cache:
            await self.cache.close()
        await self.upstream.close()

    # -- application ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._limits], client_max_size=1024)
        app[GATEWAY] = self
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/metrics", self.metrics_page)
        app.router.add_route("GET", "/v1/{tail:.*}", self.file)
        app.router.add_route("HEAD", "/v1/{tail:.*}", self.file)
        for extend in self.extensions:
            extend(app)

        async def on_startup(_: web.Application) -> None:
            await self.start()

        async def on_cleanup(_: web.Application) -> None:
            await self.close()

        app.on_startup.append(on_startup)
        app.on_cleanup.append(on_cleanup)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        note(request)  # the access log tells the requests the application saw from those aiohttp refused
        try:
            return await handler(request)
        except WebseedError as exc:
            note(request)["error"] = str(exc)
            started = note(request).get("response")
            if started is not None:  # headers are out: cut the body short rather than send a wrong byte
                if request.transport is not None:
                    request.transport.close()
                return started
            headers = {"Content-Range": f"bytes */{exc.size}"} if isinstance(exc, RangeNotSatisfiable) else {}
            if isinstance(exc, UpstreamError):
                headers["Retry-After"] = "10"
            return web.Response(status=exc.status, text=f"{exc}\n", headers=headers)
        except ClientStalled as exc:
            self.metrics.send_timeouts += 1
            note(request)["error"] = f"send timeout: {exc}"
            if request.transport is not None:
                request.transport.abort()
            return note(request).get("response") or web.Response(status=408)
        except ConnectionError:
            started = note(request).get("response")
            if started is None:
                raise
            # The client left mid-answer: what aiohttp does quietly for an answer it sends itself.
            note(request)["error"] = "the client disconnected"
            return started

    @web.middleware
    async def _limits(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in UNLIMITED_PATHS:
            return await handler(request)
        client = request.remote or "?"
        if self._active >= self.settings.max_connections:
            return _refuse(request, 503, "the gateway is at its connection limit; retry shortly")
        if self._per_client[client] >= self.settings.max_per_client:
            return _refuse(request, 429, "too many concurrent requests from your address; retry shortly")
        self._active += 1
        self._per_client[client] += 1
        self.metrics.in_flight = self._active
        try:
            return await handler(request)
        finally:
            self._active -= 1
            self._per_client[client] -= 1
            if not self._per_client[client]:
                del self._per_client[client]
            self.metrics.in_flight = self._active

    # -- endpoints -----------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        body = {"status": "ok", "mode": self.settings.mode, "served": len(self.serve)}
        if self.cache:
            body["cache_bytes"] = self.cache.used
        return web.json_response(body)

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(text=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def file(self, request: web.Request) -> web.StreamResponse:
        return await self.serve_target(request, self.serve.route(_origin_form(request.raw_path)))

    async def serve_target(self, request: web.Request, target: Target) -> web.StreamResponse:
        """Answer a GET or HEAD for one file of a served torrent (``Range`` honoured)."""
        entry = target.entry
        if entry is None:
            return await self._redirect(request, target)
        # Repeated Range fields mean their comma-joined list (RFC 9110 §5.3): several ranges, refused.
        fields = request.headers.getall("Range", None)
        rng = parse_range(",".join(fields) if fields else None, entry.size) if entry.size else None
        if target.is_pad or entry.size == 0:
            note(request)["cache"] = "pad" if target.is_pad else "empty"
            return await _zeros(request, entry.size, rng, self.settings.send_timeout)
        if not self.mirror:
            return await self._redirect(request, target)
        return await self._from_cache(request, target, rng)

    def _ready(self, store, pieces: range) -> asyncio.Future:
        """A future for ``pieces`` being present and checked (already done for a checked cache hit)."""
        assert self.fetcher is not None
        if not store.missing(pieces) and not store.unchecked(pieces):
            return _done()
        return asyncio.ensure_future(self.fetcher.ensure(store, pieces))

    async def _redirect(self, request: web.Request, target: Target) -> web.Response:
        url, kind = await self.upstream.locate(target.served, target.path)
        self.metrics.redirects[kind] += 1
        note(request)["cache"] = f"redirect-{kind}"
        return web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})

    async def _from_cache(
        self, request: web.Request, target: Target, rng: tuple[int, int] | None
    ) -> web.StreamResponse:
        assert self.cache is not None and self.fetcher is not None and target.entry is not None
        entry = target.entry
        store = self.cache.store(target.served)
        start, end = rng or (0, entry.size)
        with self.cache.pinned(store, entry):
            if store.drop_if_damaged(entry):
                await store.flush()
            hit = store.complete(entry, start, end)
            if hit:
                self.metrics.cache_hits += 1
            else:
                self.metrics.cache_misses += 1
            note(request)["cache"] = "hit" if hit else "miss"
            response = _ranged_response(entry.size, rng)
            if request.method == "HEAD":
                return response
            pieces = store.map.pieces_of(entry, start, end)
            step = max(1, WINDOW_BYTES // store.map.piece_length)
            windows = [pieces[i : i + step] for i in range(0, len(pieces), step)]
            ready = self._ready(store, windows[0])
            try:
                await ready
                fobj = _open_cached(store.path_of(entry))
                with fobj:
                    note(request)["response"] = response  # from here on, a failure cuts the answer short
                    await response.prepare(request)
                    pos = start
                    for k, window in enumerate(windows):
                        if k:
                            await ready
                        if k + 1 < len(windows):
                            ready = self._ready(store, windows[k + 1])
                        stop = min(end, (window[-1] + 1) * store.map.piece_length - entry.offset)
                        sent = await send_file(request, fobj, pos, stop - pos, self.settings.send_timeout)
                        note(request)["sent"] = note(request).get("sent", 0) + sent
                        if sent < stop - pos:  # the file shrank behind the cache: cut short, never hang
                            raise WebseedError(503, f"{entry.path_str}: cached file shorter than its torrent")
                        pos = stop
                    await response.write_eof()
            finally:
                if not ready.done():
                    ready.cancel()
            self.cache.touch(store, entry)
            return response


def _done() -> asyncio.Future:
    fut = asyncio.get_running_loop().create_future()
    fut.set_result(None)
    return fut


def _open_cached(path):
    """A cached file opened for sending; a failure (no descriptor left, file gone) is a 503, not a 500."""
    try:
        return open(path, "rb")
    except OSError as exc:
        raise WebseedError(503, f"the mirror cannot open a cached file now: {exc.strerror or exc}") from exc


def _origin_form(raw_path: str) -> str:
    """The path and query of a request target; an absolute-form one (``http://host/v1/...``, which
    RFC 9112 §3.2.2 says a server must accept) loses its scheme and authority, nothing else."""
    if raw_path.startswith("/"):
        return raw_path
    authority_and_rest = raw_path.partition("://")[2]
    return "/" + authority_and_rest.partition("/")[2]


def _ranged_response(size: int, rng: tuple[int, int] | None) -> web.StreamResponse:
    response = web.StreamResponse(status=206 if rng else 200)
    start, end = rng or (0, size)
    response.content_length = end - start
    response.content_type = "application/octet-stream"
    response.headers["Accept-Ranges"] = "bytes"
    if rng:
        response.headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    return response


async def _zeros(
    request: web.Request, size: int, rng: tuple[int, int] | None, timeout: float
) -> web.StreamResponse:
    """A pad file (or an empty file): ``size`` zero bytes, ranges honoured."""
    response = _ranged_response(size, rng)
    note(request)["response"] = response
    await response.prepare(request)
    if request.method != "HEAD":
        await write_zeros(response, response.content_length or 0, timeout)
        await response.write_eof()
    return response


def _refuse(request: web.Request, status: int, message: str) -> web.Response:
    note(request)["error"] = message
    return web.Response(status=status, text=message + "\n", headers={"Retry-After": "1"})


def make_runner(gateway: Gateway, access_log: str | None = None) -> web.AppRunner:
    """An AppRunner for the gateway: JSON access log, bounded request heads, the connection budget."""
    return BudgetedRunner(
        gateway.app(),
        max_open=gateway.settings.max_open_connections or fd_budget(),
        metrics=gateway.metrics,
        access_log_class=JsonAccessLogger.bound(gateway.metrics),
        access_log=access_logger(access_log),
        logger=server_logger(),
        max_line_size=8190,
        max_field_size=8190,
        keepalive_timeout=75,
    )

