"""Strict bencode decoding that keeps the exact bytes of the ``info`` dict; encoding by bencode.py.

Bencode from a registry of strangers' files is decoded strictly: only canonical integers (``i0e``, ``i-5e``;
never ``i+5e``, ``i05e``, ``i-0e``, ``i1_0e`` or spaces, which ``int()`` would take) and canonical string
lengths (at most 20 digits, no leading zero), every string within the data, dictionary keys that are
strings, at most :data:`MAX_DEPTH` nested lists and dictionaries, nothing after the value.
:func:`decode_torrent` also returns where the top-level ``info`` value starts and ends, because the
infohash is the hash of those bytes exactly as stored, never of a re-encoding.

Decoding has two paths that accept the same inputs and return the same values. A registry's build decodes
every torrent (a hybrid torrent is hundreds of small strings, dictionaries and integers), so canonical
bencode (sorted, unrepeated keys; what every client writes) is read by bencode2's compiled decoder, about
15 times faster, and checked here for the nesting limit. bencode2 rejects anything that is not canonical;
such data, and platforms without its compiled module, go to this module's strict decoder, which also
accepts keys out of order (as libtorrent does) and names the problem of a bad file. The strict decoder is
one function per container kind with strings and integers read inline.
"""

from __future__ import annotations

from typing import Any

import bencode2
import bencodepy

MAX_DEPTH = 64
#: The longest canonical string length a decoder reads (20 digits, more than any file holds).
_LEN_DIGITS = 20


#: Whether bencode2's compiled decoder is there (its pure-Python fallback is slower than the strict decoder).
FAST = bencode2.COMPILED
_CONTAINERS = (list, dict)


class BencodeError(ValueError):
    """The bytes are not valid bencode; the message says where."""


def decode(data: bytes) -> Any:
    """Decode one complete bencoded value; raise :class:`BencodeError` on anything else.

    Raises:
        BencodeError: the data is not exactly one valid bencoded value.
    """
    value = _canonical(data)
    if value is not None:
        if type(value) in _CONTAINERS and not _within_depth(value, 0):
            raise BencodeError("nested too deeply")
        return value
    return strict_decode(data)


