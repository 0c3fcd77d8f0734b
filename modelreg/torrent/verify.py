"""Check files on disk against a torrent: every v1 piece and every v2 piece hash.

:func:`verify` streams the files once through the same engine that creates
torrents (:func:`modelreg.torrent.engine.hash_stream`) and compares what it computes
with the torrent's SHA-1 pieces and its v2 piece layers and ``pieces root``\\ s.
A missing or short file is read as zeros so that the other files are still
checked; the report names each problem by file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from modelreg.errors import NotRegularFileError, TorrentError, VerifyError
from modelreg.torrent.engine import ProgressCallback, StreamHashes, hash_stream
from modelreg.torrent.layout import Layout, LayoutEntry
from modelreg.torrent.metainfo import Torrent
from modelreg.torrent.source import READ_CHUNK, SourceFile, open_regular

_ZEROS = bytes(READ_CHUNK)


@dataclass(frozen=True)
class BadPiece:
    """A piece whose hash does not match, seen from one file.

    ``piece`` is the torrent's piece index; ``start``/``end`` the byte range of
    the piece inside ``path`` (end exclusive); ``hashes`` says which hashes
    disagree (``"v1"``, ``"v2"`` or both).
    """

    path: str
    piece: int
    start: int
    end: int
    hashes: tuple[str, ...]


@dataclass(frozen=True)
class WrongSize:
    path: str
    expected: int
    actual: int


@dataclass
class VerifyReport:
    """What :func:`verify` found. ``ok`` is true when every file is whole and every piece good."""

    name: str
    folder: Path
    files_checked: int = 0
    bytes_checked: int = 0
    pieces_checked: int = 0
    missing: list[str] = field(default_factory=list)
    wrong_size: list[WrongSize] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    not_regular: list[str] = field(default_factory=list)
    bad_pieces: list[BadPiece] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_size or self.unreadable or self.not_regular or self.bad_pieces)

    def bad_files(self) -> dict[str, list[BadPiece]]:
        """Bad pieces grouped by file, in torrent order."""
        grouped: dict[str, list[BadPiece]] = {}
        for bad in self.bad_pieces:
            grouped.setdefault(bad.path, []).append(bad)
        return grouped

    def summary(self, max_pieces_per_file: int = 10) -> str:
        """A readable, multi-line account of the problems (or that all is well)."""
        lines: list[str] = []
        for path in self.missing:
            lines.append(f"missing: {path}")
        for wrong in self.wrong_size:
            lines.append(f"wrong size: {wrong.path}: {wrong.actual} bytes, expected {wrong.expected}")
        for path in self.unreadable:
            lines.append(f"unreadable: {path}")
        for path in self.not_regular:
            lines.append(f"not a regular file: {path}")
        for path, pieces in self.bad_files().items():
            lines.append(f"bad pieces: {path}: {len(pieces)} piece(s)")
            for bad in pieces[:max_pieces_per_file]:
                lines.append(
                    f"  piece {bad.piece}: bytes {bad.start}-{bad.end - 1} "
                    f"({' and '.join(bad.hashes)} hash mismatch)"
                )
            if len(pieces) > max_pieces_per_file:
                lines.append(f"  ... and {len(pieces) - max_pieces_per_file} more")
        if not lines:
            return (
                f"OK: {self.name}: {self.files_checked} file(s), {self.bytes_checked} bytes, "
                f"{self.pieces_checked} piece(s) match"
            )
        problems = len(
            {*self.missing, *(w.path for w in self.wrong_size), *self.unreadable, *self.not_regular,
             *self.bad_files()}
        )
        lines.insert(0, f"FAILED: {self.name}: {problems} file(s) with problems in {self.folder}")
        return "\n".join(lines)


class _FolderReader:
    """A :class:`~modelreg.torrent.source.Source` over a torrent's files on disk, forgiving on purpose.

    It always yields exactly the announced size: a missing, unreadable or short
    file is completed with zeros, a long one is cut, and the problem noted.
    """

    def __init__(self, torrent: Torrent, folder: Path, report: VerifyReport) -> None:
        self.name = torrent.name
        self.single_file = torrent.single_file
        self.files = [SourceFile(f.path, f.size) for f in torrent.files]
        self._folder = folder
        self._report = report

    def local_path(self, file: SourceFile) -> Path:
        if self.single_file and not self._folder.is_dir():
            return self._folder
        return self._folder.joinpath(*file.path)

    def chunks(self, file: SourceFile) -> Iterator[bytes]:
        path = self.local_path(file)
        done = 0
        try:
            fh, st = open_regular(path)
        except FileNotFoundError:
            self._report.missing.append(file.path_str)
        except NotRegularFileError:
            self._report.not_regular.append(file.path_str)  # a FIFO would hang the read
        except OSError:
            self._report.unreadable.append(file.path_str)
        else:
            if st.st_size != file.size:
                self._report.wrong_size.append(WrongSize(file.path_str, file.size, st.st_size))
            try:
                with fh:
                    while done < file.size:
                        data = fh.read(min(READ_CHUNK, file.size - done))
                        if not data:
                            break
                        done += len(data)
                        yield data
            except OSError:
                self._report.unreadable.append(file.path_str)
        while done < file.size:
            take = min(len(_ZEROS), file.size - done)
            done += take
            yield memoryview(_ZEROS)[:take]


def _layout_of(torrent: Torrent) -> Layout:
    has_v1 = bool(torrent.pieces)
    has_v2 = torrent.meta_version == 2
    mode = "hybrid" if has_v1 and has_v2 else ("v1" if has_v1 else "v2")
    entries: list[LayoutEntry] = []
    index = 0
    for entry in torrent.layout:
        if entry.is_pad:
            entries.append(LayoutEntry(entry.path, entry.size, entry.offset, is_pad=True))
        else:
            entries.append(LayoutEntry(entry.path, entry.size, entry.offset, source_index=index))
            index += 1
    return Layout(torrent.name, mode, torrent.piece_length, torrent.single_file, tuple(entries))


def verify(
    torrent: Torrent | str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Check the files in ``folder`` against ``torrent`` (a Torrent or a path to one).

    ``folder`` is the torrent's content folder (the one ``modelreg create`` was
    given); for a single-file torrent it may also be the file itself or the
    folder that holds it.

    Raises:
        VerifyError: the torrent cannot be read, or ``folder`` is missing or not a folder where one is needed.
    """
    if not isinstance(torrent, Torrent):
        try:
            torrent = Torrent.read(torrent)
        except TorrentError as exc:
            raise VerifyError(str(exc)) from exc
    root = Path(folder)
    if not root.exists():
        raise VerifyError(f"{root}: no such file or folder")
    if torrent.single_file and root.is_dir():
        root = root / torrent.name
    elif not torrent.single_file and not root.is_dir():
        raise VerifyError(f"{root}: not a folder (the torrent {torrent.name!r} has several files)")

    report = VerifyReport(torrent.name, root)
    layout = _layout_of(torrent)
    reader = _FolderReader(torrent, root, report)
    hashes = hash_stream(reader, layout, progress=progress)
    report.files_checked = len(reader.files)
    report.bytes_checked = torrent.total_size
    report.pieces_checked = torrent.num_pieces
    absent = set(report.missing) | set(report.unreadable) | set(report.not_regular)
    report.bad_pieces = [bad for bad in _compare(torrent, layout, hashes) if bad.path not in absent]
    return report


