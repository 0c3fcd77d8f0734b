"""HTTP ``Range`` headers: one byte range, as BitTorrent web-seed clients send them.

Anything else (several ranges, another unit, garbage, a range past the end) is answered with 416:
a web seed that silently ignored a range would send a whole multi-gigabyte file instead. Numbers may have
any length (the request head is bounded): an end or a suffix past the file is clamped to it (RFC 9110
§14.1.2), however many digits it has.
"""

from __future__ import annotations

import re

from modelreg.errors import WebseedError

#: ASCII digits and HTTP's optional whitespace (space, tab) only: ``\d`` and ``\s`` would also take
#: other scripts' digits (which ``int`` reads) and Unicode spaces, which no HTTP client means.
_RANGE = re.compile(r"[ \t]*bytes[ \t]*=[ \t]*([0-9]*)[ \t]*-[ \t]*([0-9]*)[ \t]*")
#: Any number at least this long is past every file (and ``int`` need not read thousands of digits).
_HUGE_DIGITS = 20
_HUGE = 1 << 80


class RangeNotSatisfiable(WebseedError):
    """A ``Range`` header the gateway will not answer (416)."""

    def __init__(self, header: str, size: int, why: str):
        self.size = size
        super().__init__(416, f"Range {header!r} cannot be served for {size} bytes: {why}")


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end)`` (end exclusive) for a single-range header, None without one.

    Raises :class:`RangeNotSatisfiable` for a malformed, multi-range or unsatisfiable header.
    """
    if header is None:
        return None
    m = _RANGE.fullmatch(header)
    if not m:
        why = "only one range is served" if "," in header else "not a 'bytes=START-END' range"
        raise RangeNotSatisfiable(header, size, why)
    first, last = m.group(1), m.group(2)
    if first and last:
        start, end = _number(first), _number(last) + 1
        if end <= start:
            raise RangeNotSatisfiable(header, size, "the range ends before it starts")
    elif first:
        start, end = _number(first), size
    elif last:
        suffix = _number(last)
        if suffix == 0:
            raise RangeNotSatisfiable(header, size, "a suffix range of zero bytes")
        start, end = max(0, size - suffix), size
    else:
        raise RangeNotSatisfiable(header, size, "neither start nor end given")
    if start >= size:
        raise RangeNotSatisfiable(header, size, "the range starts past the end")
    return start, min(end, size)


def _number(digits: str) -> int:
    """A range bound; one of :data:`_HUGE_DIGITS` digits or more (leading zeros aside) is past any file."""
    digits = digits.lstrip("0") or "0"
    return _HUGE if len(digits) >= _HUGE_DIGITS else int(digits)