def strict_decode(data: bytes) -> Any:
    """:func:`decode` by this module's decoder alone (what bencode2's results are checked against).

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
    top = _canonical(data)
    if top is not None:
        # The strict decoder counts the top-level dictionary's values as depth 0.
        for value in top.values():
            if type(value) in _CONTAINERS and not _within_depth(value, 0):
                raise BencodeError("nested too deeply")
        if b"info" not in top:
            return top, None
        span = _info_span(data, top)
        if span is not None:
            return top, span
    return strict_decode_torrent(data)


def strict_decode_torrent(data: bytes) -> tuple[dict[bytes, Any], tuple[int, int] | None]:
    """:func:`decode_torrent` by this module's decoder alone.

    Raises:
        BencodeError: the data is not one bencoded dictionary (truncated, trailing bytes, malformed).
    """
    if data[:1] != b"d":
        raise BencodeError("the file does not start with a bencoded dictionary")
    top: dict[bytes, Any] = {}
    span = None
    f = 1
    size = len(data)
    try:
        while data[f : f + 1] != b"e":
            if f >= size:
                raise BencodeError("the data ends inside the top-level dictionary (truncated?)")
            key, f = _string(data, f)
            start = f
            top[key], f = _decode_at(data, f)
            if key == b"info":
                span = (start, f)
    except IndexError:
        raise BencodeError("the data ends unexpectedly (truncated?)") from None
    if f + 1 != size:
        raise BencodeError(f"{size - f - 1} bytes of trailing data after the dictionary")
    return top, span


def encode(value: Any) -> bytes:
    """Encode a value with bencode.py (dict keys are sorted, as the format requires)."""
    return bencodepy.encode(value)


def _canonical(data: bytes) -> Any:
    """The value of canonical bencode by bencode2's compiled decoder, or None for anything else (the strict
    decoder then decides, and says what is wrong)."""
    if not FAST:
        return None
    try:
        return bencode2.bdecode(data)
    except Exception:  # not canonical, not bencode, too deep for bencode2 (4,096), an integer int() refuses
        return None


def _within_depth(value: list | dict, depth: int) -> bool:
    """Whether no list or dictionary in ``value`` (itself at ``depth``) is deeper than :data:`MAX_DEPTH`."""
    stack = [(value, depth)]
    pop, push = stack.pop, stack.append
    while stack:
        value, depth = pop()
        if depth > MAX_DEPTH:
            return False
        depth += 1
        for item in value.values() if type(value) is dict else value:
            if type(item) in _CONTAINERS:
                push((item, depth))
    return True


def _info_span(data: bytes, top: dict[bytes, Any]) -> tuple[int, int] | None:
    """Where the ``info`` value of canonical ``data`` lies: after the keys sorted before it and ``4:info``.
    Checked against the bytes; None if they differ (never, for canonical bencode)."""
    try:
        before = bencode2.bencode({key: value for key, value in top.items() if key < b"info"})
        info = bencode2.bencode(top[b"info"])
    except Exception:  # what bencode2 decoded it encodes; if ever not, the strict decoder decides
        return None
    start = len(before) + 5  # "d" and the items before "info" (not their "e"), then "4:info"
    end = start + len(info)
    if data[start - 6 : start] != b"4:info" or data[start:end] != info:
        return None
    return start, end


def _decode_at(data: bytes, f: int) -> tuple[Any, int]:
    """The value at ``f`` (the top-level one's containers at depth 0) and where it ends.

    Raises:
        BencodeError: anything malformed, truncated or nested too deeply.
    """
    try:
        return _value(data, f, 0)
    except BencodeError:
        raise
    except IndexError:
        raise BencodeError("the data ends unexpectedly (truncated?)") from None
    except (ValueError, TypeError) as exc:  # int() of more digits than Python converts
        raise BencodeError("malformed bencode") from exc


def _string(data: bytes, f: int) -> tuple[bytes, int]:
    colon = data.find(b":", f, f + _LEN_DIGITS + 1)
    if colon < 0 or not (digits := data[f:colon]).isdigit() or (digits[0] == 48 and colon != f + 1):
        raise BencodeError(f"invalid string length at byte {f}")
    end = colon + 1 + int(digits)
    if end > len(data):
        raise BencodeError(f"string at byte {f} runs past the end of the data (truncated?)")
    return data[colon + 1 : end], end


def _int(data: bytes, f: int) -> tuple[int, int]:
    end = data.find(b"e", f + 1)
    if end < 0 or not _canonical_int(digits := data[f + 1 : end]):
        raise BencodeError(f"invalid integer at byte {f}")
    return int(digits), end + 1


def _canonical_int(digits: bytes) -> bool:
    """``0`` or an optional ``-`` and digits without a leading zero (ASCII digits only: ``bytes.isdigit``)."""
    if digits[:1] == b"-":
        digits = digits[1:]
        return digits.isdigit() and digits[0] != 48
    return digits.isdigit() and (digits[0] != 48 or len(digits) == 1)


def _value(data: bytes, f: int, depth: int) -> tuple[Any, int]:
    c = data[f]
    if 48 <= c <= 57:
        return _string(data, f)
    if c == 100:  # d
        return _dict(data, f, depth)
    if c == 108:  # l
        return _list(data, f, depth)
    if c == 105:  # i
        return _int(data, f)
    raise BencodeError(f"unexpected byte {data[f:f + 1]!r} at byte {f}")


def _dict(data: bytes, f: int, depth: int) -> tuple[dict[bytes, Any], int]:
    if depth > MAX_DEPTH:
        raise BencodeError("nested too deeply")
    size = len(data)
    find = data.find
    out: dict[bytes, Any] = {}
    f += 1
    while (c := data[f]) != 101:  # e
        # the key: a string (any order, a repeated key's last value kept)
        colon = find(b":", f, f + _LEN_DIGITS + 1)
        if colon < 0 or not (digits := data[f:colon]).isdigit() or (c == 48 and colon != f + 1):
            raise BencodeError(f"invalid string length at byte {f}")
        f = colon + 1 + int(digits)
        if f > size:
            raise BencodeError(f"string at byte {colon - len(digits)} runs past the end of the data (truncated?)")
        key = data[colon + 1 : f]
        c = data[f]
        if 48 <= c <= 57:  # the commonest values, strings and integers, read here
            colon = find(b":", f, f + _LEN_DIGITS + 1)
            if colon < 0 or not (digits := data[f:colon]).isdigit() or (c == 48 and colon != f + 1):
                raise BencodeError(f"invalid string length at byte {f}")
            f = colon + 1 + int(digits)
            if f > size:
                raise BencodeError(f"string at byte {colon - len(digits)} runs past the end of the data (truncated?)")
            out[key] = data[colon + 1 : f]
        elif c == 105:
            colon = find(b"e", f + 1)  # the end of a length or a count: canonical and positive, read here
            if colon > 0 and (digits := data[f + 1 : colon]).isdigit() and (digits[0] != 48 or colon == f + 2):
                out[key] = int(digits)
                f = colon + 1
            else:
                out[key], f = _int(data, f)
        elif c == 100:
            out[key], f = _dict(data, f, depth + 1)
        elif c == 108:
            out[key], f = _list(data, f, depth + 1)
        else:
            raise BencodeError(f"unexpected byte {data[f:f + 1]!r} at byte {f}")
    return out, f + 1


def _list(data: bytes, f: int, depth: int) -> tuple[list[Any], int]:
    if depth > MAX_DEPTH:
        raise BencodeError("nested too deeply")
    size = len(data)
    find = data.find
    out: list[Any] = []
    append = out.append
    f += 1
    while (c := data[f]) != 101:  # e
        if 48 <= c <= 57:
            colon = find(b":", f, f + _LEN_DIGITS + 1)
            if colon < 0 or not (digits := data[f:colon]).isdigit() or (c == 48 and colon != f + 1):
                raise BencodeError(f"invalid string length at byte {f}")
            f = colon + 1 + int(digits)
            if f > size:
                raise BencodeError(f"string at byte {colon - len(digits)} runs past the end of the data (truncated?)")
            append(data[colon + 1 : f])
        else:
            value, f = _value(data, f, depth + 1)
            append(value)
    return out, f + 1
