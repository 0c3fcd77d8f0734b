"""Reusing the pages of unchanged models from the previous build, which stays valid by construction.

Each model gets a key: the SHA-256 of everything its outputs are made from (the torrent's bytes and
modification time, its sidecar, metadata and problems, the config, and the fingerprint of templates and
code). The manifest remembers, per model, the key, the files written with their size and
``st_mtime_ns`` in the site, and the model's parts of the shared files (its API record, its index entry,
its search summary). Shared files (listing pages, search shards, API pages) are remembered by the
SHA-256 of their bytes: one whose new bytes are those of the live file, unchanged since it was written,
stays in place too, so a rebuild after one change writes only the files that include that change. A
shared file written with a key (the digest of what it is rendered from, such as a listing page's rows)
whose key is unchanged is not even rendered again; nor is a group of files made together (the search
index, keyed by every model's search summary) whose key is unchanged. A model whose key is unchanged
and whose old files are still exactly as written keeps them (the builder's staged update hard-links
them into the new version) and its parts are reused, without being read or joined again (its key
stands for its metadata by the identity of the metadata cache file: ``build.metadata_fingerprint``);
anything else is rendered again. The manifest is saved only after the new site is in place.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from modelreg.site.cachedb import CacheDB
from modelreg.torrent.paths import path_problem

#: marshal is fast for plain data and runs no code, but its format is tied to the Python version.
MANIFEST_VERSION = [7, *sys.version_info[:2]]
_SCHEMA = ("CREATE TABLE models (id TEXT PRIMARY KEY, key TEXT, files BLOB, parts BLOB);"
           " CREATE TABLE state (name TEXT PRIMARY KEY, value BLOB);")
#: What a model's parts hold, and the type of each.
_PARTS = {"json": str, "entry": str, "summary": list, "dated": list, "problems": list}


class Reuse:
    """The previous build's manifest, and the one being written for this build.

    The manifest is a SQLite file (:class:`~modelreg.site.cachedb.CacheDB`): a row per model (its key,
    files and parts), read when the model is looked up and replaced when it is rendered again, in one
    transaction that :meth:`save` commits once the new site is in place; the shared files' and groups'
    entries (a few thousand) are one row, read whole. Memory holds neither the old manifest nor the new.
    """

    def __init__(self, manifest: Path | None, previous: Path | None):
        self.manifest = manifest
        self.previous = previous if manifest is not None and previous is not None and previous.is_dir() else None
        self.db = CacheDB(manifest, _SCHEMA, MANIFEST_VERSION)
        state = _state(self.db) if self.previous is not None else {}
        self.old_shared: dict[str, tuple] = state.get("shared", {})
        self.old_groups: dict[str, tuple] = state.get("groups", {})
        self.new_shared: dict[str, tuple] = {}
        self.new_groups: dict[str, tuple] = {}
        self.reused = self.rendered = 0
        #: Ids of the models of this build.
        self.models: set[str] = set()
        self.model_bytes = 0
        #: Files of reused models, relative to the site, that stay as they are.
        self.kept: list[str] = []

    @staticmethod
    def key(*parts: object) -> str:
        """SHA-256 of the parts' ``repr`` (plain data and frozen dataclasses print deterministically)."""
        return hashlib.sha256(repr(parts).encode()).hexdigest()

    def lookup(self, model_id: str, key: str) -> dict | None:
        """The model's parts from the last build, if its key and its live files are unchanged, else None.

        Its files then stay in place: they are listed in ``kept`` for the staged update.
        """
        if self.previous is None:
            return None
        row = self.db.row("SELECT key, files, parts FROM models WHERE id = ?", (model_id,))
        if row is None or row[0] != key:
            return None
        entry = _entry(row[1], row[2])
        if entry is None:
            return None
        files, parts = entry
        previous = str(self.previous)
        size = 0
        for rel, (length, mtime_ns) in files.items():
            try:
                st = os.stat(os.path.join(previous, rel))
            except OSError:
                return None
            if st.st_size != length or st.st_mtime_ns != mtime_ns:
                return None
            size += length
        self.kept.extend(files)
        self.models.add(model_id)
        self.model_bytes += size
        self.reused += 1
        return parts

    def written(self, model_id: str, key: str, staging: Path, files: tuple[str, ...], parts: dict,
                stats: dict[str, tuple[int, int]] | None = None) -> None:
        """Record the files just rendered for a model (their stat survives the swap of the folder).

        ``stats`` (relative path -> size and ``st_mtime_ns``) spares a stat of each file, where the
        process that wrote them (a render worker) took it.
        """
        if stats is None:
            stats = {}
            for rel in files:
                st = (staging / rel).stat()
                stats[rel] = (st.st_size, st.st_mtime_ns)
        self.model_bytes += sum(size for size, _ in stats.values())
        self.db.write("INSERT OR REPLACE INTO models VALUES (?, ?, ?, ?)",
                      [(model_id, key, marshal.dumps(stats), marshal.dumps(parts))])
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
        data = content.encode("utf-8") if isinstance(content, str) else content
        digest = hashlib.sha256(data).digest()
        if old is not None and old[0] == digest and self._intact(rel, (*old[:3], key)):
            return
        path = staging / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        st = path.stat()
        self.new_shared[rel] = (digest, st.st_size, st.st_mtime_ns, key)

    def group(self, name: str, key: str, files: Callable[[], Iterable[tuple[str, str | bytes]]],
              staging: Path) -> None:
        """Write a set of shared files made together (such as the search index), or keep them all,
        unmade, where the group's ``key`` is the last build's and none of its live files changed."""
        old = self.old_groups.get(name)
        if old is not None and old[0] == key:
            kept, entries = len(self.kept), dict(self.new_shared)
            if all((entry := self.old_shared.get(rel)) is not None and self._intact(rel, entry) for rel in old[1]):
                self.new_groups[name] = old
                return
            del self.kept[kept:]  # one file changed: make them all again
            self.new_shared = entries
        rels = []
        for rel, content in files():
            self.shared(staging, rel, content)
            rels.append(rel)
        self.new_groups[name] = (key, rels)

    def _intact(self, rel: str, entry: tuple) -> bool:
        """Whether the live ``rel`` is as the last build wrote it; if so it is kept, recorded as ``entry``."""
        if self.previous is None:
            return False
        try:
            st = os.stat(os.path.join(self.previous, rel))
        except OSError:
            return False
        if (st.st_size, st.st_mtime_ns) != tuple(entry[1:3]):
            return False
        self.kept.append(rel)
        self.new_shared[rel] = entry
        return True

    def site_bytes(self) -> int:
        """The size of every file this build wrote or kept (models' files and shared files)."""
        return self.model_bytes + sum(entry[1] for entry in self.new_shared.values())

    def save(self) -> None:
        """Commit this build's manifest: rows of models gone are deleted, the shared files' state replaced."""
        if self.manifest is None:
            return
        if self.db.count("models") != len(self.models):
            self.db.keep_only("models", "id", self.models)
        state = {"shared": self.new_shared, "groups": self.new_groups}
        if state != {"shared": self.old_shared, "groups": self.old_groups}:
            self.db.write("INSERT OR REPLACE INTO state VALUES (?, ?)", [("shared", marshal.dumps(state))])
        self.db.commit()


def _state(db: CacheDB) -> dict:
    """The shared files' and groups' entries of the last build, or nothing where they cannot be used."""
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
    return {"shared": shared, "groups": groups}


def _entry(files: object, parts: object) -> tuple[dict, dict] | None:
    """A model's files and parts from their stored bytes, or None where they are not in the right shape."""
    try:
        files, parts = marshal.loads(files), marshal.loads(parts)  # type: ignore[arg-type]
    except (ValueError, EOFError, TypeError):
        return None
    if not isinstance(files, dict) or not isinstance(parts, dict) or parts.keys() != _PARTS.keys():
        return None
    if not all(isinstance(parts[k], kind) for k, kind in _PARTS.items()):
        return None
    for rel, stat in files.items():
        if not (_site_path(rel) and isinstance(stat, tuple) and len(stat) == 2
                and all(isinstance(n, int) for n in stat)):
            return None
    return files, parts


def _site_path(rel: object) -> bool:
    """Whether ``rel`` can name a file of the site: a relative POSIX path that never climbs out of it
    (the staged update links kept files by these names)."""
    return isinstance(rel, str) and path_problem(rel.split("/")) is None
