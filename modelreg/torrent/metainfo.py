"""Read .torrent files: v1 (BEP 3), v2 and hybrid (BEP 52), pad files (BEP 47), web seeds (BEP 17, 19).

:meth:`Torrent.from_bytes` checks everything a registry needs to trust and raises
:class:`~modelreg.errors.TorrentError` (naming the file and the problem) for anything else.

The module is a little over 400 lines on purpose: the types (:class:`Torrent`, :class:`FileEntry`) and the
one parser that validates untrusted bytes into them stay together, so every check a torrent passes is
in one file (the path-component rule is shared: :mod:`modelreg.paths`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from modelreg.errors import TorrentError
from modelreg.fsutil import read_regular
from modelreg.paths import component_problem
from modelreg.torrent import bencode as bencoding

#: Largest .torrent file read (from disk or a site): the biggest public ones (v2 piece layers of 100 GB
#: models) are a few MiB.
TORRENT_MAX_BYTES = 256 << 20
#: Largest file or torrent we accept: 1 PiB. Anything bigger is a corrupt or hostile file.
MAX_SIZE = 1 << 50
#: Piece lengths libtorrent accepts: 16 KiB (BEP 52's block) for v2; any positive size up to 512 MiB for v1.
MIN_V2_PIECE_LENGTH = 16 * 1024
MAX_PIECE_LENGTH = 512 * 1024 * 1024
_LEGACY_PAD_PREFIX = "_____padding_file_"


class FileEntry(NamedTuple):
    """One file of a torrent.

    ``path`` is relative to the torrent's folder (``info.name``) for a multi-file torrent and is
    ``(name,)`` for a single-file one. ``offset`` is the file's first byte in the torrent's piece
    space (the v1 byte stream, pad files included).

    A named tuple (immutable, as a frozen dataclass would be) because a build makes one per file of every
    torrent, twice (parse and render), and a named tuple is made in a quarter of a frozen dataclass's time.
    """

    path: tuple[str, ...]
    size: int
    offset: int
    pieces_root: bytes | None = None
    is_pad: bool = False
    attr: str = ""

    @property
    def path_str(self) -> str:
        return "/".join(self.path)


@dataclass(frozen=True)
class Torrent:
    """A decoded .torrent file. Pad files are in ``layout`` but never in ``files`` or ``total_size``."""

    name: str
    infohash_v1: str | None
    infohash_v2: str | None
    piece_length: int
    num_pieces: int
    files: tuple[FileEntry, ...]
    layout: tuple[FileEntry, ...]
    total_size: int
    single_file: bool
    meta_version: int
    webseeds: tuple[str, ...] = ()
    httpseeds: tuple[str, ...] = ()
    tracker_tiers: tuple[tuple[str, ...], ...] = ()
    private: bool = False
    comment: str | None = None
    created_by: str | None = None
    creation_date: int | None = None
    source: str | None = None
    pieces: bytes = field(default=b"", repr=False)
    piece_layers: dict[bytes, bytes] = field(default_factory=dict, repr=False)
    info_bytes: bytes = field(default=b"", repr=False)
    raw: bytes = field(default=b"", repr=False)

    @property
    def trackers(self) -> tuple[str, ...]:
        """Every tracker once, tier order kept."""
        return tuple(dict.fromkeys(url for tier in self.tracker_tiers for url in tier))

    @property
    def is_hybrid(self) -> bool:
        return self.infohash_v1 is not None and self.infohash_v2 is not None

    @property
    def largest_file(self) -> FileEntry | None:
        return max(self.files, key=lambda f: f.size, default=None)

    @classmethod
    def read(cls, path: str | Path) -> Torrent:
        """Read and check a .torrent file: a regular file (links followed) of at most :data:`TORRENT_MAX_BYTES`,
        so a FIFO never hangs the reader and a huge file never fills the memory. Every command reads torrent
        files here (the catalog, verify, mirror, get, the gateway's mirror cache).

        Raises:
            TorrentError: the file cannot be read, is not a regular file, is too large, or is not a valid
                torrent (names the file and the problem).
        """
        try:
            data = read_regular(path, TORRENT_MAX_BYTES, "torrent")
        except OSError as exc:
            raise TorrentError(path, f"cannot read the file: {exc.strerror or exc}") from exc
        return cls.from_bytes(data, source=str(path))

    @classmethod
    def from_bytes(cls, data: bytes, source: str | None = None) -> Torrent:
        """Decode and check torrent bytes; ``source`` names the file in error messages."""
        return _Parser(data, source).parse()


def torrent_with_extras(
    torrent: Torrent, trackers: Iterable[str] = (), webseeds: Iterable[str] = ()
) -> bytes:
    """The torrent's bytes with more trackers (a new tier each) and web seeds appended.

    The ``info`` dict is copied byte for byte, so both infohashes stay the same.
    """
    new_trackers = [t for t in trackers if t not in torrent.trackers]
    new_seeds = [w for w in webseeds if w not in torrent.webseeds]
    if not new_trackers and not new_seeds:
        return torrent.raw
    top, _ = bencoding.decode_torrent(torrent.raw)
    top.pop(b"info")
    if new_trackers:
        tiers = [list(t) for t in torrent.tracker_tiers] + [[t] for t in new_trackers]
        top[b"announce-list"] = [[u.encode() for u in tier] for tier in tiers]
        top.setdefault(b"announce", tiers[0][0].encode())
    if new_seeds:
        top[b"url-list"] = [u.encode() for u in (*torrent.webseeds, *new_seeds)]
    # Keys are sorted in a bencoded dict; splice the original info bytes in at their place.
    out = [b"d"]
    items = sorted([*top.items(), (b"info", None)])
    for key, value in items:
        out.append(b"%d:%s" % (len(key), key))
        out.append(torrent.info_bytes if key == b"info" else bencoding.encode(value))
    out.append(b"e")
    return b"".join(out)


class _Parser:
    """One pass over a torrent's decoded dicts; each check raises TorrentError with the file's name."""

    def __init__(self, data: bytes, source: str | None):
        self.data = data
        self.source = source
        #: Each path component already accepted, bytes to text: a torrent repeats its folders' names, and a
        #: hybrid one names every file twice (v1 'files', v2 'file tree').
        self.names: dict[bytes, str] = {}

    def fail(self, problem: str) -> TorrentError:
        return TorrentError(self.source, problem)

    def parse(self) -> Torrent:
        if not self.data:
            raise self.fail("the file is empty")
        try:
            top, span = bencoding.decode_torrent(self.data)
        except bencoding.BencodeError as exc:
            raise self.fail(f"not a valid torrent (bencode): {exc}") from None
        if span is None:
            raise self.fail("no 'info' dictionary: this is not a .torrent file")
        info = top[b"info"]
        if not isinstance(info, dict):
            raise self.fail("'info' is not a dictionary")
        info_bytes = self.data[span[0] : span[1]]

        meta_version = self.opt_int(info, b"meta version", 1)
        if meta_version not in (1, 2):
            raise self.fail(f"unsupported 'meta version' {meta_version} (modelreg reads 1 and 2)")
        has_v1 = b"pieces" in info
        has_v2 = meta_version == 2
        if not has_v1 and not has_v2:
            raise self.fail("'info' has neither 'pieces' (v1) nor 'meta version' 2 (v2)")

        name = self.text(info, b"name", required=True)
        self.check_component(name, "name")
        piece_length = self.int_(info, b"piece length")
        if not 0 < piece_length <= MAX_PIECE_LENGTH:
            raise self.fail(f"'piece length' {piece_length} is out of range (1 B to 512 MiB)")
        if has_v2 and (piece_length < MIN_V2_PIECE_LENGTH or piece_length & (piece_length - 1)):
            raise self.fail(f"'piece length' {piece_length} must be a power of two of at least 16 KiB for v2")

        v2_files = self.v2_files(info) if has_v2 else None
        single = b"files" not in info if has_v1 else _v2_single(info)
        if single and not has_v1:
            name = v2_files[0][0][0]  # libtorrent names a single-file v2 torrent after its file
        if has_v1:
            layout = self.v1_layout(info, name)
            pieces = info[b"pieces"]
            if not isinstance(pieces, bytes) or len(pieces) % 20:
                raise self.fail("'pieces' is not a string of 20-byte SHA-1 hashes")
            stream = sum(f.size for f in layout)
            num_pieces = len(pieces) // 20
            if num_pieces != math.ceil(stream / piece_length):
                raise self.fail(
                    f"'pieces' holds {num_pieces} hashes but the files need {math.ceil(stream / piece_length)}"
                )
            if v2_files is not None:
                layout = self.join_hybrid(layout, v2_files)
        else:
            pieces = b""
            layout = self.v2_layout(v2_files, piece_length)
            num_pieces = sum(math.ceil(f.size / piece_length) for f in layout if not f.is_pad)

        piece_layers = self.piece_layers(top, layout, piece_length) if has_v2 else {}
        files = tuple(f for f in layout if not f.is_pad)
        total = sum(f.size for f in files)
        if total > MAX_SIZE:
            raise self.fail(f"total size {total} bytes is absurd (over 1 PiB)")
        return Torrent(
            name=name,
            infohash_v1=hashlib.sha1(info_bytes).hexdigest() if has_v1 else None,
            infohash_v2=hashlib.sha256(info_bytes).hexdigest() if has_v2 else None,
            piece_length=piece_length,
            num_pieces=num_pieces,
            files=files,
            layout=tuple(layout),
            total_size=total,
            single_file=single,
            meta_version=meta_version,
            webseeds=self.url_list(top, b"url-list"),
            httpseeds=self.url_list(top, b"httpseeds"),
            tracker_tiers=self.trackers(top),
            private=self.opt_int(info, b"private", 0) == 1,
            comment=self.loose_text(top, b"comment"),
            created_by=self.loose_text(top, b"created by"),
            creation_date=top.get(b"creation date") if isinstance(top.get(b"creation date"), int) else None,
            source=self.source,
            pieces=pieces,
            piece_layers=piece_layers,
            info_bytes=info_bytes,
            raw=self.data,
        )

    # -- field helpers -------------------------------------------------------------------------

    def int_(self, d: dict, key: bytes, where: str = "info") -> int:
        value = d.get(key)
        if value is None:
            raise self.fail(f"'{key.decode()}' is missing from {where}")
        if not isinstance(value, int):
            raise self.fail(f"'{key.decode()}' in {where} is not an integer")
        return value

    def opt_int(self, d: dict, key: bytes, default: int) -> int:
        return self.int_(d, key) if key in d else default

    def text(self, d: dict, key: bytes, required: bool = False, where: str = "info") -> str:
        """A UTF-8 string, preferring the ``<key>.utf-8`` variant some clients write."""
        for k in (key + b".utf-8", key):
            value = d.get(k)
            if value is None:
                continue
            if not isinstance(value, bytes):
                raise self.fail(f"'{k.decode()}' in {where} is not a string")
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                if k == key:
                    raise self.fail(f"'{key.decode()}' in {where} is not valid UTF-8: {value!r}") from None
        if required:
            raise self.fail(f"'{key.decode()}' is missing from {where}")
        return ""

    def loose_text(self, d: dict, key: bytes) -> str | None:
        """Free-form metadata: shown, never trusted; a wrong type is ignored rather than fatal."""
        value = d.get(key)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else None

    def check_component(self, part: str, what: str) -> None:
        problem = component_problem(part)
        if problem:
            raise self.fail(f"unsafe {what} {part!r}: {problem}")

    def size(self, value: Any, what: str) -> int:
        if not isinstance(value, int):
            raise self.fail(f"'length' of {what} is not an integer")
        if value < 0:
            raise self.fail(f"'length' of {what} is negative ({value})")
        if value > MAX_SIZE:
            raise self.fail(f"'length' of {what} is absurd ({value} bytes, over 1 PiB)")
        return value

    def path(self, entry: dict, index: int) -> tuple[str, ...]:
        raw = entry.get(b"path.utf-8", entry.get(b"path"))
        if not isinstance(raw, list) or not raw:
            raise self.fail(f"file {index} has no 'path' list")
        names = self.names
        parts = []
        for part in raw:
            if not isinstance(part, bytes):
                raise self.fail(f"file {index} has a path component that is not a string")
            parts.append(names.get(part) or self.component(part, index))
        return tuple(parts)

    def component(self, raw: bytes, index: int | None) -> str:
        """The text of a path component not met yet in this torrent, checked and remembered in ``names``;
        ``index`` is the v1 file's number, None for a name in the v2 'file tree'."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail(f"file {index} has a path component that is not UTF-8: {raw!r}" if index is not None
                            else f"'file tree' name is not UTF-8: {raw!r}") from None
        self.check_component(text, f"path component in file {index}" if index is not None
                             else "path component in 'file tree'")
        self.names[raw] = text
        return text

    # -- v1 ------------------------------------------------------------------------------------

    def v1_layout(self, info: dict, name: str) -> list[FileEntry]:
        if b"files" not in info:
            return [FileEntry((name,), self.size(info.get(b"length"), "the single file"), 0)]
        files = info[b"files"]
        if not isinstance(files, list) or not files:
            raise self.fail("'files' is not a non-empty list")
        layout, offset = [], 0
        append = layout.append
        for i, entry in enumerate(files):
            if not isinstance(entry, dict):
                raise self.fail(f"file {i} is not a dictionary")
            size = entry.get(b"length")
            if type(size) is not int or not 0 <= size <= MAX_SIZE:
                size = self.size(size, f"file {i}")  # raises, naming the problem (or takes an int subclass)
            path = self.path(entry, i)
            attr = entry.get(b"attr")
            attr = attr.decode("ascii", "replace") if isinstance(attr, bytes) else ""
            pad = "p" in attr or path[0] == ".pad" or path[-1].startswith(_LEGACY_PAD_PREFIX)
            append(FileEntry(path, size, offset, None, pad, attr))
            offset += size
        if offset > MAX_SIZE:
            raise self.fail(f"total size {offset} bytes is absurd (over 1 PiB)")
        return layout

    # -- v2 ------------------------------------------------------------------------------------

    def v2_files(self, info: dict) -> list[tuple[tuple[str, ...], int, bytes | None]]:
        tree = info.get(b"file tree")
        if not isinstance(tree, dict) or not tree:
            raise self.fail("'file tree' is missing or empty in a v2 torrent")
        out: list[tuple[tuple[str, ...], int, bytes | None]] = []
        self.walk_tree(tree, (), out)
        return out

    def walk_tree(self, node: dict, prefix: tuple[str, ...], out: list) -> None:
        for key, child in node.items():
            if not isinstance(child, dict):
                raise self.fail(f"'file tree' entry under {'/'.join(prefix) or 'the root'} is not a dictionary")
            if key == b"":
                if not prefix:
                    raise self.fail("'file tree' has a file with an empty name")
                size = self.size(child.get(b"length"), "/".join(prefix))
                root = child.get(b"pieces root")
                if size and (not isinstance(root, bytes) or len(root) != 32):
                    raise self.fail(f"file {'/'.join(prefix)} has no 32-byte 'pieces root'")
                out.append((prefix, size, root if size else None))
                continue
            part = self.names.get(key) or self.component(key, None)
            if len(prefix) >= bencoding.MAX_DEPTH:
                raise self.fail("'file tree' is nested too deeply")
            self.walk_tree(child, prefix + (part,), out)

    def v2_layout(self, v2_files: list, piece_length: int) -> list[FileEntry]:
        """v2-only: every file starts on a piece boundary (libtorrent adds implicit pad files)."""
        layout, offset = [], 0
        for path, size, root in v2_files:
            layout.append(FileEntry(path, size, offset, pieces_root=root))
            offset += size
            gap = -offset % piece_length
            if gap and path != v2_files[-1][0]:
                layout.append(FileEntry((".pad", str(gap)), gap, offset, is_pad=True, attr="p"))
                offset += gap
        return layout

    def join_hybrid(self, layout: list[FileEntry], v2_files: list) -> list[FileEntry]:
        """Hybrid: the v1 file list (with pads) and the v2 file tree must name the same files."""
        real = [f for f in layout if not f.is_pad]
        if [(f.path, f.size) for f in real] != [(p, s) for p, s, _ in v2_files]:
            raise self.fail("hybrid torrent: the v1 'files' and the v2 'file tree' do not list the same files")
        roots = iter(root for _, _, root in v2_files)
        return [f if f.is_pad else FileEntry(f.path, f.size, f.offset, next(roots), False, f.attr) for f in layout]

    def piece_layers(self, top: dict, layout: list[FileEntry], piece_length: int) -> dict[bytes, bytes]:
        layers = top.get(b"piece layers", {})
        if not isinstance(layers, dict):
            raise self.fail("'piece layers' is not a dictionary")
        for f in layout:
            if f.is_pad or f.size <= piece_length:
                continue
            layer = layers.get(f.pieces_root)
            want = math.ceil(f.size / piece_length) * 32
            if layer is not None and (not isinstance(layer, bytes) or len(layer) != want):
                raise self.fail(f"'piece layers' entry of {f.path_str} is not {want} bytes of hashes")
        return layers

    # -- top level -----------------------------------------------------------------------------

    def url_list(self, top: dict, key: bytes) -> tuple[str, ...]:
        value = top.get(key)
        if value is None:
            return ()
        items = [value] if isinstance(value, bytes) else value
        if not isinstance(items, list) or not all(isinstance(u, bytes) for u in items):
            raise self.fail(f"'{key.decode()}' is neither a URL nor a list of URLs")
        return tuple(dict.fromkeys(u.decode("utf-8", "replace") for u in items if u.strip()))

    def trackers(self, top: dict) -> tuple[tuple[str, ...], ...]:
        tiers = []
        announce_list = top.get(b"announce-list")
        if announce_list is not None:
            if not isinstance(announce_list, list):
                raise self.fail("'announce-list' is not a list of tiers")
            for tier in announce_list:
                if not isinstance(tier, list) or not all(isinstance(u, bytes) for u in tier):
                    raise self.fail("'announce-list' has a tier that is not a list of URLs")
                urls = tuple(u.decode("utf-8", "replace") for u in tier if u.strip())
                if urls:
                    tiers.append(urls)
        announce = top.get(b"announce")
        if announce is not None and not isinstance(announce, bytes):
            raise self.fail("'announce' is not a URL")
        if not tiers and announce and announce.strip():
            tiers.append((announce.decode("utf-8", "replace"),))
        return tuple(tiers)


def _v2_single(info: dict) -> bool:
    tree = info.get(b"file tree")
    if not isinstance(tree, dict) or len(tree) != 1:
        return False
    (child,) = tree.values()
    return isinstance(child, dict) and b"" in child
