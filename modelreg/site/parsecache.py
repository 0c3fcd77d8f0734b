"""A cache of parsed torrents and of the catalog's entries, so that a rebuild reads only the torrents that changed.

Entries are keyed by the file's absolute path, size, ``st_mtime_ns`` (as make and git do), inode and
``st_ctime_ns`` (a file renamed over another, with its size and modification time, as ``rsync`` does), and keep
the SHA-256 of the file's bytes, which the render step uses to decide whether a model's pages are
still current. Cached torrents are kept without their piece hashes and raw bytes (the site never shows
them); :func:`full_torrent` reads the file again where a served torrent must be written. The cache is a
SQLite file (:class:`~modelreg.site.cachedb.CacheDB`) of plain data in ``marshal`` format (fast, and loading it runs no code),
one row per torrent; a damaged file, or one written by another Python or for another shape of
:class:`Torrent`, is ignored and rebuilt.

Beside them it is the catalog's store (:class:`~modelreg.registry.catalog.CatalogStore`): each torrent's
model as :func:`~modelreg.registry.catalog.load_catalog` built it, without the file list, under the stamp
of every file it was made from, and each registry folder's names under the folder's identity. Both are
read all at once (a rebuild of 100,000 models asks for every one): the entries as columns, a base and a
journal of the entries changed since (:class:`_Columns`), the torrents' fields among them loaded only
when a model's are first asked for (:class:`_Recalled`: a rebuild renders a few), the folders' names from
a few hundred rows of a few hundred each, so that a rebuild after one change rewrites a row or two. A
walk of the registry that can be kept whole (:class:`~modelreg.registry.catalog.Walk`) is one row: its
paths, written when the walk is made, and its folders' stats, rewritten when one changed.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import hashlib
import marshal
import operator
import os
import re
import signal
import sys
import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from itertools import chain, compress, count, repeat
from pathlib import Path
from typing import Any, NamedTuple

from modelreg.errors import ModelregError
from modelreg.fsutil import ReadAhead
from modelreg.registry.catalog import REPO_ID, REPO_PART, Entry, Model, Names, Walk, is_revision, read_torrent
from modelreg.site.cachedb import CacheDB
from modelreg.torrent.metainfo import FileEntry, Torrent

CACHE_VERSION = 12
_FIELDS = tuple(f.name for f in dataclasses.fields(Torrent))
_DROPPED = {"files", "layout", "pieces", "piece_layers", "info_bytes", "raw"}
_KEPT = tuple(name for name in _FIELDS if name not in _DROPPED)
#: The catalog's entries keep the infohashes apart (the catalog tells duplicates by them), and these fields
#: of the torrent together, read only where one is asked for (:class:`_Recalled`).
_HASHES = ("infohash_v1", "infohash_v2")
_LIGHT = tuple(name for name in _KEPT if name not in _HASHES)
#: Written first in the file; a cache with any other header is not read.
_HEADER = (CACHE_VERSION, tuple(sys.version_info[:2]), _FIELDS)


class ParseCache:
    """``read(path)`` for :func:`~modelreg.registry.catalog.load_catalog` that remembers what it parsed, and
    the catalog's store (``recall``, ``remember``: see :class:`~modelreg.registry.catalog.CatalogStore`).

    The parsed torrents live in a SQLite file (``file``), read row by row as torrents are asked for; the
    catalog's entries and folders are read at once. All is written in one transaction that :meth:`save`
    commits: a build that fails never commits.
    """

    def __init__(self, file: Path | None, readonly: bool = False):
        self.file = file
        self.db = CacheDB(file, _SCHEMA, _HEADER, readonly=readonly)
        self.digests: dict[str, str] = {}
        #: The stat of each torrent read in this run, as :func:`identity`, when it was read: a file whose
        #: stat is still this one holds the bytes parsed (its ctime changes with any write), so they need
        #: not be read and hashed again.
        self.identities: dict[str, tuple[int, int, int, int]] = {}
        self.hits = self.misses = 0
        #: The catalog's entries and the registry's folders' names (see CatalogStore).
        self.entries = _Columns(self.db)
        self.folders = _Bucketed(self.db, "folders")
        #: The paths of the walk recalled (:meth:`recall_walk`), whose row is then not written again.
        self._walk: tuple[list, list, list] | None = None

    def recall_all(self, paths: list[str], stamps: list[tuple | None]) -> list[Entry | None]:
        """The catalog's entry of each of ``paths`` if it was built from files with its very stamp (see
        :class:`~modelreg.registry.catalog.CatalogStore`), checked; None for a path without a stamp, or with
        another or a damaged entry (which leaves the store).

        All are looked for and checked in one call, a field of all entries at a time (:func:`_checked`):
        a rebuild of 100,000 models asks for every one. Each torrent's fields but its infohashes are read
        from the store when the first is asked for (:class:`_Recalled`).
        """
        columns = self.entries.recall(paths)
        entries, hits = _checked(paths, columns, stamps)
        self.entries.found(hits)
        recalled = list(compress(paths, hits))
        self.digests.update(zip(map(absolute, recalled), compress(columns[1], hits), strict=True))
        self.hits += len(recalled)
        return entries

    def remember(self, path: str, stamp: tuple, model: Model) -> None:
        """Keep ``model``'s entry (its torrent was read by this cache: its digest is known)."""
        digest = self.digests.get(os.path.abspath(path))
        if digest is None:
            return
        torrent = model.torrent
        self.entries.put(path, (stamp, digest, model.repo_id, model.revision, model.revision_source, model.sidecar,
                                model.problems, torrent.infohash_v1, torrent.infohash_v2,
                                tuple(getattr(torrent, name) for name in _LIGHT)))

    def recall_folders(self, folders: list[str], identities: list[tuple]) -> list[Names | None]:
        """The names of each of ``folders`` kept under its very identity, checked: single path components
        only; None for any other or a damaged entry (which leaves the store).

        The names of all the folders are checked at once (a level of a registry's walk holds 100,000
        folders); only where that fails is each folder's checked alone.
        """
        left = self.folders.take_all()
        found = [left.pop(folder, None) for folder in folders]
        shaped = [type(raw) is tuple and len(raw) == 4 and raw[0] == identity
                  for raw, identity in zip(found, identities, strict=True)]
        lists = [names for raw, ok in zip(found, shaped, strict=True) if ok for names in raw[1:]]  # type: ignore[index]
        whole = all(type(names) is tuple for names in lists) and _are_names(tuple(chain.from_iterable(lists)))
        recalled: list[Names | None] = []
        for folder, raw, ok in zip(folders, found, shaped, strict=True):
            if ok and (whole or _are_folder_names(raw[1:])):  # type: ignore[index]
                recalled.append(raw[1:])  # type: ignore[index]
                continue
            if raw is not None:
                self.folders.drop(folder)
            recalled.append(None)
        return recalled

    def remember_folder(self, folder: str, identity: tuple, names: Names) -> None:
        self.folders.put(folder, (identity, *names))

    def folder_names(self, folders: list[str]) -> dict[str, Names]:
        """The names kept for each of ``folders`` that has sound ones, whatever their identity (only the
        rows that hold them are read)."""
        found: dict[str, Names] = {}
        for folder, raw in self.folders.peek(folders).items():
            if type(raw) is tuple and len(raw) == 4 and _are_folder_names(raw[1:]):
                found[folder] = raw[1:]  # type: ignore[assignment]
        return found

    def recall_walk(self, top: str) -> Walk | None:
        """The walk of ``top`` kept by :meth:`remember_walk`, if it is sound: its folders ``top`` and
        folders below it, its torrents below them, names where names are kept; else None."""
        row = self.db.row("SELECT paths, stats FROM walks WHERE root = ?", (top,))
        try:
            paths, state = (marshal.loads(row[0]), marshal.loads(row[1])) if row is not None else (None, None)
        except (ValueError, TypeError, EOFError):
            return None
        if not (type(paths) is tuple and len(paths) == 3 and all(type(part) is list for part in paths)
                and type(state) is tuple and len(state) == 2 and type(state[0]) is list and type(state[1]) is dict):
            return None
        (folders, torrents, jsons), (stats, volatile) = paths, state
        if not (folders and folders[0] == top and len(stats) == len(folders)
                and _below(top, folders[1:]) and _below(top, torrents) and all(type(j) is str for j in jsons)
                and all(type(i) is int and 0 <= i < len(folders) and _are_folder_names(names)
                        for i, names in volatile.items())):
            return None
        self._walk = (folders, torrents, jsons)
        return Walk(folders, stats, volatile, torrents, jsons)

    def remember_walk(self, top: str, walk: Walk | None) -> None:
        """Keep the walk of ``top`` (None: none); where its paths are those recalled (the same lists), only
        its stats are written (a rebuild after one change: 4 MB, not 20 at 100,000 models)."""
        if walk is None:
            self.db.write("DELETE FROM walks WHERE root = ?", [(top,)])
            return
        stats = marshal.dumps((walk.stats, walk.volatile))
        recalled = self._walk
        if recalled is not None and all(map(operator.is_, recalled, (walk.folders, walk.torrents, walk.jsons))):
            self.db.write("UPDATE walks SET stats = ? WHERE root = ?", [(stats, top)])
            return
        self.db.write("INSERT OR REPLACE INTO walks VALUES (?, ?, ?)",
                      [(top, marshal.dumps((walk.folders, walk.torrents, walk.jsons)), stats)])

    def prefetch(self, paths: list[str] | list[Path], workers: int | None = None) -> None:
        """Parse the torrents that are not cached yet in worker processes (one per core).

        Only the slim, packed result comes back; a torrent that fails to parse is left for
        :meth:`read`, which raises its error as usual.
        """
        if min(workers or os.cpu_count() or 1, len(paths) // _PER_WORKER) < 2:
            return  # too few to be worth starting processes: not even looked at
        known: dict[str, tuple[int, int]] = {}
        for path, size, mtime, ino, ctime in self.db.rows("SELECT path, size, mtime, ino, ctime FROM torrents"):
            if isinstance(path, str):
                known[path] = (size, mtime, ino, ctime)
        todo = []
        for path in paths:
            key = os.path.abspath(path)
            try:
                st = os.stat(key)
            except OSError:
                continue
            if known.get(key) != identity(st):
                todo.append(key)
        del known
        workers = min(workers or os.cpu_count() or 1, len(todo) // _PER_WORKER)
        if workers < 2:
            return  # not worth starting processes
        with ProcessPoolExecutor(workers, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
            results = pool.map(_parse, todo, chunksize=64)  # the workers are forked before the threads start
            batch = []
            with ReadAhead(todo) as ahead:  # a cold registry is read with many reads in flight
                for done, (key, result) in enumerate(zip(todo, results, strict=True), 1):
                    ahead.used(done)
                    if result is not None:
                        batch.append((key, *result))
                        self.misses += 1
                    if len(batch) >= 512:
                        self._store(batch)
                        batch = []
            self._store(batch)

    def _store(self, rows: list[tuple]) -> None:
        self.db.write("INSERT OR REPLACE INTO torrents VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                      [(key, *identity, digest, marshal.dumps(values), layout)
                       for key, identity, digest, (values, layout) in rows])

    def _cached(self, key: str, st: os.stat_result | _Stat, files: bool) -> Torrent | None:
        """The cached torrent of ``key`` if its entry is for this size and modification time and sound."""
        row = self.db.row("SELECT size, mtime, ino, ctime, digest, light" + (", layout" if files else "")
                          + " FROM torrents WHERE path = ?", (key,))
        if row is None or row[:4] != identity(st):
            return None
        digest = row[4]
        if not (isinstance(digest, str) and len(digest) == 64):
            return None
        try:
            torrent = _unpack((marshal.loads(row[5]), row[6] if files else None), files=files)
        except (ValueError, TypeError, EOFError):  # a damaged or foreign entry: parse the file again
            return None
        self.digests[key] = digest
        # the first read of the run is the one the model's record is made from
        self.identities.setdefault(key, identity(st))
        return torrent

    def committed(self, path: Path, parsed: tuple[int, int, int, int]) -> Torrent | None:
        """The torrent of ``path`` with its files, from the committed cache (as a worker reads it), if its
        entry is for the size and modification time of ``parsed`` (its :func:`identity` when read)."""
        return self._cached(os.path.abspath(path), _Stat(*parsed), files=True)

    def read(self, path: Path) -> Torrent:
        key = os.path.abspath(path)
        st = os.stat(key)
        torrent = self._cached(key, st, files=True)
        if torrent is not None:
            self.hits += 1
            return torrent
        self.misses += 1
        torrent = read_torrent(path)
        digest = hashlib.sha256(torrent.raw).hexdigest()
        self._store([(key, identity(st), digest, _pack(torrent))])
        self.digests[key] = digest
        self.identities[key] = identity(st)
        return torrent

    def read_light(self, path: Path) -> Torrent:
        """:meth:`read`, but a cached torrent comes without its file list (``files`` empty): what a
        catalog of the whole registry holds, while each model's files are read when it is rendered."""
        key = os.path.abspath(path)
        torrent = self._cached(key, os.stat(key), files=False)
        if torrent is not None:
            return torrent
        torrent = self.read(path)
        return _unpack((tuple(getattr(torrent, name) for name in _KEPT), None), files=False)

    def digest(self, path: Path) -> str | None:
        return self.digests.get(os.path.abspath(path))

    def save(self) -> None:
        """Commit the entries of the torrents read in this run, forgetting those not read (removed)."""
        if self.db.count("torrents") != len(self.digests):
            self.db.keep_only("torrents", "path", self.digests)
        self.entries.save()
        self.folders.save()
        self.db.commit()


def absolute(path: str) -> str:
    """``os.path.abspath(path)``, without its cost where it gives the path back (a scan's paths, 100,000 of
    them): absolute, with no empty, ``.`` or ``..`` component and no trailing slash."""
    if os.sep == "/" and path[:1] == "/" and "//" not in path and "/." not in path and not path.endswith("/"):
        return path
    return os.path.abspath(path)


class _Stat(NamedTuple):
    """The fields of a stat result that :func:`identity` keeps."""

    st_size: int
    st_mtime_ns: int
    st_ino: int
    st_ctime_ns: int


def identity(st: os.stat_result | _Stat) -> tuple[int, int, int, int]:
    """What tells a file's bytes unchanged without reading them: size, modification time, inode and
    change time (which no program can set back: any write or rename over the file changes one of them)."""
    return st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns


#: Fewer new torrents than this per worker are parsed in-process.
_PER_WORKER = 200


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent: int) -> None:
    """Worker initializer: end this process when the build that started it dies, even by SIGKILL.

    A killed parent never tells its pool to stop, and its workers would wait on their queue forever.
    On Linux the kernel sends SIGKILL to the worker when the parent's thread that started it ends
    (``prctl(PR_SET_PDEATHSIG)``; the pool's processes are started by the thread that runs the build,
    which waits for them). Everywhere, a watchdog thread also checks once a second that the parent
    is still there (when it is gone, the worker's parent id changes).
    """
    libc_name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
    if libc_name:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was asked for
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _parse(key: str) -> tuple[tuple[int, int, int, int], str, tuple] | None:
    """Worker: (file identity, digest, packed torrent), or None if the file cannot be read or parsed."""
    try:
        st = os.stat(key)
        torrent = read_torrent(key)
        after = os.stat(key)
    except (OSError, ModelregError):
        return None
    if identity(after) != identity(st) or st.st_size != len(torrent.raw):
        return None  # changed while being read: let read() take it
    return identity(st), hashlib.sha256(torrent.raw).hexdigest(), _pack(torrent)


def _pack(torrent: Torrent) -> tuple:
    """The torrent as plain data, without what the site does not show: piece hashes, piece layers, info
    bytes, raw bytes, and each file's v2 pieces root. The layout (pad files included: a file's index as
    aria2c's ``--select-file`` counts it needs them) stays marshalled bytes until the torrent is read: a
    tenth of the memory of the tuples for a cache that holds every torrent of a large registry."""
    files = tuple((f.path, f.size, f.offset, f.is_pad, f.attr) for f in torrent.layout)
    return tuple(getattr(torrent, name) for name in _KEPT), marshal.dumps(files)


def _unpack(packed: tuple, files: bool = True) -> Torrent:
    """The torrent of :func:`_pack`'s tuple.

    Raises:
        ValueError: the tuple is not in the shape :func:`_pack` writes (a damaged cache entry).
    """
    values, blob = packed
    if not isinstance(values, tuple) or len(values) != len(_KEPT):
        raise ValueError("not a packed torrent")
    torrent = _slim(values)
    if files:
        layout = tuple(FileEntry(path, size, offset, None, pad, attr)
                       for path, size, offset, pad, attr in marshal.loads(blob))
        torrent.__dict__.update(files=tuple(f for f in layout if not f.is_pad), layout=layout)
    return torrent


def _slim(values: tuple) -> Torrent:
    """The torrent of its :data:`_KEPT` fields (``values``, as many: the caller checks), without its files,
    pieces or bytes. What ``Torrent(...)`` does (its ``__init__`` only sets each field), in a third of its
    time: a full build reads every torrent from the cache."""
    torrent = _new(Torrent)
    state = torrent.__dict__
    state.update(zip(_KEPT, values, strict=False))
    _slimmed(state)
    return torrent


def _slimmed(state: dict[str, Any]) -> None:
    """Put in a torrent's ``state`` what a cached torrent holds in place of what the site does not show
    (and of its files, until read)."""
    state.update(_SLIM)
    state["piece_layers"] = {}


_SLIM = {"files": (), "layout": (), "pieces": b"", "info_bytes": b"", "raw": b""}
_new = object.__new__


def full_torrent(torrent: Torrent, path: Path) -> Torrent:
    """The complete torrent: itself, or read again from ``path`` when it came slim from the cache."""
    return torrent if torrent.raw else read_torrent(path)


class _Bucketed:
    """Entries of one table (key -> plain data), spread over :data:`_BUCKETS` rows by a hash of their key:
    all read at once (one query, a few hundred ``marshal`` loads), and only the rows whose entries
    changed written back.

    An entry is taken out when asked for; what is never asked for by :meth:`save` is gone (a torrent or
    folder removed) and leaves the table, as do entries dropped (stale, damaged).
    """

    def __init__(self, db: CacheDB, table: str):
        self.db, self.table = db, table
        self.left: dict[str, object] | None = None
        self.fresh: dict[str, object] = {}
        self.dropped: set[str] = set()

    def peek(self, keys: list[str]) -> dict[str, object]:
        """The stored entries of ``keys`` that have one, without taking them (only their rows are read)."""
        buckets: dict[int, list[str]] = {}
        for key in keys:
            buckets.setdefault(_bucket(key), []).append(key)
        found: dict[str, object] = {}
        for bucket, wanted in buckets.items():
            row = self.db.row(f"SELECT entries FROM {self.table} WHERE bucket = ?", (bucket,))
            try:
                entries = marshal.loads(row[0]) if row is not None else None
            except (ValueError, TypeError, EOFError):
                continue
            if isinstance(entries, dict):
                found.update((key, entries[key]) for key in wanted if key in entries)
        return found

    def take_all(self) -> dict[str, object]:
        """The entries not taken yet, to take many at once: an entry popped from it is taken."""
        if self.left is None:
            self.left = self._read()
        return self.left

    def drop(self, key: str) -> None:
        self.dropped.add(key)

    def put(self, key: str, value: object) -> None:
        self.fresh[key] = value

    def _read(self) -> dict[str, object]:
        entries: dict[str, object] = {}
        for blob, in self.db.rows(f"SELECT entries FROM {self.table}"):
            try:
                found = marshal.loads(blob)
            except (ValueError, TypeError, EOFError):  # a damaged row: its entries are made again
                continue
            if isinstance(found, dict):
                entries.update(found)
        return entries

    def save(self) -> None:
        """Write the rows whose entries changed: new ones, and those of entries gone or dropped. Where
        none was taken (none was asked for: a walk kept whole), none is gone."""
        gone = (self.left.keys() if self.left is not None else set()) | self.dropped
        if not self.fresh and not gone:
            return
        buckets: dict[int, list[str]] = {}
        for key in (*gone, *self.fresh):
            buckets.setdefault(_bucket(key), []).append(key)
        rows = []
        for bucket, keys in buckets.items():
            row = self.db.row(f"SELECT entries FROM {self.table} WHERE bucket = ?", (bucket,))
            try:
                entries = marshal.loads(row[0]) if row else {}
            except (ValueError, TypeError, EOFError):
                entries = {}
            if not isinstance(entries, dict):
                entries = {}
            for key in keys:
                entries.pop(key, None)
                if key in self.fresh:
                    entries[key] = self.fresh[key]
            rows.append((bucket, marshal.dumps(entries)))
        self.db.write(f"INSERT OR REPLACE INTO {self.table} VALUES (?, ?)", rows)
        self.left, self.fresh, self.dropped = {}, {}, set()


class _Columns:
    """The catalog's entries (path -> the tuple :meth:`ParseCache.remember` makes), kept as columns: a base
    of every entry's fields, one row of the table per field in the order the paths were last asked for,
    and a journal (one row) of the entries that changed since (None for one gone).

    A rebuild asks for every entry (:meth:`recall`): the base is a few ``marshal`` loads of long lists
    (checked a field at a time, :func:`_checked`), and where the paths are those of the base, in its order,
    nothing is looked up. :meth:`save` writes the journal alone, and the base again only once the journal
    holds a sixteenth of the entries (at 100,000 models the base is some 80 MB, the journal after one
    change a few KB). What :meth:`recall` was not asked for is gone, as are entries found stale or damaged.
    """

    def __init__(self, db: CacheDB):
        self.db = db
        #: Entries of torrents read in this run.
        self.fresh: dict[str, tuple] = {}
        self._base: list[list] | None = None
        self._journal: dict[str, object] = {}
        self._asked: list[str] | None = None
        self._columns: list[list] = []
        self._hits: list[bool] = []
        self._overridden: dict[str, int] = {}

    def recall(self, paths: list[str]) -> list[list]:
        """The stored fields of each of ``paths``, as :data:`_ENTRY_WIDTH` columns aligned with them; a path
        without a stored entry has :data:`_MISSING` for its stamp."""
        base, journal = self._base, self._journal = self._read()
        width, size = _ENTRY_WIDTH, len(paths)
        if base is None:
            columns = [[_MISSING] * size, *([None] * size for _ in range(width - 2)), _Lights(None, size)]
        elif base[0] == paths:  # the base's paths, in its order (a rebuild's usual case): as they are
            base[0] = paths  # the very list: save() knows them the same without comparing them again
            columns = [*(list(column) for column in base[1:-1]), base[-1]] if journal else base[1:]
        else:  # each path's place in the base, and the base's fields picked by it (all at C speed)
            stored = len(base[0])
            where = list(map(dict(zip(base[0], range(stored), strict=True)).get, paths, repeat(stored)))
            columns = [list(map([*column, filler].__getitem__, where))
                       for column, filler in zip(base[1:-1], (_MISSING, *repeat(None, width - 2)), strict=True)]
            columns.append(base[-1].picked(where))
        if journal:
            place = dict(zip(paths, range(size), strict=True))
            for path, raw in journal.items():
                i = place.get(path)
                if i is None:
                    continue
                self._overridden[path] = i
                if type(raw) is tuple and len(raw) == width and _is_light(raw[-1]):  # (checked now: few)
                    for column, value in zip(columns, raw, strict=True):
                        column[i] = value
                else:  # gone since the base was written, or damaged: a miss
                    columns[0][i] = _MISSING
        self._asked, self._columns = paths, columns
        return columns

    def found(self, hits: list[bool]) -> None:
        """Which of the entries :meth:`recall` gave back were used: the others leave the store."""
        self._hits = hits

    def put(self, key: str, value: tuple) -> None:
        self.fresh[key] = value

    def _read(self) -> tuple[list[list] | None, dict[str, object]]:
        """The base (the paths, then a list per field, all as long, the torrents' fields a :class:`_Lights`;
        None where missing or damaged) and the journal (empty where missing or damaged)."""
        rows: dict[str, object] = {}
        for name, value in self.db.rows("SELECT name, value FROM catalog"):
            if name == "light":  # loaded where a torrent's fields are first asked for (_Lights)
                rows[name] = value
                continue
            try:
                rows[name] = marshal.loads(value)
            except (ValueError, TypeError, EOFError):
                continue
        columns: list[Any] = [rows.get(name) for name in _COLUMN_NAMES[:-1]]
        light = rows.get("light")
        base: list | None = None
        if (all(type(column) is list for column in columns) and len(set(map(len, columns))) == 1
                and set(map(type, columns[0])) <= {str} and type(light) is bytes):
            base = [*columns, _Lights(light, len(columns[0]))]
        journal = rows.get("journal")
        if not (type(journal) is dict and set(map(type, journal)) <= {str}):
            journal = {}
        return base, journal  # type: ignore[return-value]

    def save(self) -> None:
        """Write what changed: the journal, or (with no sound base, or a journal grown to a sixteenth of
        the entries) the base again, in the order of the paths asked for, and an empty journal."""
        if self._asked is None:  # never asked: nothing is known gone, the entries read are added
            if self.fresh:
                _, journal = self._read()
                self._write({"journal": {**journal, **self.fresh}})
                self.fresh = {}
            return
        paths, columns, hits, fresh = self._asked, self._columns, self._hits, self.fresh
        if columns and columns[-1].damaged:  # a torrent's stored fields found damaged: the entry is gone
            hits = [hit and i not in columns[-1].damaged for i, hit in enumerate(hits)]
        journal: dict[str, object] = {path: self._journal[path] for path, i in self._overridden.items()
                                      if hits[i] and path not in fresh}
        base_paths = self._base[0] if self._base is not None else []
        if base_paths:
            # entries of the base missed (stale, damaged, the torrent unreadable) or not asked for (gone)
            missed = compress(paths, map(operator.not_, hits))
            if base_paths is paths:  # every path asked for is in the base, and no other
                journal.update(dict.fromkeys(missed))
            else:
                stored = set(base_paths)
                journal.update((path, None) for path in missed if path in stored)
                journal.update(dict.fromkeys(stored.difference(paths)))
        journal.update(fresh)
        if self._base is None or len(journal) > max(_JOURNAL_MAX, len(paths) // 16):
            keep = list(hits)
            if fresh:
                place = dict(zip(paths, range(len(paths)), strict=True))
                for path, raw in fresh.items():
                    i = place.get(path)
                    if i is not None:
                        keep[i] = True
                        for column, value in zip(columns, raw, strict=True):
                            column[i] = value
            lights = list(columns[-1])  # all loaded now: the base is written with them
            keep = list(map(operator.and_, keep, map(operator.is_not, lights, repeat(None))))  # damaged: gone
            rows = {name: list(compress(column, keep))
                    for name, column in zip(_COLUMN_NAMES, (paths, *columns[:-1], lights), strict=True)}
            self._write({**rows, "journal": {}})
        elif journal != self._journal:
            self._write({"journal": journal})
        self._asked, self._columns, self._base, self._journal, self.fresh = None, [], None, {}, {}

    def _write(self, rows: dict[str, object]) -> None:
        for name, value in rows.items():  # one at a time: the build holds one row's bytes, not all of them
            self.db.write("INSERT OR REPLACE INTO catalog VALUES (?, ?)", [(name, marshal.dumps(value))])


#: The fields of a catalog entry (:meth:`ParseCache.remember`), and their rows in the table after the paths.
_COLUMN_NAMES = ("path", "stamp", "digest", "repo_id", "revision", "source", "sidecar", "problems", *_HASHES,
                 "light")
_ENTRY_WIDTH = len(_COLUMN_NAMES) - 1
#: The stamp of a path without a stored entry: equal to no stamp.
_MISSING = object()
#: The journal is folded into the base when it holds more entries than this and a sixteenth of them.
_JOURNAL_MAX = 256


#: The folders' names are spread over this many rows, by a hash of their path.
_BUCKETS = 256


def _bucket(path: str) -> int:
    return zlib.crc32(path.encode("utf-8", "surrogateescape")) % _BUCKETS


def _below(top: str, paths: list) -> bool:
    """Whether each of ``paths`` is text naming something below the folder ``top``: ``top``, a separator and
    path components (none empty, ``.`` or ``..``). Checked on the paths joined, at C speed (a kept walk
    holds 200,000 paths)."""
    prefix = top if top.endswith(os.sep) else top + os.sep
    if not paths:
        return True
    if not set(map(type, paths)) <= {str} or not all(map(operator.methodcaller("startswith", prefix), paths)):
        return False
    seps = [os.sep] if os.altsep is None else [os.sep, os.altsep]
    ends = [*seps, "\0"]
    # a component that is empty, "." or "..": after a separator, before a separator or the NUL that ends
    # each path ("." and ".." looked for only where a component starts with a dot: each pattern is a search
    # of some 10 MB at 100,000 models)
    patterns = [a + middle + b for a in seps for b in ends for middle in ("", ".", "..")]
    if any(pattern in prefix for pattern in patterns):  # in the folder's own path ("/a/../registry")
        text = "\0".join(os.sep + path[len(prefix):] for path in paths) + "\0"  # the parts below it alone
    else:
        text = "\0".join(paths) + "\0"
    if text.count("\0") != len(paths):
        return False  # a NUL in a path
    if not any(sep + "." in text for sep in seps):
        patterns = [a + b for a in seps for b in ends]
    return not any(pattern in text for pattern in patterns)


def _are_folder_names(names: object) -> bool:
    """Whether ``names`` is a folder's :data:`~modelreg.registry.catalog.Names`: its folders, torrents and
    .json names, each a tuple of single path components (:func:`_are_names`)."""
    return type(names) is tuple and len(names) == 3 and all(map(_are_names, names))


def _are_names(names: object) -> bool:
    """Whether ``names`` is a tuple of single path components (what a folder's listing holds)."""
    if not isinstance(names, tuple):
        return False
    if not names:
        return True
    try:
        joined = "/".join(names)  # one check of all the names, not one call per name: 100,000 folders
    except TypeError:
        return False
    return (joined.count("/") == len(names) - 1 and "\0" not in joined and (os.sep == "/" or os.sep not in joined)
            and "" not in names and "." not in names and ".." not in names)


def _checked(paths: list[str], columns: list, stamps: list[tuple | None]) -> tuple[list[Entry | None], list[bool]]:
    """The catalog's entry of each of ``paths`` from its row of the stored ``columns`` (:meth:`_Columns.recall`)
    where it is for its stamp (not None) and of the shape :meth:`ParseCache.remember` writes (and its id and
    revision ones the catalog accepts), else None; and which rows those are.

    The fields of the entries for their stamps are checked a field at a time, at C speed; only where one
    fails are the entries checked one by one (:func:`_entries`), each bad one then a miss. The torrents'
    fields (the last column) are checked where they are read (:class:`_Recalled`).
    """
    hits = list(map(operator.eq, columns[0], stamps))
    if None in stamps:
        hits = [hit and stamp is not None for hit, stamp in zip(hits, stamps, strict=True)]
    picked = [list(compress(column, hits)) for column in columns[1:-1]]
    if not _sound(*picked):
        entries = _entries(paths, columns, stamps)
        return entries, [entry is not None for entry in entries]
    _, repo_ids, revisions, sources, sidecars, problems, v1s, v2s = picked
    entries: list[Entry | None] = [None] * len(stamps)
    lights, new = columns[-1], _new
    for i, path, repo_id, revision, source, sidecar, problem, v1, v2 in zip(
            compress(count(), hits), compress(paths, hits), repo_ids, revisions, sources, sidecars, problems, v1s,
            v2s, strict=True):
        torrent = new(_Recalled)  # what _recalled() does, inline: 100,000 calls in a rebuild
        torrent.__dict__.update(infohash_v1=v1, infohash_v2=v2, _at=(lights, i, path))
        entries[i] = (repo_id, revision, source, sidecar, problem, torrent)
    return entries, hits


def _sound(digests: list, repo_ids: list, revisions: list, sources: list, sidecars: list, problems: list,
           v1s: list, v2s: list) -> bool:
    """Whether every entry given by its fields is of the shape :func:`_entries` accepts, told a field at a
    time: digests of 64 characters, repository ids the catalog accepts, revisions None or ones
    :func:`~modelreg.registry.catalog.is_revision` accepts (commits told by one match), the source text,
    the sidecar a dict, problems a tuple of texts, and infohashes None or text of 40 (v1) and 64 (v2)
    characters."""
    if not (set(map(type, digests)) <= {str} and set(map(len, digests)) <= {64} and set(map(type, repo_ids)) <= {str}
            and set(map(type, sources)) <= {str} and set(map(type, sidecars)) <= {dict}
            and set(map(type, problems)) <= {tuple} and set(map(type, chain.from_iterable(problems))) <= {str}
            and _are_hashes(v1s, 40) and _are_hashes(v2s, 64)):
        return False
    # one id per line, each matched as REPO_ID would (an id with a line break in it is more lines)
    if not _each_line(_REPO_IDS, repo_ids):
        return False
    named = [revision for revision in revisions if revision is not None]
    if not set(map(type, named)) <= {str}:
        return False
    return _each_line(_COMMITS, named) or all(map(is_revision, named))


def _are_hashes(hashes: list, length: int) -> bool:
    """Whether each of ``hashes`` is None or text of ``length`` characters (an infohash in hex)."""
    named = [h for h in hashes if h is not None]
    return set(map(type, named)) <= {str} and set(map(len, named)) <= {length}


def _each_line(pattern: re.Pattern, texts: list[str]) -> bool:
    """Whether ``pattern`` (lines of one shape) matches ``texts`` joined, a line each: each text is one
    line of that shape."""
    joined = "\n".join(texts) + "\n" if texts else ""
    return joined.count("\n") == len(texts) and pattern.fullmatch(joined) is not None


#: Lines of repository ids (:data:`~modelreg.registry.catalog.REPO_ID`'s parts) and of commits.
_REPO_IDS = re.compile(rf"(?:{REPO_PART}/{REPO_PART}\n)*")
_COMMITS = re.compile(r"(?:[0-9a-f]{40}\n)*")


def _entries(paths: list[str], columns: list, stamps: list[tuple | None]) -> list[Entry | None]:
    """The catalog's entry of each of ``paths`` from its row of ``columns``, where it is for its stamp (not
    None) and of the shape :meth:`ParseCache.remember` writes (and its id and revision ones the catalog
    accepts); else None.

    One by one: what :func:`_checked` falls back to where a field of some entry is not sound.
    """
    entries: list[Entry | None] = []
    add, repo_id_of, revision_ok = entries.append, REPO_ID.fullmatch, is_revision
    lights = columns[-1]
    for i, (path, raw, stamp) in enumerate(zip(paths, zip(*columns[:-1], strict=True), stamps, strict=True)):
        if not (stamp is not None and raw[0] == stamp):
            add(None)
            continue
        _, digest, repo_id, revision, source, sidecar, problems, v1, v2 = raw
        if not (type(digest) is str and len(digest) == 64 and type(repo_id) is str and repo_id_of(repo_id)
                and (revision is None or revision_ok(revision)) and type(source) is str and type(sidecar) is dict
                and type(problems) is tuple and (not problems or all(type(p) is str for p in problems))
                and _are_hashes([v1], 40) and _are_hashes([v2], 64)):
            add(None)
            continue
        add((repo_id, revision, source, sidecar, problems, _recalled(lights, i, path, v1, v2)))
    return entries


class _Lights(Sequence):
    """The torrents' fields (:data:`_LIGHT`) of the catalog's entries as :meth:`_Columns.recall` gives them
    back, a column aligned with the paths asked for: the stored bytes are loaded when the first is asked
    for, and each value is checked as it is taken (None: damaged, or none stored). A rebuild that renders
    a few models asks for none of the others' (the column is some 40 MB at 100,000 models)."""

    def __init__(self, blob: bytes | None, size: int, where: list[int] | None = None,
                 stored: _Stored | None = None):
        self._size, self._where = size, where
        self._stored = _Stored(blob, size) if stored is None else stored
        self._set: dict[int, object] = {}
        #: The indices whose value was taken and found damaged (their entries leave the store).
        self.damaged: set[int] = set()

    def picked(self, where: list[int]) -> _Lights:
        """The column of the values at ``where`` (indices into this one, which has none set): the stored
        column is the same, loaded once for both."""
        return _Lights(None, len(where), where, self._stored)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, i: int) -> tuple | None:  # type: ignore[override]
        if not 0 <= i < self._size:
            raise IndexError(i)
        if i in self._set:
            value = self._set[i]
        else:
            values = self._stored.load()
            j = i if self._where is None else self._where[i]
            value = values[j] if j < len(values) else None
        if _is_light(value):
            return value  # type: ignore[return-value]
        self.damaged.add(i)
        return None

    def __setitem__(self, i: int, value: object) -> None:
        self._set[i] = value


class _Stored:
    """The stored column of the torrents' fields behind :class:`_Lights`: its bytes until they are loaded,
    once, then its values (none where they are not a list of ``count``)."""

    __slots__ = ("blob", "count", "values")

    def __init__(self, blob: bytes | None, count: int):
        self.blob, self.count = blob, count
        self.values: list | None = None

    def load(self) -> list:
        if self.values is None:
            try:
                values = marshal.loads(self.blob) if self.blob is not None else []
            except (ValueError, TypeError, EOFError):
                values = []
            self.values = values if type(values) is list and len(values) == self.count else []
            self.blob = None
        return self.values


def _is_light(value: object) -> bool:
    """Whether ``value`` is in the shape of a catalog entry's torrent fields: a tuple of :data:`_LIGHT`'s length."""
    return type(value) is tuple and len(value) == len(_LIGHT)


class _Recalled(Torrent):
    """A torrent of the catalog's store: its infohashes (the catalog tells duplicates by them) and, when
    any other field is first asked for, the rest from its column (:class:`_Lights`), or from its file
    where the stored fields are damaged. It is then a :class:`Torrent` like any other (its class too). A
    rebuild of 100,000 models renders a few: the others' fields are never loaded, made nor freed.

    Raises:
        TorrentError: (a field asked for) the stored fields are damaged and the file is no torrent now.
    """

    def _fill(self) -> None:
        # under a lock: a render pool's feeder thread fills the torrents it pickles while this thread goes on
        with _FILLING:
            state = self.__dict__
            at = state.get("_at")
            if at is None:  # filled by another thread since this one asked
                return
            lights, i, path = at
            values = lights[i]
            if values is None:  # damaged: from the file (if that fails, the torrent is left as it was)
                torrent = read_torrent(path)
                state.update((name, getattr(torrent, name)) for name in _KEPT)
            else:
                state.update(zip(_LIGHT, values, strict=True))
            _slimmed(state)
            del state["_at"]
            object.__setattr__(self, "__class__", Torrent)

    # what reads the fields without asking for one: each fills the torrent first, then is Torrent's own
    # (a torrent is no key: its piece layers are a dict)
    def __eq__(self, other: object) -> bool:
        self._fill()
        return self == other

    def __repr__(self) -> str:
        self._fill()
        return repr(self)

    def __reduce_ex__(self, protocol: Any) -> Any:
        self._fill()
        return self.__reduce_ex__(protocol)


_FILLING = threading.Lock()


def _filled(name: str) -> property:
    """The field ``name`` of a :class:`_Recalled` torrent: read (with the others) when first asked for. A
    property, not ``__getattr__``: a field with a default is an attribute of the class, found before it."""

    def get(torrent: _Recalled) -> Any:
        torrent._fill()
        return getattr(torrent, name)

    return property(get)


for _name in _FIELDS:
    if _name not in _HASHES:
        setattr(_Recalled, _name, _filled(_name))


def _recalled(lights: _Lights, i: int, path: str, v1: str | None, v2: str | None) -> Torrent:
    """The torrent of the entry of ``path``, ``i`` in ``lights`` (:class:`_Recalled`)."""
    torrent = _new(_Recalled)
    torrent.__dict__.update(infohash_v1=v1, infohash_v2=v2, _at=(lights, i, path))
    return torrent


_SCHEMA = ("CREATE TABLE torrents (path TEXT PRIMARY KEY, size INTEGER, mtime INTEGER, ino INTEGER, ctime INTEGER,"
           " digest TEXT, light BLOB,"
           " layout BLOB); CREATE TABLE catalog (name TEXT PRIMARY KEY, value BLOB);"
           " CREATE TABLE folders (bucket INTEGER PRIMARY KEY, entries BLOB);"
           " CREATE TABLE walks (root TEXT PRIMARY KEY, paths BLOB, stats BLOB);")
