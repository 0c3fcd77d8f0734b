"""HTTP ``Range`` headers: one byte range, as BitTorrent web-seed clients send them.

Anything else (several ranges, another unit, garbage, a range past the end) is answered with 416:
a web seed that silently ignored a range would send a whole multi-gigabyte file instead.
"""

from __future__ import annotations

import re

from modelreg.errors import WebseedError

#: ASCII digits and HTTP's optional whitespace (space, tab) only: ``\d`` and ``\s`` would also take
#: other scripts' digits (which ``int`` reads) and Unicode spaces, which no HTTP client means.
_RANGE = re.compile(r"^[ \t]*bytes[ \t]*=[ \t]*([0-9]{0,19})[ \t]*-[ \t]*([0-9]{0,19})[ \t]*$")


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
    m = _RANGE.match(header)
    if not m:
        why = "only one range is served" if "," in header else "not a 'bytes=START-END' range"
        raise RangeNotSatisfiable(header, size, why)
    first, last = m.group(1), m.group(2)
    if first and last:
        start, end = int(first), int(last) + 1
        if end <= start:
            raise RangeNotSatisfiable(header, size, "the range ends before it starts")
    elif first:
        start, end = int(first), size
    elif last:
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable(header, size, "a suffix range of zero bytes")
        start, end = max(0, size - suffix), size
    else:
        raise RangeNotSatisfiable(header, size, "neither start nor end given")
    if start >= size:
        raise RangeNotSatisfiable(header, size, "the range starts past the end")
    return start, min(end, size)
