"""The access log: one JSON object per request, and the request/byte counters of ``/metrics``."""

from __future__ import annotations

import json
import logging

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web import BaseRequest, StreamResponse

from modelreg.units import utc_timestamp

LOGGER_NAME = "modelreg.webseed.access"
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

    ``bytes`` is what went out on the wire for the response, headers included.
    """

    def log(self, request: BaseRequest, response: StreamResponse, duration: float) -> None:
        gateway = request.app.get(GATEWAY) if hasattr(request, "app") else None
        notes = request.get(_NOTES) or {}
        sent = response.body_length
        if gateway is not None:
            gateway.metrics.requests[response.status] += 1
            gateway.metrics.bytes_served += sent
        if not self.logger.handlers:
            return
        record = {
            "time": utc_timestamp(),
            "remote": request.remote,
            "method": request.method,
            "path": request.raw_path,
            "range": request.headers.get("Range"),
            "status": response.status,
            "bytes": sent,
            "ms": round(duration * 1000, 2),
            "cache": notes.get("cache"),
            "location": response.headers.get("Location"),
            "error": notes.get("error"),
            "user_agent": request.headers.get("User-Agent"),
        }
        self.logger.info(json.dumps({k: v for k, v in record.items() if v is not None}))


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
