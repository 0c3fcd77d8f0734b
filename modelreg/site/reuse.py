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
from pathlib import Path
from typing import Callable, Iterable

from modelreg.site.parsecache import write_cache

#: marshal is fast for plain data and runs no code, but its format is tied to the Python version.
MANIFEST_VERSION = [6, *sys.version_info[:2]]


class Reuse:
    """The previous build's manifest, and the one being written for this build."""

    def __init__(self, manifest: Path | None, previous: Path | None):
        self.manifest = manifest
        self.previous = previous
        old = _load(manifest) if manifest and previous and previous.is_dir() else {}
        self.old: dict[str, dict] = old.get("models", {})
        self.old_shared: dict[str, tuple] = old.get("shared", {})
        self.old_groups: dict[str, tuple] = old.get("groups", {})
        self.new: dict[str, dict] = {}
        self.new_shared: dict[str, tuple] = {}
        self.new_groups: dict[str, tuple] = {}
        self.reused = self.rendered = 0
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
        entry = self.old.get(model_id)
        if self.previous is None or entry is None or entry.get("key") != key:
            return None
        previous = str(self.previous)
        for rel, (size, mtime_ns) in entry["files"].items():
            try:
                st = os.stat(os.path.join(previous, rel))
            except OSError:
                return None
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return None
        self.kept.extend(entry["files"])
        self.new[model_id] = entry
        self.reused += 1
        return entry["parts"]

    def written(self, model_id: str, key: str, staging: Path, files: tuple[str, ...], parts: dict) -> None:
        """Record the files just rendered for a model (their stat survives the swap of the folder)."""
        stats = {}
        for rel in files:
            st = (staging / rel).stat()
            stats[rel] = (st.st_size, st.st_mtime_ns)
        self.new[model_id] = {"key": key, "files": stats, "parts": parts}
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
        return (sum(size for entry in self.new.values() for size, _ in entry["files"].values())
                + sum(entry[1] for entry in self.new_shared.values()))

    @property
    def changed(self) -> bool:
        return (self.rendered > 0 or self.new.keys() != self.old.keys()
                or self.new_shared != self.old_shared or self.new_groups != self.old_groups)

    def save(self) -> None:
        """Write this build's manifest (only if anything changed: reused entries are the same)."""
        if self.manifest is not None and self.changed:
            write_cache(self.manifest, marshal.dumps({"version": MANIFEST_VERSION, "models": self.new,
                                                       "shared": self.new_shared, "groups": self.new_groups}))


def _load(manifest: Path) -> dict[str, dict]:
    """The previous manifest's ``models`` and ``shared`` entries, or nothing where it cannot be used."""
    try:
        data = marshal.loads(manifest.read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return {}
    models, shared, groups = data.get("models"), data.get("shared"), data.get("groups")
    if not isinstance(models, dict) or not isinstance(shared, dict) or not isinstance(groups, dict):
        return {}
    return {"models": models, "shared": shared, "groups": groups}
