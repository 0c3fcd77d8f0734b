"""Sending answers to clients that may stop reading: every write has a send timeout.

A client that stops reading (a slow loris, a stuck peer) would otherwise hold its request slot, its
connection and an open cache file for as long as it likes. Bodies go out in steps of at most
:data:`SEND_STEP` bytes (cached bytes with ``sendfile``); a step the client does not accept within the
send timeout raises :class:`ClientStalled`, and the gateway drops the connection. So the slowest client
kept is one taking ``SEND_STEP`` bytes per timeout (1 MiB per 30 s by default, ~35 KB/s).
"""

from __future__ import annotations

import asyncio
from typing import BinaryIO

from aiohttp import web

#: The most bytes one send step may take before the send timeout restarts.
SEND_STEP = 1 << 20
_ZEROS = bytes(256 * 1024)


class ClientStalled(Exception):
    """The client accepted no step of its answer within the send timeout (its connection is dropped)."""


async def send_file(request: web.BaseRequest, fobj: BinaryIO, offset: int, count: int, timeout: float) -> int:
    """Send ``count`` bytes of ``fobj`` from ``offset`` after the (prepared) answer's head, with sendfile.

    Returns the bytes sent: fewer than ``count`` only when the file turned out shorter (the caller must
    then cut the answer short). Raises :class:`ClientStalled` or ``ConnectionResetError``.
    """
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("Connection lost")
    loop = asyncio.get_running_loop()
    sent = 0
    try:
        async with asyncio.timeout(timeout) as deadline:
            while sent < count:
                step = min(SEND_STEP, count - sent)
                deadline.reschedule(loop.time() + timeout)
                done = await loop.sendfile(transport, fobj, offset + sent, step)
                sent += done
                if done < step:
                    break
    except TimeoutError:
        raise ClientStalled(f"the client took no {SEND_STEP} bytes in {timeout:g} s") from None
    return sent


async def write(response: web.StreamResponse, data: bytes, timeout: float) -> None:
    """``response.write(data)`` under the send timeout."""
    try:
        async with asyncio.timeout(timeout):
            await response.write(data)
    except TimeoutError:
        raise ClientStalled(f"the client took no {len(data)} bytes in {timeout:g} s") from None


async def write_zeros(response: web.StreamResponse, count: int, timeout: float) -> None:
    """``count`` zero bytes (a pad file) under the send timeout."""
    while count:
        n = min(count, len(_ZEROS))
        await write(response, _ZEROS[:n], timeout)
        count -= n
