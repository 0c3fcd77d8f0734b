"""Quantities as users write them and as modelreg writes them: byte sizes and moments in time.

One parser for sizes on every command line (``--piece-length 4M``, ``--max-cache-size 2T``) and one
formatter for timestamps in every file modelreg writes (metadata cache, site records, access log).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from modelreg.errors import ConfigError

_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b?)\s*", re.IGNORECASE)


def parse_size(text: str) -> int:
    """``"4194304"``, ``"4M"``, ``"16KiB"``, ``"1.5G"``, ``"2T"`` in bytes (K, M, G, T, P: powers of 1024).

    Raises:
        ConfigError: ``text`` is not such a size (the message quotes it and shows the form).
    """
    m = _SIZE.fullmatch(text)
    if not m:
        raise ConfigError(f"size {text!r} must be a number with an optional K, M, G, T or P suffix (e.g. 4M, 2T)")
    number, unit = float(m.group(1)), m.group(2).lower()
    return int(number * 1024 ** " kmgtp".index(unit or " "))


def utc_timestamp(moment: datetime | float | None = None) -> str:
    """``moment`` (a datetime, naive ones read as UTC; a POSIX time; None: now) as ISO 8601 UTC to the second,
    ``2026-11-29T20:00:00Z``. Years below 1000 keep four digits (``0001-...``), unlike ``strftime``'s ``%Y``."""
    if moment is None:
        moment = time.time()
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None, microsecond=0).isoformat() + "Z"
