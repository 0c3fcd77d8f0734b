"""Large download buffers, reused once the hashing engine no longer refers to them."""

from __future__ import annotations

import sys
import threading


def _unshared_refcount() -> int:
    """What ``sys.getrefcount`` says of a list's item in a loop over the list when nothing else refers to
    it, measured on this interpreter with the same loop as :meth:`BufferPool.take`."""
    for buf in [bytearray(1)]:
        return sys.getrefcount(buf)
    raise AssertionError("unreachable")


class BufferPool:
    """Buffers of ``size`` bytes, reused once nothing but the pool refers to them.

    The engine keeps each chunk until every hasher is done with it, so a buffer whose only references
    are the pool's own is free: nothing still reads it. Reuse spares allocating, zeroing and faulting
    in a fresh 16 MiB per range, and keeps the memory the allocator holds small. At most ``limit``
    buffers are pooled; past that (an engine holding more chunks than expected) buffers are fresh.
    """

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        self._buffers: list[bytearray] = []
        self._lock = threading.Lock()
        self._free = _unshared_refcount()

    def take(self, length: int) -> tuple[bytearray, memoryview]:
        """A buffer of at least ``length`` bytes and a view of exactly ``length`` bytes of it."""
        if length < self.size // 2:
            buf = bytearray(length)
            return buf, memoryview(buf)
        with self._lock:
            for buf in self._buffers:
                if sys.getrefcount(buf) <= self._free:
                    return buf, memoryview(buf)[:length]
            buf = bytearray(self.size)
            if len(self._buffers) < self.limit:
                self._buffers.append(buf)
            return buf, memoryview(buf)[:length]
