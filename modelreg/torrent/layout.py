"""Where each file goes in a torrent: order, BEP 47 pad files and piece length.

The rules follow libtorrent 2.x's ``create_torrent`` so that the same files give
the same info dictionary (and so the same infohashes):

* The piece length, unless given, comes from the total size: 16 KiB doubled once
  for each threshold of libtorrent's size table the total exceeds, up to 16 MiB.
* Torrents with v2 metadata (hybrid and v2-only) sort files by their path,
  compared element by element as UTF-8 bytes. In a torrent with more than one
  file, every non-empty file, the last one included, is followed by a pad file
  of zeros up to the next piece boundary (``.pad/<size>``, attribute ``p``).
  Empty files get no pad and no ``pieces root``.
* v1-only torrents keep the source's order and have no pad files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from modelreg.errors import CreateError
from modelreg.paths import component_problem, path_problem
from modelreg.torrent.source import Source, SourceFile

Mode = Literal["hybrid", "v1", "v2"]
MODES: tuple[Mode, ...] = ("hybrid", "v1", "v2")

#: The v2 Merkle tree leaf size (BEP 52) and the smallest v2 piece length.
BLOCK_SIZE = 16 * 1024

# libtorrent's table: a total size up to entry i gets a piece length of
# 16 KiB << i; above the last entry, 16 MiB.
_SIZE_TABLE = (
    2_684_355,
    10_737_418,
    42_949_673,
    171_798_692,
    687_194_767,
    2_748_779_069,
    10_995_116_278,
    43_980_465_111,
    175_921_860_444,
    703_687_441_777,
)


def default_piece_length(total_size: int) -> int:
    """libtorrent's automatic piece length for ``total_size`` bytes of files."""
    index = 0
    for limit in _SIZE_TABLE:
        if limit >= total_size:
            break
        index += 1
    return BLOCK_SIZE << index


def check_piece_length(piece_length: int, mode: Mode) -> None:
    """Raise :class:`CreateError` unless ``piece_length`` is valid for ``mode``.

    Raises:
        CreateError: ``piece_length`` is not a multiple of 16 KiB, or not a power of two for v2 and hybrid.
    """
    power_of_two = piece_length > 0 and piece_length & (piece_length - 1) == 0
    if mode == "v1":
        if piece_length <= 0 or (piece_length % BLOCK_SIZE and not power_of_two):
            raise CreateError(
                f"piece length {piece_length} is invalid: use a multiple of 16 KiB (16384)"
            )
    elif piece_length < BLOCK_SIZE or not power_of_two:
        raise CreateError(
            f"piece length {piece_length} is invalid for a v2 or hybrid torrent: "
            "use a power of two of at least 16 KiB (16384)"
        )


@dataclass(frozen=True)
class LayoutEntry:
    """A file or pad file at ``offset`` in the v1 byte stream.

    ``source_index`` points into the source's ``files`` (None for pad files).
    """

    path: tuple[str, ...]
    size: int
    offset: int
    is_pad: bool = False
    executable: bool = False
    source_index: int | None = None

    @property
    def path_str(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True)
class Layout:
    """The order and offsets of a torrent's files, pads included."""

    name: str
    mode: Mode
    piece_length: int
    single_file: bool
    entries: tuple[LayoutEntry, ...]

    @property
    def total_size(self) -> int:
        """Length of the v1 byte stream, pad files included."""
        last = self.entries[-1]
        return last.offset + last.size

    @property
    def num_pieces(self) -> int:
        return -(-self.total_size // self.piece_length)

    @property
    def files(self) -> tuple[LayoutEntry, ...]:
        """The real files, in torrent order."""
        return tuple(e for e in self.entries if not e.is_pad)

    @property
    def has_v1(self) -> bool:
        return self.mode != "v2"

    @property
    def has_v2(self) -> bool:
        return self.mode != "v1"


def _sort_key(file: SourceFile) -> list[bytes]:
    return [part.encode("utf-8", "surrogateescape") for part in file.path]


def plan_layout(source: Source, *, piece_length: int | None = None, mode: Mode = "hybrid") -> Layout:
    """Lay out ``source``'s files the way libtorrent's ``create_torrent`` does.

    Raises:
        CreateError: an unknown mode, no files, only empty files, or a bad path component (named).
    """
    if mode not in MODES:
        raise CreateError(f"unknown torrent mode {mode!r}: use one of {', '.join(MODES)}")
    files = list(source.files)
    if not files:
        raise CreateError(f"{source.name}: no files to put in a torrent")
    if source.single_file and len(files) != 1:
        raise CreateError(f"{source.name}: a single-file source must have exactly one file")
    _check_paths(source.name, files)
    data_size = sum(f.size for f in files)
    if data_size == 0:
        raise CreateError(f"{source.name}: all files are empty; a torrent needs at least one byte")
    if piece_length is None:
        piece_length = default_piece_length(data_size)
    check_piece_length(piece_length, mode)

    order = list(range(len(files)))
    if mode != "v1":
        order.sort(key=lambda i: _sort_key(files[i]))
    pad = mode != "v1" and len(files) > 1

    entries: list[LayoutEntry] = []
    offset = 0
    for index in order:
        file = files[index]
        entries.append(LayoutEntry(file.path, file.size, offset, False, file.executable, index))
        offset += file.size
        tail = offset % piece_length
        if pad and file.size > 0 and tail:
            size = piece_length - tail
            entries.append(LayoutEntry((".pad", str(size)), size, offset, True))
            offset += size
    return Layout(source.name, mode, piece_length, source.single_file, tuple(entries))


def _check_paths(name: str, files: list[SourceFile]) -> None:
    check_name(name)
    seen: set[tuple[str, ...]] = set()
    for file in files:
        if file.size < 0:
            raise CreateError(f"{name}/{file.path_str}: negative size {file.size}")
        problem = path_problem(file.path)
        if problem:
            raise CreateError(f"{name}: invalid file path {file.path_str!r}: {problem}")
        if file.path in seen:
            raise CreateError(f"{name}/{file.path_str}: listed twice")
        seen.add(file.path)
    for file in files:
        for depth in range(1, len(file.path)):
            if file.path[:depth] in seen:
                raise CreateError(
                    f"{name}/{'/'.join(file.path[:depth])}: is both a file and a folder"
                )


def check_name(name: str) -> None:
    """Refuse a torrent name that the reader would refuse (:mod:`modelreg.paths`).

    Raises:
        CreateError: naming the name and the problem.
    """
    problem = component_problem(name)
    if problem:
        raise CreateError(f"{name!r} is not a valid torrent name: {problem}")
