"""Make a .torrent from a :class:`~modelreg.torrent.source.Source`, byte for byte like libtorrent.

Given the same files, piece length, web seeds and trackers, the info dictionary
is the one libtorrent's ``create_torrent`` makes, so the v1 and v2 infohashes
match. There is no creation date: the same input always gives the same bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import bencodepy

from modelreg import __version__
from modelreg.errors import CreateError
from modelreg.fsutil import atomic_write_bytes
from modelreg.torrent.engine import ProgressCallback, StreamHashes, hash_stream
from modelreg.torrent.layout import Layout, Mode, check_name, plan_layout
from modelreg.torrent.source import LocalSource, Source, SourceFile

__all__ = [
    "LocalSource",
    "Source",
    "SourceFile",
    "build_metainfo",
    "create_torrent",
    "write_torrent",
]

DEFAULT_CREATED_BY = f"modelreg {__version__}"


def create_torrent(
    source: Source,
    *,
    piece_length: int | None = None,
    mode: Mode = "hybrid",
    webseeds: Sequence[str] = (),
    trackers: Sequence[str] = (),
    name: str | None = None,
    comment: str | None = None,
    created_by: str | None = DEFAULT_CREATED_BY,
    progress: ProgressCallback | None = None,
) -> bytes:
    """Hash ``source`` and return the bencoded torrent.

    ``mode`` is ``"hybrid"`` (v1 + v2, libtorrent's default), ``"v1"`` or
    ``"v2"``. ``piece_length`` defaults to libtorrent's choice for the total
    size. Each tracker gets its own tier. ``name`` overrides the source's name.
    ``progress`` is called with the number of bytes read as hashing goes.
    """
    layout = plan_layout(source, piece_length=piece_length, mode=mode)
    if name is not None:
        layout = _renamed(layout, name)
    hashes = hash_stream(source, layout, progress=progress)
    return bencodepy.encode(
        build_metainfo(
            layout,
            hashes,
            webseeds=webseeds,
            trackers=trackers,
            comment=comment,
            created_by=created_by,
        )
    )


def _renamed(layout: Layout, name: str) -> Layout:
    check_name(name)
    entries = layout.entries
    if layout.single_file:
        entries = (entries[0].__class__(**{**entries[0].__dict__, "path": (name,)}),)
    return Layout(name, layout.mode, layout.piece_length, layout.single_file, entries)


def build_metainfo(
    layout: Layout,
    hashes: StreamHashes,
    *,
    webseeds: Sequence[str] = (),
    trackers: Sequence[str] = (),
    comment: str | None = None,
    created_by: str | None = DEFAULT_CREATED_BY,
) -> dict[bytes, object]:
    """The torrent dictionary for ``layout`` and its computed ``hashes``."""
    info: dict[bytes, object] = {
        b"name": layout.name.encode(),
        b"piece length": layout.piece_length,
    }
    if layout.has_v1:
        assert hashes.pieces is not None
        info[b"pieces"] = hashes.pieces
        if layout.single_file:
            entry = layout.entries[0]
            info[b"length"] = entry.size
            if entry.executable:
                info[b"attr"] = b"x"
        else:
            info[b"files"] = [_v1_file(entry) for entry in layout.entries]
    metainfo: dict[bytes, object] = {}
    if layout.has_v2:
        info[b"meta version"] = 2
        info[b"file tree"] = _file_tree(layout, hashes)
        metainfo[b"piece layers"] = {
            h.pieces_root: h.piece_layer
            for h in hashes.files.values()
            if h.pieces_root is not None and h.size > layout.piece_length
        }
    metainfo[b"info"] = info

    urls = list(dict.fromkeys(t for t in trackers if t))
    if urls:
        metainfo[b"announce"] = urls[0].encode()
    if len(urls) > 1:
        metainfo[b"announce-list"] = [[url.encode()] for url in urls]
    if comment:
        metainfo[b"comment"] = comment.encode()
    if created_by:
        metainfo[b"created by"] = created_by.encode()
    seeds = [w.encode() for w in webseeds if w]
    if len(seeds) == 1:
        metainfo[b"url-list"] = seeds[0]
    elif seeds:
        metainfo[b"url-list"] = seeds
    return metainfo


def _v1_file(entry) -> dict[bytes, object]:
    item: dict[bytes, object] = {
        b"length": entry.size,
        b"path": [part.encode() for part in entry.path],
    }
    if entry.is_pad:
        item[b"attr"] = b"p"
    elif entry.executable:
        item[b"attr"] = b"x"
    return item


def _file_tree(layout: Layout, hashes: StreamHashes) -> dict[bytes, object]:
    tree: dict[bytes, object] = {}
    for index, entry in enumerate(layout.entries):
        if entry.is_pad:
            continue
        node = tree
        path = (layout.name,) if layout.single_file else entry.path
        for part in path:
            node = node.setdefault(part.encode(), {})  # type: ignore[assignment]
        leaf: dict[bytes, object] = {b"length": entry.size}
        if entry.executable:
            leaf[b"attr"] = b"x"
        file_hashes = hashes.files[index]
        if file_hashes.pieces_root is not None:
            leaf[b"pieces root"] = file_hashes.pieces_root
        node[b""] = leaf
    return tree


def write_torrent(data: bytes, path: str | os.PathLike[str]) -> Path:
    """Write ``data`` to ``path`` atomically (a temporary file in the same folder, then a rename).

    On any failure the destination is left as it was and no temporary file remains.

    Raises:
        CreateError: the file cannot be written (names it and says why).
    """
    target = Path(path)
    try:
        atomic_write_bytes(target, data)
        os.chmod(target, 0o644)
    except OSError as exc:
        raise CreateError(f"{target}: cannot write: {exc.strerror or exc}") from exc
    return target
