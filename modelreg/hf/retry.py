"""The one retry policy for everything that talks to Hugging Face: the hub client, the streaming source and
the gateway's upstream.

A request that fails with a status in :data:`RETRY_STATUS`, a timeout or a lost connection is asked again
after a wait: ``base_delay * 2**attempt`` with jitter, capped at ``max_delay``, or what the server's
``Retry-After`` header asks (seconds or an HTTP date). The caller gives up after ``retries`` retries, or at
once when ``Retry-After`` asks for more than ``max_retry_after`` (then the message says when to come back).
A :class:`Pause` makes every worker of one client honour a ``Retry-After`` that one of them was told.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

#: The HTTP statuses worth asking again: timeouts, rate limits and passing server trouble.
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """How often to ask again (``retries`` after the first attempt) and how long to wait in between."""

    retries: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int) -> float:
        """The jittered wait after failed attempt number ``attempt`` (0 for the first)."""
        wait = min(self.max_delay, self.base_delay * 2**attempt)
        return wait * (0.5 + random.random() / 2)

    def wait(self, attempt: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before asking again after failed attempt ``attempt`` (0 for the first), given the
        server's ``Retry-After`` in seconds if any; None when the caller should give up (see :meth:`why_not`)."""
        if attempt >= self.retries or (retry_after is not None and retry_after > self.max_retry_after):
            return None
        return self.delay(attempt) if retry_after is None else retry_after

    def why_not(self, attempt: int, retry_after: float | None = None) -> str:
        """Why :meth:`wait` said to give up, for the end of an error message."""
        if retry_after is not None and retry_after > self.max_retry_after:
            return f"asks to wait {retry_after:.0f} s; try again later"
        return f"gave up after {attempt + 1} attempts"


def retryable_status(status: int | None) -> bool:
    """Whether an answer with this HTTP status is worth asking again."""
    return status in RETRY_STATUS


def retry_after(headers: Any, now: datetime | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date; a past date is 0), None when absent
    or unreadable. ``headers`` is any mapping with a case-insensitive ``get`` (httpx, aiohttp, http.client)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds and seconds != float("inf") else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; a date without a zone is read as such
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


@dataclass
class Pause:
    """A gate shared by the workers of one client: after a ``Retry-After``, nobody asks again before it has
    passed, not only the one that was told."""

    until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def extend(self, seconds: float) -> None:
        with self.lock:
            self.until = max(self.until, time.monotonic() + seconds)

    def wait(self, stop: threading.Event | None = None) -> bool:
        """Block until the pause is over; False when ``stop`` was set meanwhile."""
        while (left := self.until - time.monotonic()) > 0:
            if stop is None:
                time.sleep(left)
            elif stop.wait(left):
                return False
        return True