def _compare(torrent: Torrent, layout: Layout, hashes: StreamHashes) -> list[BadPiece]:
    plen = torrent.piece_length
    bad: dict[tuple[str, int], tuple[int, int, set[str]]] = {}

    def mark(path: str, piece: int, start: int, end: int, kind: str) -> None:
        key = (path, piece)
        if key not in bad:
            bad[key] = (start, end, set())
        bad[key][2].add(kind)

    if hashes.pieces is not None:
        computed, expected = hashes.pieces, torrent.pieces
        for piece in range(len(expected) // 20):
            if computed[piece * 20 : piece * 20 + 20] == expected[piece * 20 : piece * 20 + 20]:
                continue
            lo, hi = piece * plen, (piece + 1) * plen
            for entry in layout.entries:
                if entry.is_pad or entry.size == 0:
                    continue
                start, end = max(lo, entry.offset), min(hi, entry.offset + entry.size)
                if start < end:
                    mark(entry.path_str, piece, start - entry.offset, end - entry.offset, "v1")

    for index, entry in enumerate(layout.entries):
        file_hashes = hashes.files.get(index)
        if file_hashes is None or file_hashes.pieces_root is None:
            continue
        original = torrent.layout[index]
        got = file_hashes.piece_hashes
        layer = torrent.piece_layers.get(original.pieces_root) if original.pieces_root else None
        if entry.size > plen and layer is not None:
            mismatched = [j for j, h in enumerate(got) if h != layer[j * 32 : j * 32 + 32]]
        elif file_hashes.pieces_root == original.pieces_root:
            mismatched = []
        else:
            # One piece, or no piece layer to tell which piece is bad: all are suspect.
            mismatched = list(range(len(got)))
        first = entry.offset // plen
        for j in mismatched:
            mark(entry.path_str, first + j, j * plen, min((j + 1) * plen, entry.size), "v2")

    position = {entry.path_str: i for i, entry in enumerate(layout.entries)}
    return [
        BadPiece(path, piece, start, end, tuple(sorted(kinds)))
        for (path, piece), (start, end, kinds) in sorted(
            bad.items(), key=lambda item: (position[item[0][0]], item[0][1])
        )
    ]
