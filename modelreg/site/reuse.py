"""Reusing the pages of unchanged models from the previous build, which stays valid by construction.

Each model gets a key: the SHA-256 of everything its outputs are made from (the torrent's bytes and
modification time, its sidecar, metadata and problems, the config, and the fingerprint of templates and
code). The manifest remembers, per model, the key, the size and ``st_mtime_ns`` of the files written in
the site (which files they are follows from the model: the key stands for them), and the model's parts of
the shared files (its API record, its index entry, its search summary). Shared files (listing pages, search shards, API pages) are remembered by the
SHA-256 of their bytes: one whose new bytes are those of the live file, unchanged since it was written,
stays in place too, so a rebuild after one change writes only the files that include that change. A
shared file written with a key (the digest of what it is rendered from: for a listing page, the keys of
the models it lists) whose key is unchanged is not even rendered again; nor is a group of files made
together (the search index, keyed by every model's search summary) whose key is unchanged. A model whose
key is unchanged and whose old files are still exactly as written keeps them (the builder's staged update
hard-links them into the new version) and its parts are reused, without being read or joined again (its
key stands for its metadata by the identity of the metadata cache file: ``build.metadata_fingerprint``);
anything else is rendered again. Beside the key the manifest keeps a *quick* tuple of what it was made
from, with the stamps of the model's files standing for their contents: a model whose tuple is the
stored one has the stored key, which is not computed again (a rebuild of 100,000 models compares
tuples, not 100,000 digests). Whether the old files are as written (their size and ``st_mtime_ns``) is
checked beside the render loop, in a forked process (:meth:`Reuse.watch`); a model whose files were
edited, replaced or deleted since is rendered again at the end (:meth:`Reuse.changed`). The manifest is
saved only after the new site is in place.

A model's parts are kept in two places: the *light* ones every build needs (its files, the summary without
its terms, the summary's digest, its dates and problems), all read when the build starts (a base of every
model's, and the rows written since: :meth:`Reuse._rows`), and the bulky ones (its API record, its listing
row, its summary's terms), read by :meth:`Reuse.parts` only where a shared file that includes them is made
again. ``api/models.json`` is spliced from the live one by the line offsets recorded with it
(:meth:`Reuse.api_source`).
"""

from __future__ import annotations

import array
import hashlib
import json
import marshal
import operator
import os
import sys
from collections.abc import Callable, Iterable
from itertools import repeat
from pathlib import Path
from typing import Any

from modelreg.fsutil import Forked
from modelreg.paths import path_problem
from modelreg.site.cachedb import CacheDB

#: marshal is fast for plain data and runs no code, but its format is tied to the Python version.
MANIFEST_VERSION = [9, *sys.version_info[:2]]
_SCHEMA = ("CREATE TABLE models (id TEXT PRIMARY KEY, key TEXT, light BLOB);"
           " CREATE TABLE parts (id TEXT PRIMARY KEY, value BLOB);"
           " CREATE TABLE state (name TEXT PRIMARY KEY, value BLOB);")
#: What a model's parts hold, and the type of each.
_PARTS = {"json": str, "entry": str, "summary": list, "dated": list, "problems": list}
#: The parts a reused model brings without its bulky ones (:meth:`Reuse.lookup`): the summary without
#: its terms and the digest of the whole (``searched``, :func:`summary_digest`); stored with the digest of
#: the bulky row (``sha``), which :meth:`Reuse.parts` checks.
LIGHT = ("summary", "searched", "dated", "problems", "sha")
_LIGHT_KEYS = frozenset(LIGHT)


class Damaged(Exception):  # noqa: N818 - not an error: a cache entry found unusable after all
    """The bulky parts of reused models turned out damaged: build again with these models rendered."""

    def __init__(self, ids: Iterable[str]):
        super().__init__(", ".join(ids))
        self.ids = set(ids)


