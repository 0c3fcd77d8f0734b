"""Strict bencode decoding on top of bencode.py, keeping the exact bytes of the ``info`` dict.

bencode.py's decoder trusts its input more than a registry of strangers' files allows: it takes
``int()``'s liberal syntax (``+5``, ``1_0``, spaces) and negative string lengths, which can make it walk
backwards forever. :class:`StrictDecoder` accepts only canonical bencode integers and lengths, and
:func:`decode_torrent` also returns where the top-level ``info`` value starts and ends, because the
infohash is the hash of those bytes exactly as stored, never of a re-encoding.
"""

from __future__ import annotations

import re
from typing import Any

import bencodepy
from bencodepy.decoder import BencodeDecoder

_INT = re.compile(rb"i(0|-?[1-9][0-9]*)e")
_LEN = re.compile(rb"(0|[1-9][0-9]*):")
MAX_DEPTH = 64


class BencodeError(ValueError):
    """The bytes are not valid bencode; the message says where."""


class StrictDecoder(BencodeDecoder):
    """bencode.py's decoder with canonical integers and string lengths only."""

    def __init__(self) -> None:
        super().__init__(max_depth=MAX_DEPTH)

    def decode_int(self, x: bytes, f: int, **kwargs: Any) -> tuple[int, int]:
        m = _INT.match(x, f)
        if m is None:
            raise BencodeError(f"invalid integer at byte {f}")
        return int(m.group(1)), m.end()

    def decode_string(self, x: bytes, f: int, kind: str = "value", **kwargs: Any) -> tuple[bytes, int]:
        m = _LEN.match(x, f, f + 21)
        if m is None:
            raise BencodeError(f"invalid string length at byte {f}")
        start = m.end()
        end = start + int(m.group(1))
        if end > len(x):
            raise BencodeError(f"string at byte {f} runs past the end of the data (truncated?)")
        return x[start:end], end


_DECODER = StrictDecoder()


def decode(data: bytes) -> Any:
    """Decode one complete bencoded value; raise :class:`BencodeError` on anything else.

    Raises:
        BencodeError: the data is not exactly one valid bencoded value.
    """
    value, end = _decode_at(data, 0)
    if end != len(data):
        raise BencodeError(f"{len(data) - end} bytes of trailing data after the value")
    return value


def decode_torrent(data: bytes) -> tuple[dict[bytes, Any], tuple[int, int] | None]:
    """Decode a top-level dict and return it with the (start, end) span of its ``info`` value.

    Raises:
        BencodeError: the data is not one bencoded dictionary (truncated, trailing bytes, malformed).
    """
    if data[:1] != b"d":
        raise BencodeError("the file does not start with a bencoded dictionary")
    top: dict[bytes, Any] = {}
    span = None
    f = 1
    try:
        while data[f : f + 1] != b"e":
            if f >= len(data):
                raise BencodeError("the data ends inside the top-level dictionary (truncated?)")
            key, f = _DECODER.decode_string(data, f, kind="key")
            start = f
            top[key], f = _decode_at(data, f)
            if key == b"info":
                span = (start, f)
    except IndexError as exc:
        raise BencodeError("the data ends unexpectedly (truncated?)") from exc
    if f + 1 != len(data):
        raise BencodeError(f"{len(data) - f - 1} bytes of trailing data after the dictionary")
    return top, span


def _decode_at(data: bytes, f: int) -> tuple[Any, int]:
    func = _DECODER.decode_func.get(data[f : f + 1])
    if func is None:
        if f >= len(data):
            raise BencodeError("the data ends unexpectedly (truncated?)")
        raise BencodeError(f"unexpected byte {data[f:f + 1]!r} at byte {f}")
    try:
        return func(data, f)
    except BencodeError:
        raise
    except bencodepy.BencodeDecodeError as exc:
        raise BencodeError(str(exc)) from exc
    except RecursionError as exc:
        raise BencodeError("nested too deeply") from exc
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        raise BencodeError("malformed or truncated bencode") from exc


def encode(value: Any) -> bytes:
    """Encode a value with bencode.py (dict keys are sorted, as the format requires)."""
    return bencodepy.encode(value)
