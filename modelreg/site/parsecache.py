"""A cache of parsed torrents, so that a rebuild reads only the torrents that changed.

Entries are keyed by the file's absolute path, size and ``st_mtime_ns`` (as make and git do), and keep
the SHA-256 of the file's bytes, which the render step uses to decide whether a model's pages are
still current. Cached torrents are kept without their piece hashes and raw bytes (the site never shows
them); :func:`full_torrent` reads the file again where a served torrent must be written. The cache is
a local pickle written only by modelreg; an unreadable or foreign-version file is ignored and rebuilt.
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import io
import os
import pickle
from pathlib import Path

from ..fsutil import atomic_write_bytes
from ..torrent import FileEntry, Torrent

CACHE_VERSION = 2


class _Pickler(pickle.Pickler):
    """Pickles a FileEntry as a constructor call with positional fields: about twice as fast to load."""

    dispatch_table = copyreg.dispatch_table.copy()
    dispatch_table[FileEntry] = lambda f: (FileEntry, (f.path, f.size, f.offset, None, f.is_pad, f.attr))


class ParseCache:
    """``read(path)`` for :func:`~modelreg.catalog.load_catalog` that remembers what it parsed."""

    def __init__(self, file: Path | None):
        self.file = file
        self.entries: dict[str, tuple[int, int, str, Torrent]] = {}
        self.digests: dict[str, str] = {}
        self.hits = self.misses = 0
        if file is not None:
            self.entries = _load(file)
        self._loaded = len(self.entries)

    def read(self, path: Path) -> Torrent:
        key = os.path.abspath(path)
        st = os.stat(key)
        entry = self.entries.get(key)
        if entry is not None and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            self.hits += 1
            self.digests[key] = entry[2]
            return entry[3]
        self.misses += 1
        torrent = Torrent.read(path)
        digest = hashlib.sha256(torrent.raw).hexdigest()
        self.entries[key] = (st.st_size, st.st_mtime_ns, digest, slim(torrent))
        self.digests[key] = digest
        return torrent

    def digest(self, path: Path) -> str | None:
        return self.digests.get(os.path.abspath(path))

    def save(self) -> None:
        """Write the entries of the torrents read in this run (forgetting removed ones)."""
        if self.file is None or (self.misses == 0 and len(self.digests) == self._loaded):
            return  # nothing new, nothing gone
        kept = {k: v for k, v in self.entries.items() if k in self.digests}
        buffer = io.BytesIO()
        _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump((CACHE_VERSION, kept))
        atomic_write_bytes(self.file, buffer.getvalue())


def slim(torrent: Torrent) -> Torrent:
    """The torrent without what the site does not show: layout with pads, pieces, piece layers, info, raw.

    Files keep path, size and offset; their v2 ``pieces_root`` is dropped when pickled.
    """
    return dataclasses.replace(torrent, layout=(), pieces=b"", piece_layers={}, info_bytes=b"", raw=b"")


def full_torrent(torrent: Torrent, path: Path) -> Torrent:
    """The complete torrent: itself, or read again from ``path`` when it came slim from the cache."""
    return torrent if torrent.raw else Torrent.read(path)


def _load(file: Path) -> dict:
    try:
        version, entries = pickle.loads(file.read_bytes())
    except FileNotFoundError:
        return {}
    except Exception:  # a damaged cache is only a slower build
        return {}
    return entries if version == CACHE_VERSION and isinstance(entries, dict) else {}
