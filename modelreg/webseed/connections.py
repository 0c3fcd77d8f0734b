"""Open connections against the process's file-descriptor budget.

Every connection costs a descriptor, and so does each cached file being sent, each upstream connection,
each piece being written and the access log. When the process runs out, ``accept`` fails, nothing is
answered (a legitimate request just times out) and asyncio logs the failure. So the gateway keeps its
connections within a budget derived from ``RLIMIT_NOFILE``: half of the soft limit left after a fixed
reserve (the other half is for the file each connection's request may hold open). At the budget, a new
connection first takes the place of the longest-open idle one (connected, no request in progress, as
aiohttp's keep-alive timeout would close it anyway); when none is idle it gets a short 503 and is
closed. Refusals are counted in ``connections_refused_total`` and logged at most once a minute.

asyncio accepts every connection waiting in the listen queue in one go, before the budget is asked, so
the listening socket's backlog is kept to a fraction of the budget (:func:`listen_backlog`); should
``accept`` still fail for want of descriptors, asyncio's traceback for it becomes one log line a minute.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from modelreg.webseed.metrics import Metrics

#: Descriptors kept for everything but connections and their files: upstream pool, logs, listeners...
RESERVED_FDS = 128
_UNLIMITED = 1 << 20
_LOG_EVERY = 60.0
_BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nRetry-After: 5\r\n"
    b"Connection: close\r\nContent-Length: 53\r\n\r\nthe gateway has too many open connections; retry soon\n"
)
_REFUSED_LINGER = 1.0
#: Refused connections left open (for their request to arrive) at most; beyond, closed at once.
_MAX_LINGERING = 32


def fd_budget(soft_limit: int | None = None) -> int:
    """How many connections may be open at once, for an open-file limit (default: this process's)."""
    if soft_limit is None:
        soft_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft_limit == resource.RLIM_INFINITY or soft_limit > _UNLIMITED:
        soft_limit = _UNLIMITED
    return max(8, (soft_limit - RESERVED_FDS) // 2)


class BudgetedRunner(web.AppRunner):
    """An AppRunner whose server keeps at most ``max_open`` connections (see the module docstring)."""

    def __init__(self, app: web.Application, *, max_open: int, metrics: Metrics, logger: logging.Logger, **kw: Any):
        super().__init__(app, logger=logger, **kw)
        self.max_open = max_open
        self.metrics = metrics
        self.log = logger
        self._last_log = 0.0
        self._refused_since_log = 0
        self.lingering = 0
        self._last_accept_log = 0.0
        #: Connections whose protocol was made and not yet lost (aiohttp lists one only once it starts).
        self.open = 0

    async def _make_server(self) -> web.Server:
        return _BudgetedServer(await super()._make_server(), self)

    def refused(self) -> None:
        self.metrics.connections_refused += 1
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY:
            self.log.warning(
                "refused %d connection(s) beyond the budget of %d open connections (open-file limit %d)",
                self._refused_since_log, self.max_open, resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            )
            self._last_log, self._refused_since_log = now, 0

    async def setup(self) -> None:
        await super().setup()
        loop = asyncio.get_running_loop()
        if loop.get_exception_handler() is None:
            loop.set_exception_handler(self._loop_exception)

    def _loop_exception(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """asyncio's report of a failed ``accept`` (out of descriptors): one line a minute, no traceback."""
        if context.get("message") != "socket.accept() out of system resource":
            loop.default_exception_handler(context)
            return
        self.metrics.accept_failures += 1
        now = time.monotonic()
        if now - self._last_accept_log >= _LOG_EVERY:
            self._last_accept_log = now
            self.log.warning("accept() failed, out of file descriptors (%s); retrying", context.get("exception"))


class _BudgetedServer:
    """aiohttp's Server (the protocol factory of the listening socket) with the connection budget."""

    def __init__(self, server: web.Server, runner: BudgetedRunner):
        self._server = server
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def __call__(self) -> asyncio.BaseProtocol:
        runner = self._runner
        if runner.open >= runner.max_open and not _close_an_idle_one(getattr(self._server, "_connections", {})):
            runner.refused()
            return _Refused(runner)
        # What aiohttp's Server.__call__ does, with a handler that gives its place back when lost.
        handler = _CountedHandler(self._server, loop=self._server._loop, **self._server._kwargs)
        handler.runner = runner
        runner.open += 1
        return handler


class _CountedHandler(RequestHandler):
    """aiohttp's connection handler, counted in :attr:`BudgetedRunner.open` until its connection is lost."""

    runner: BudgetedRunner | None = None

    def connection_lost(self, exc: BaseException | None) -> None:
        if self.runner is not None:
            self.runner.open -= 1
            self.runner = None
        super().connection_lost(exc)


def listen_backlog(max_open: int) -> int:
    """The listen queue for a connection budget: what asyncio may accept at once must fit beside it."""
    return max(8, min(1024, max_open // 2))


def _close_an_idle_one(connections: dict) -> bool:
    """Close the longest-open connection with no request (what aiohttp's keep-alive timeout would do).

    Idle: no request being answered, none parsed and waiting, not closing already (a partial request
    head counts as idle). Attributes of aiohttp's RequestHandler; if they are missing nothing is closed.
    """
    for handler in connections:
        if (
            getattr(handler, "_request_in_progress", True) is False
            and not getattr(handler, "_messages", True)
            and getattr(handler, "_force_close", True) is False
        ):
            handler.force_close()
            return True
    return False


class _Refused(asyncio.Protocol):
    """A connection over the budget: a 503, then closed (after its request arrives, so no reset hides it)."""

    def __init__(self, runner: BudgetedRunner):
        self.runner = runner
        self.transport: asyncio.BaseTransport | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(_BUSY)  # type: ignore[attr-defined]
        if self.runner.lingering >= _MAX_LINGERING:
            transport.close()
            return
        self.runner.lingering += 1
        self._timer = asyncio.get_running_loop().call_later(_REFUSED_LINGER, transport.close)

    def data_received(self, data: bytes) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self.runner.lingering -= 1
