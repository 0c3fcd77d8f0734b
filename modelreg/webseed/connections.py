"""Open connections against the process's file-descriptor budget.

Every connection costs a descriptor, and so does each cached file being sent, each upstream connection,
each piece being written and the access log. When the process runs out, ``accept`` fails, nothing is
answered (a legitimate request just times out) and asyncio logs the failure. So the gateway keeps its
connections within a budget derived from ``RLIMIT_NOFILE``: half of the soft limit left after a fixed
reserve (the other half is for the file each connection's request may hold open). At the budget, a new
connection first takes the place of the longest-open idle one (connected, no request in progress, as
aiohttp's keep-alive timeout would close it anyway); when none is idle it gets a short 503 and is
closed. Refusals are counted in ``connections_refused_total`` and logged at most once a minute.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

from aiohttp import web

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

    async def _make_server(self) -> web.Server:
        return _BudgetedServer(await super()._make_server(), self)

    def refused(self) -> None:
        self.metrics.connections_refused += 1
        self._refused_since_log += 1
        now = time.monotonic()
        if now - self._last_log >= _LOG_EVERY:
            self.log.warning(
                "refused %d connection(s): %d open, the budget for an open-file limit of %d",
                self._refused_since_log, self.max_open, resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            )
            self._last_log, self._refused_since_log = now, 0


class _BudgetedServer:
    """aiohttp's Server (the protocol factory of the listening socket) with the connection budget."""

    def __init__(self, server: web.Server, runner: BudgetedRunner):
        self._server = server
        self._runner = runner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)

    def __call__(self) -> asyncio.BaseProtocol:
        connections = getattr(self._server, "_connections", None)
        open_now = len(connections) if connections is not None else len(self._server.connections)
        if open_now >= self._runner.max_open and not _close_an_idle_one(connections or {}):
            self._runner.refused()
            return _Refused(self._runner)
        return self._server()


def _close_an_idle_one(connections: dict) -> bool:
    """Close the longest-open connection waiting for a request (what aiohttp's keep-alive timeout does)."""
    for handler in connections:
        waiter = getattr(handler, "_waiter", None)
        if waiter is not None and not waiter.done() and not getattr(handler, "_force_close", False):
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
