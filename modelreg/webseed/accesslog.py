"""The access log: one JSON object per request, and the request/byte counters of ``/metrics``.

A request aiohttp cannot parse (garbage, TLS on the plain port, an over-long line) is answered 400 by
aiohttp itself, without reaching the application: it is logged here as ``"malformed": true`` and counted
in ``malformed_requests_total``; aiohttp's own traceback for it is dropped (:func:`server_logger`).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web import BaseRequest, StreamResponse

from modelreg.units import utc_timestamp

LOGGER_NAME = "modelreg.webseed.access"
SERVER_LOGGER_NAME = "modelreg.webseed.server"
_ERROR_CHARS = 200
#: Where the application keeps its Gateway, and each request its notes (cache outcome, error).
GATEWAY = web.AppKey("gateway", object)
_NOTES = web.RequestKey("modelreg_webseed", dict) if hasattr(web, "RequestKey") else "modelreg_webseed"


def note(request: web.BaseRequest) -> dict:
    """The request's notes for the access log: ``cache``, ``error``, ``response``."""
    notes = request.get(_NOTES)
    if notes is None:
        notes = request[_NOTES] = {}
    return notes


class JsonAccessLogger(AbstractAccessLogger):
    """Counts every answered request and logs it as a JSON line (when the logger has a handler).

    ``bytes`` is what went out on the wire for the response, headers included. Use :meth:`bound` to get
    the class for one gateway: aiohttp makes one logger per connection, and a request it could not parse
    has no application to find the gateway through.
    """

    metrics = None

    @classmethod
    def bound(cls, metrics) -> type[JsonAccessLogger]:
        """This logger counting into ``metrics`` (a :class:`~modelreg.webseed.metrics.Metrics`)."""
        return type(cls.__name__, (cls,), {"metrics": metrics})

    def log(self, request: BaseRequest, response: StreamResponse, duration: float) -> None:
        notes = request.get(_NOTES)
        malformed = notes is None  # the application notes every request it sees; aiohttp answered this one
        sent = response.body_length + (notes or {}).get("sent", 0)  # sendfile bypasses aiohttp's count
        if self.metrics is not None:
            self.metrics.requests[response.status] += 1
            self.metrics.bytes_served += sent
            if malformed:
                self.metrics.malformed_requests += 1
        if not self.logger.handlers:
            return
        notes = notes or {}
        record = {
            "time": utc_timestamp(),
            "remote": request.remote,
            "method": None if malformed else request.method,
            "path": None if malformed else request.raw_path,
            "range": None if malformed else request.headers.get("Range"),
            "status": response.status,
            "bytes": sent,
            "ms": round(duration * 1000, 2),
            "cache": notes.get("cache"),
            "location": response.headers.get("Location"),
            "error": _why_malformed(response) if malformed else notes.get("error"),
            "malformed": True if malformed else None,
            "user_agent": None if malformed else request.headers.get("User-Agent"),
        }
        self.logger.info(json.dumps({k: v for k, v in record.items() if v is not None}))


def _why_malformed(response: StreamResponse) -> str:
    """aiohttp's one-line reason for refusing a request it could not parse (its answer's first line)."""
    text = getattr(response, "text", None) or ""
    first = text.strip().splitlines()[0] if text.strip() else f"HTTP {response.status}"
    return first[:_ERROR_CHARS]


class _DropParseErrors(logging.Filter):
    """Drops aiohttp's traceback for a request it could not parse: the access log and metrics have it."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, HttpProcessingError)


def server_logger() -> logging.Logger:
    """The logger for aiohttp's server messages: handler errors (500) still show, parse errors do not."""
    logger = logging.getLogger(SERVER_LOGGER_NAME)
    if not any(isinstance(f, _DropParseErrors) for f in logger.filters):
        logger.addFilter(_DropParseErrors())
    return logger


def access_logger(path: str | None) -> logging.Logger:
    """The access logger writing to ``path`` (``-`` for stderr); None or ``""`` keeps it silent."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    if path:
        handler = logging.StreamHandler() if path == "-" else logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    return logger