class Reuse:
    """The previous build's manifest, and the one being written for this build.

    The manifest is a SQLite file (:class:`~modelreg.site.cachedb.CacheDB`): per model its key and light
    parts, all read when the build starts (a base of them all, and a row for each written since), and a
    row of its bulky parts, read as needed; rows are replaced when a model is rendered again, in one
    transaction that :meth:`save` commits once the new site is in place. The shared files' and groups'
    entries (a few thousand) are one row, read whole, and the index of ``api/models.json`` another.
    """

    def __init__(self, manifest: Path | None, previous: Path | None):
        self.manifest = manifest
        self.previous = previous if manifest is not None and previous is not None and previous.is_dir() else None
        self.db = CacheDB(manifest, _SCHEMA, MANIFEST_VERSION)
        state = _state(self.db) if self.previous is not None else {}
        self.old_shared: dict[str, tuple] = state.get("shared", {})
        self.old_groups: dict[str, tuple] = state.get("groups", {})
        self.old_api = state.get("api")
        self._prefix = f"{self.previous}{os.sep}"
        #: Models whose bulky parts turned out damaged: rendered again (see :class:`Damaged`).
        self.distrusted: set[str] = set()
        #: The digest of each reused model's bulky row, as its light row recorded it.
        self._sha: dict[str, bytes] = {}
        #: Ids of this build's models.
        self.models: set[str] = set()
        #: The check of the live files of reused models (:meth:`watch`), while it runs.
        self._watch: Forked | None = None
        self.restart()

    def restart(self, distrust: Iterable[str] = ()) -> None:
        """Forget what this build did so far (its staging folder is emptied), and never reuse ``distrust``."""
        self.distrusted.update(distrust)
        # rows this build wrote are read again below, but their files were in the staging folder, which
        # is emptied, and the live files checked (:meth:`watch`) are not theirs
        self.distrusted.update(self.models.difference(self._sha))
        self._sha.clear()
        #: id -> (key, light parts' bytes) of the last build's models: one query, not one per model; each
        #: is dropped once looked up (read again if the build restarts).
        self.old: dict[Any, tuple] = {}
        #: The ids of the rows in the manifest now (None: not read), so :meth:`save` knows without a
        #: count whether rows must be deleted.
        self.stored: set | None = None
        #: The models' ids in the manifest's base (see :meth:`_rows`), and whether it is to be written
        #: again (it was damaged).
        self._base: set = set()
        self._refold = False
        if self.previous is not None:
            self.old = self._rows()
            self.stored = set(self.old) if not self.db.broken else None
        self.new_shared: dict[str, tuple] = {}
        self.new_groups: dict[str, tuple] = {}
        self.reused = self.rendered = 0
        self.models = set()
        self.model_bytes = 0
        #: Files of reused models, relative to the site, that stay as they are.
        self.kept: list[str] = []
        #: What :meth:`save` records of this build's ``api/models.json`` (see :meth:`api_source`).
        self.api: dict | None = None

    @staticmethod
    def key(*parts: object) -> str:
        """SHA-256 of the parts' ``repr`` (plain data and frozen dataclasses print deterministically)."""
        return hashlib.sha256(repr(parts).encode()).hexdigest()

    def lookup(self, model_id: str, key: str | Callable[[], str], files: tuple[str, ...],
               quick: tuple | None = None) -> tuple[str, dict | None]:
        """The model's key, and its light parts (:data:`LIGHT`) from the last build if the key is unchanged
        (else None).

        ``key`` may be a function that computes it: it is not called where ``quick`` (a tuple of what the
        key is made from, with stand-ins such as the stamps of files for their contents, or None) is the
        one stored with the last build's key, which is then the key. ``files`` are the model's files, as
        :meth:`written` was given them (the key stands for them, so the manifest keeps only their sizes
        and times, and holds no path to check). They then stay in place: they are listed in ``kept`` for
        the staged update, unless :meth:`changed`, which the caller must ask once every model is looked
        up, finds them edited since. Its bulky parts are read only if needed (:meth:`parts`).
        """
        old = self.old.pop(model_id, None)
        # the stored key is a SHA-256 in hex (checked by its length: it only ever stands for the model's
        # outputs, compared with keys this code makes)
        light = _light(old[1], len(files)) if old is not None and type(old[0]) is str and len(old[0]) == 64 \
            and model_id not in self.distrusted else None
        if light is None:
            return (key if isinstance(key, str) else key()), None
        stats, parts, stored = light
        if quick is None or stored != quick:
            if not isinstance(key, str):
                key = key()
            if old[0] != key:
                return key, None
            if quick is not None:  # the same key from other stamps (a file touched, copied): kept with them
                self.db.write("INSERT OR REPLACE INTO models VALUES (?, ?, ?)",
                              [(model_id, key, marshal.dumps((stats, parts, quick)))])
        self.kept.extend(files)
        self._sha[model_id] = parts.pop("sha")
        self.models.add(model_id)
        self.model_bytes += sum(stats[::2])
        self.reused += 1
        return old[0], parts

    def watch(self, files: Callable[[], Iterable[tuple[str, tuple[str, ...]]]]) -> None:
        """Start checking the live files of the last build's models beside the build, in a forked process
        (the other core: one ``stat`` per file is most of what a rebuild costs per unchanged model);
        ``files()`` gives each model's id and files, as :meth:`lookup` is given them. Once per build:
        :meth:`changed` takes the result."""
        if self._watch is None and self.previous is not None and self.old:
            prefix, rows = self._prefix, self.old  # as they are now: the child sees this build's start
            self._watch = Forked.start(lambda: _changed(prefix, rows, files()))

    def changed(self, files: Callable[[], Iterable[tuple[str, tuple[str, ...]]]]) -> set[str]:
        """The reused models whose live files are not as the last build wrote them (edited or replaced by
        hand, or deleted, since: their size or time differs): their files are no longer kept, and the
        caller renders them again (:meth:`written`). ``files()`` is as for :meth:`watch`, which has
        checked them already where it could; they are checked here otherwise."""
        if not self._sha:  # nothing reused: nothing to check
            self.stop()
            return set()
        found = _found(self._watch.result()) if self._watch is not None else None
        self._watch = None
        if found is None:  # no process to check them (or it failed): here, now
            rows = self._rows()
            reused = self._sha
            found = _changed(self._prefix, rows, ((i, rels) for i, rels in files() if i in reused))
        found = [entry for entry in found if entry[0] in self._sha]
        if found:
            dropped = {rel for _, rels, _ in found for rel in rels}
            self.kept = [rel for rel in self.kept if rel not in dropped]
            for model_id, _, size in found:
                del self._sha[model_id]
                self.models.discard(model_id)
                self.model_bytes -= size
                self.reused -= 1
        return {entry[0] for entry in found}

    def stop(self) -> None:
        """End the check of :meth:`watch` if it still runs (the build failed)."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None

    def parts(self, model_id: str) -> dict | None:
        """A reused model's parts (:data:`_PARTS`), or None where its row is missing or damaged (or not
        the one its light row was written with)."""
        return self.parts_of([model_id])[0]

    def parts_of(self, ids: list[str]) -> list[dict | None]:
        """:meth:`parts` of each of ``ids``, read :data:`_READ_MANY` rows a query: a query per model took
        three times as long (1.2 s against 0.4 s for 100,000 rows). The caller holds them all: a few
        thousand at a time."""
        wanted = [model_id for model_id in dict.fromkeys(ids) if model_id in self._sha]
        blobs: dict[Any, object] = {}
        for start in range(0, len(wanted), _READ_MANY):
            chunk = tuple(wanted[start:start + _READ_MANY])
            blobs.update(self.db.rows(f"SELECT id, value FROM parts WHERE id IN ({','.join('?' * len(chunk))})",
                                      chunk))
        return [_parts(blobs.get(model_id), self._sha.get(model_id)) for model_id in ids]

    def written(self, model_id: str, key: str, staging: Path, files: tuple[str, ...], parts: dict,
                taken: dict[str, tuple[int, int]] | None = None, quick: tuple | None = None) -> None:
        """Record the files just rendered for a model (their stat survives the swap of the folder).

        ``taken`` (relative path -> size and ``st_mtime_ns``) spares a stat of each file, where the
        process that wrote them (a render worker) took it. ``quick`` is kept beside the key: the next
        :meth:`lookup` given the same takes the key without computing it.
        """
        stats: list[int] = []
        for rel in files:
            if taken is not None:
                size, mtime_ns = taken[rel]
            else:
                st = (staging / rel).stat()
                size, mtime_ns = st.st_size, st.st_mtime_ns
            stats += (size, mtime_ns)
            self.model_bytes += size
        blob = marshal.dumps(parts)
        light = {"summary": parts["summary"][:-1], "searched": summary_digest(parts["summary"]),
                 "dated": parts["dated"], "problems": parts["problems"], "sha": hashlib.sha256(blob).digest()}
        self.db.write("INSERT OR REPLACE INTO models VALUES (?, ?, ?)",
                      [(model_id, key, marshal.dumps((tuple(stats), light, quick)))])
        self.db.write("INSERT OR REPLACE INTO parts VALUES (?, ?)", [(model_id, blob)])
        self.models.add(model_id)
        self.rendered += 1

    def shared(self, staging: Path, rel: str, content: str | bytes | Callable[[], str | bytes],
               key: str | None = None) -> None:
        """Write a shared file into ``staging``, or keep the live one where its bytes are the same.

        ``content`` may be a function that renders it; with ``key`` (the digest of everything it is
        rendered from), a file whose key is the last build's and whose live copy is unchanged is kept
        without calling it.
        """
        old = self.old_shared.get(rel)
        if key is not None and old is not None and len(old) > 3 and old[3] == key and self._intact(rel, old):
            return
        if callable(content):
            content = content()
        self._record(rel, *_put_shared(staging, rel, content, old, self._live(), key))

    def group(self, name: str, key: str, files: Callable[[], Callable[[], Iterable[tuple[str, str | bytes]]]],
              staging: Path, run: Callable[..., Callable[[], Any]] | None = None) -> Callable[[], None]:
        """Write a set of shared files made together (such as the search index), or keep them all,
        unmade, where the group's ``key`` is the last build's and none of its live files changed.

        ``files()``, called only where the group is made again, gives the function that makes them (as
        (path, content) pairs). ``run(function, *args)`` calls it and writes them, as :meth:`shared`
        does, in another process (:meth:`modelreg.site.workers.RenderPool.run`) while this one goes on;
        the function returned here waits for them and records them: call it before :meth:`save`.
        """
        old = self.old_groups.get(name)
        if old is not None and old[0] == key:
            kept, entries = len(self.kept), dict(self.new_shared)
            if all((entry := self.old_shared.get(rel)) is not None and self._intact(rel, entry) for rel in old[1]):
                self.new_groups[name] = old
                return _nothing
            del self.kept[kept:]  # one file changed: make them all again
            self.new_shared = entries
        made = (run or run_here)(write_group, staging, files(), self.old_shared, self._live())

        def finish() -> None:
            rels = []
            for rel, entry, kept in made():
                self._record(rel, entry, kept)
                rels.append(rel)
            self.new_groups[name] = (key, rels)

        if run is None:
            finish()
            return _nothing
        return finish

    def api_source(self) -> tuple[str, dict[str, tuple[int, int]]] | None:
        """The live ``api/models.json`` and where each model's line is in it (id -> offset, length), if
        the file is still the one the last build wrote (its size and time), else None."""
        if self.old_api is None:
            return None
        ids, offsets, size, mtime_ns = self.old_api
        if not _unchanged(self._live(), API_FILE, size, mtime_ns):
            return None
        spans = array.array("q")
        spans.frombytes(offsets)
        return self._prefix + API_FILE, dict(zip(ids, zip(spans[::2], spans[1::2], strict=True), strict=True))

    def _intact(self, rel: str, entry: tuple) -> bool:
        """Whether the live ``rel`` is as the last build wrote it; if so it is kept, recorded as ``entry``."""
        if not _unchanged(self._live(), rel, *entry[1:3]):
            return False
        self._record(rel, entry, True)
        return True

    def _live(self) -> str | None:
        """The path of the last build's site with a separator, if there is one."""
        return self._prefix if self.previous is not None else None

    def _record(self, rel: str, entry: tuple, kept: bool) -> None:
        """Record a shared file of this build: written into the staging folder, or the live one ``kept``."""
        if kept:
            self.kept.append(rel)
        self.new_shared[rel] = entry

    def site_bytes(self) -> int:
        """The size of every file this build wrote or kept (models' files and shared files)."""
        return self.model_bytes + sum(entry[1] for entry in self.new_shared.values())

    def save(self) -> None:
        """Commit this build's manifest: rows of models gone are deleted, the shared files' state replaced."""
        if self.manifest is None:
            return
        # the rows are those read when the build started (or restarted) and those written since, which
        # are this build's models: no count (a scan of both tables) tells more. A parts row without its
        # models row (a damaged file) is never read, and goes with the next model deleted.
        if self.stored is None:  # not read (no previous site): this build's rows alone are kept
            self._drop_base()
            if self.db.count("models") != len(self.models) or self.db.count("parts") != len(self.models):
                self.db.keep_only("models", "id", self.models)
                self.db.keep_only("parts", "id", self.models)
        elif not self.stored <= self.models:
            gone = self.stored.difference(self.models)
            # a row without key and light hides the base's (see _rows)
            self.db.write("INSERT OR REPLACE INTO models VALUES (?, NULL, NULL)",
                          [(model_id,) for model_id in gone if model_id in self._base])
            self.db.write("DELETE FROM models WHERE id = ?", [(model_id,) for model_id in gone
                                                                if model_id not in self._base])
            self.db.keep_only("parts", "id", self.models)
        # not in the build that wrote every row (its memory peaks there): in the next one
        if self.stored is not None and (self._refold or self.db.count("models") > max(_JOURNAL_MAX,
                                                                                     len(self.models) // 16)):
            self._fold()
        state = {"shared": self.new_shared, "groups": self.new_groups}
        if state != {"shared": self.old_shared, "groups": self.old_groups}:
            self.db.write("INSERT OR REPLACE INTO state VALUES (?, ?)", [("shared", marshal.dumps(state))])
        if self.api is not None:
            self.db.write("INSERT OR REPLACE INTO state VALUES (?, ?)", [("api", marshal.dumps(self.api))])
        else:
            self.db.write("DELETE FROM state WHERE name = ?", [("api",)])
        self.db.commit()

    def _rows(self) -> dict[Any, tuple]:
        """id -> (key, light parts' bytes) of each model in the manifest: the base (rows of the ``state``
        table: ``models``, the number of parts, and ``models:<k>``, each part's ids, keys and light parts as
        three lists, at most :data:`_BASE_PART` models a part) with the rows of the ``models`` table over it,
        written since (by :meth:`written`, :meth:`lookup`, :meth:`save`: a row without key and light is
        a model gone). The models' ids in the base are kept in ``_base``. Any key or light part is given
        back as it is: :meth:`lookup` checks them."""
        rows: dict[Any, tuple] = {}
        row = self.db.row("SELECT value FROM state WHERE name = 'models'")
        try:
            parts = marshal.loads(row[0]) if row is not None else 0
            if type(parts) is not int:
                raise ValueError("not a number of parts")
            for k in range(parts):
                part = self.db.row("SELECT value FROM state WHERE name = ?", (f"models:{k}",))
                ids, keys, lights = marshal.loads(part[0])  # type: ignore[index]
                if not (type(ids) is type(keys) is type(lights) is list and len(ids) == len(keys) == len(lights)):
                    raise ValueError("not the base's shape")
                rows.update(zip(ids, zip(keys, lights, strict=True), strict=True))
        except (ValueError, EOFError, TypeError):  # damaged: no base (its models are rendered again)
            rows, self._refold = {}, True
        self._base = set(rows)
        for model_id, key, light in self.db.rows("SELECT id, key, light FROM models"):
            if key is None and light is None:
                rows.pop(model_id, None)
            else:
                rows[model_id] = (key, light)
        return rows

    def _fold(self) -> None:
        """Write the rows of this build's models as the base, and empty the ``models`` table: the next
        build reads a few parts of three lists each, not a row per model (100,000 rows took half a
        second of a rebuild)."""
        rows = self._rows()
        ids = [model_id for model_id in rows if model_id in self.models]
        self._drop_base()
        parts = range(0, len(ids), _BASE_PART)
        for k, start in enumerate(parts):  # a part at a time: the build holds one part's bytes, not all
            part = ids[start:start + _BASE_PART]
            columns = [part, [rows[model_id][0] for model_id in part], [rows[model_id][1] for model_id in part]]
            self.db.write("INSERT INTO state VALUES (?, ?)", [(f"models:{k}", marshal.dumps(columns))])
        self.db.write("INSERT INTO state VALUES (?, ?)", [("models", marshal.dumps(len(parts)))])
        self.db.write("DELETE FROM models", [()])
        self._base, self._refold = set(ids), False

    def _drop_base(self) -> None:
        self.db.write("DELETE FROM state WHERE name = ? OR name LIKE ?", [("models", "models:%")])


#: The ``models`` table (the rows written since the base) is folded into the base when it holds more rows
#: than this and a sixteenth of the models.
_JOURNAL_MAX = 256
#: Models in a part of the base (some 9 MB at 10,000).
_BASE_PART = 10_000
#: Bulky rows read in one query (:meth:`Reuse.parts_of`; SQLite allows 999 parameters at least).
_READ_MANY = 500
#: The full API list, spliced by :meth:`Reuse.api_source`'s offsets.
API_FILE = "api/models.json"


def write_group(staging: Path, files: Callable[[], Iterable[tuple[str, str | bytes]]], old: dict[str, tuple],
                live: str | None) -> list[tuple[str, tuple, bool]]:
    """The files ``files()`` makes, each written as :meth:`Reuse.shared` writes it (``old``: the last
    build's entries, ``live``: its site's path with a separator, or None); each one's path, entry and
    whether the live file stays. Any process may call it: it reads no cache."""
    return [(rel, *_put_shared(staging, rel, content, old.get(rel), live)) for rel, content in files()]


def _put_shared(staging: Path, rel: str, content: str | bytes, old: tuple | None, live: str | None,
                key: str | None = None) -> tuple[tuple, bool]:
    """Write a shared file into ``staging``, unless the live one (``live``: the last build's site, with a
    separator, or None) has these bytes and is as the last build wrote it (its entry ``old``): its entry
    (digest, size, ``st_mtime_ns``, ``key``), and whether the live one stays."""
    data = content.encode("utf-8") if isinstance(content, str) else content
    digest = hashlib.sha256(data).digest()
    if old is not None and old[0] == digest and _unchanged(live, rel, *old[1:3]):
        return (*old[:3], key), True
    path = staging / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    st = path.stat()
    return (digest, st.st_size, st.st_mtime_ns, key), False


def _unchanged(live: str | int | None, rel: str, size: int, mtime_ns: int) -> bool:
    """Whether ``rel`` of the last build's site (``live``: its path with a separator, or an open
    descriptor of its folder; None: no such site) has the ``size`` and ``st_mtime_ns`` the last build
    recorded of it: as written then."""
    if live is None:
        return False
    try:
        st = os.stat(rel, dir_fd=live) if type(live) is int else os.stat(live + rel)
    except OSError:
        return False
    return st.st_size == size and st.st_mtime_ns == mtime_ns


def run_here(function: Callable, *args: Any) -> Callable[[], Any]:
    """``run`` of :meth:`Reuse.group` (and of a render pool without workers) in this process: calls the
    function now; a function that gives its result."""
    result = function(*args)
    return lambda: result


def _nothing() -> None:
    """What :meth:`Reuse.group` returns where nothing is left to wait for."""


def summary_digest(summary: list) -> bytes:
    """The digest of a search summary (the search index's key is made of every model's)."""
    # JSON (the C encoder), not repr: a tenth of the time
    return hashlib.sha256(json.dumps(summary, ensure_ascii=False).encode()).digest()


def _state(db: CacheDB) -> dict:
    """The shared files' and groups' entries of the last build, or nothing where they cannot be used;
    with the index of its ``api/models.json`` where that is usable."""
    row = db.row("SELECT value FROM state WHERE name = 'shared'")
    try:
        state = marshal.loads(row[0]) if row is not None else {}
    except (ValueError, EOFError, TypeError):
        return {}
    if not isinstance(state, dict):
        return {}
    shared, groups = state.get("shared"), state.get("groups")
    if not isinstance(shared, dict) or not isinstance(groups, dict):
        return {}
    if not all(_site_path(rel) and isinstance(e, tuple) and len(e) == 4 and isinstance(e[1], int)
               and isinstance(e[2], int) for rel, e in shared.items()):
        return {}
    if not all(isinstance(e, tuple) and len(e) == 2 and isinstance(e[1], list) and all(map(_site_path, e[1]))
               for e in groups.values()):
        return {}
    return {"shared": shared, "groups": groups, "api": _api_state(db)}


def _api_state(db: CacheDB) -> tuple | None:
    """(ids, offsets, size, mtime_ns) of the last ``api/models.json``, or None where unusable."""
    row = db.row("SELECT value FROM state WHERE name = 'api'")
    try:
        api = marshal.loads(row[0]) if row is not None else None
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(api, dict):
        return None
    ids, offsets, size, mtime_ns = (api.get(k) for k in ("ids", "offsets", "size", "mtime_ns"))
    if not (isinstance(ids, list) and isinstance(offsets, bytes) and isinstance(size, int)
            and isinstance(mtime_ns, int) and len(offsets) == 16 * len(ids) and set(map(type, ids)) <= {str}):
        return None
    spans = array.array("q")
    spans.frombytes(offsets)
    # the lines tile the file as ApiWriter writes it ("[\n", lines joined by ",\n", "\n]\n"): a span
    # copied from the file is one whole line of it, never a piece of two
    # (checked at C speed: 100,000 lines)
    starts, lengths = spans[::2], spans[1::2]
    if ids:
        ends = list(map(operator.add, starts, lengths))
        if starts[0] != 2 or min(lengths) <= 0 or ends[-1] + 3 != size \
                or not set(map(operator.sub, starts[1:], ends[:-1])) <= {2}:
            return None
    return ids, offsets, size, mtime_ns


def _light(data: object, files: int) -> tuple[tuple, dict, object] | None:
    """The sizes and times of a model's ``files`` files, its light parts and the ``quick`` tuple of its
    key (:meth:`Reuse.lookup`; compared, never used otherwise: any value) from their stored bytes, or
    None where they are not in the right shape."""
    loaded = _loaded(data)
    if _stats(loaded, files) is None:
        return None
    stats, parts, quick = loaded  # type: ignore[misc]
    if not isinstance(parts, dict) or parts.keys() != _LIGHT_KEYS:
        return None
    if not (isinstance(parts["summary"], list) and isinstance(parts["searched"], bytes)
            and isinstance(parts["dated"], list) and isinstance(parts["problems"], list)
            and isinstance(parts["sha"], bytes)):
        return None
    return stats, parts, quick


def _loaded(data: object) -> object:
    """A light row's value from its bytes (None where marshal cannot read them)."""
    try:
        return marshal.loads(data)  # type: ignore[arg-type]
    except (ValueError, EOFError, TypeError):
        return None


def _stats(loaded: object, files: int) -> tuple | None:
    """The sizes and times of a model's ``files`` files from its light row's value (:func:`_loaded`), or
    None where they are not in the right shape (the rest of the row is :func:`_light`'s to check)."""
    if not (type(loaded) is tuple and len(loaded) == 3):
        return None
    stats = loaded[0]
    if not (isinstance(stats, tuple) and len(stats) == 2 * files):
        return None
    try:  # ints, checked at C speed: any other value marshal makes is not summed, or makes no int sum
        if type(sum(stats)) is not int:
            return None
    except TypeError:
        return None
    return stats


def _changed(prefix: str, rows: dict, files: Iterable[tuple[str, tuple[str, ...]]]) -> list[tuple[str, tuple, int]]:
    """(id, files, their recorded size) of each model whose row in ``rows`` (id -> key and light parts'
    bytes) records its files' sizes and times but whose live files (below ``prefix``) are missing or have
    another size or ``st_mtime_ns`` than recorded. (A row :meth:`Reuse.lookup` cannot use for other
    reasons may be listed: the caller keeps the models it reused.)"""
    found = []
    try:  # each file found from the site's folder, not from the root again: a sixth less time
        live: int | None = os.open(prefix, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        live = None
    try:
        for model_id, rels in files:
            row = rows.get(model_id)
            stats = _stats(_loaded(row[1]), len(rels)) if row is not None else None
            if stats is None:
                continue  # no row lookup() can use: not reused
            if not all(map(_unchanged, repeat(live), rels, stats[::2], stats[1::2])):
                found.append((model_id, rels, sum(stats[::2])))
    finally:
        if live is not None:
            os.close(live)
    return found


def _found(value: object) -> list[tuple[str, tuple, int]] | None:
    """What :func:`_changed` gave in a :class:`~modelreg.fsutil.Forked` child, if it has that shape."""
    if not (isinstance(value, list) and all(
            isinstance(e, tuple) and len(e) == 3 and isinstance(e[0], str) and isinstance(e[1], tuple)
            and all(isinstance(rel, str) for rel in e[1]) and isinstance(e[2], int) for e in value)):
        return None
    return value


def _parts(blob: object, sha: bytes | None) -> dict | None:
    """A reused model's parts from its bulky row's bytes, or None where there are none, they are not
    those its light row records the digest of (``sha``), or not of the shape :data:`_PARTS` says."""
    if sha is None or not isinstance(blob, bytes) or hashlib.sha256(blob).digest() != sha:
        return None
    try:
        parts = marshal.loads(blob)
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(parts, dict) or parts.keys() != _PARTS.keys():
        return None
    if not all(isinstance(parts[k], kind) for k, kind in _PARTS.items()):
        return None
    return parts


def _site_path(rel: object) -> bool:
    """Whether ``rel`` can name a file of the site: a relative POSIX path that never climbs out of it
    (the staged update links kept files by these names)."""
    return isinstance(rel, str) and path_problem(rel.split("/")) is None
