"""Reusing the pages of unchanged models from the previous build, which stays valid by construction.

Each model gets a key: the SHA-256 of everything its files are rendered from (its record, metadata,
torrent bytes, the config, and the fingerprint of templates and code). The manifest remembers, per key,
the files written and their size and ``st_mtime_ns`` in the site. A model whose key is unchanged and
whose old files are still exactly as written gets them hard-linked (or copied) into the staging folder;
anything else is rendered again. The manifest is saved only after the new site is in place.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from ..fsutil import atomic_write_bytes

MANIFEST_VERSION = 1


class Reuse:
    """The previous build's manifest, and the one being written for this build."""

    def __init__(self, manifest: Path | None, previous: Path | None):
        self.manifest = manifest
        self.previous = previous
        self.old: dict[str, dict] = _load(manifest) if manifest and previous and previous.is_dir() else {}
        self.new: dict[str, dict] = {}
        self.reused = self.rendered = 0

    @staticmethod
    def key(*parts: object) -> str:
        h = hashlib.sha256()
        for part in parts:
            h.update(json.dumps(part, sort_keys=True, default=repr).encode() + b"\0")
        return h.hexdigest()

    def try_reuse(self, model_id: str, key: str, staging: Path) -> bool:
        """Link the model's old files into ``staging`` if its key and files are unchanged."""
        entry = self.old.get(model_id)
        if self.previous is None or entry is None or entry["key"] != key:
            return False
        sources = []
        for rel, (size, mtime_ns) in entry["files"].items():
            src = self.previous / rel
            try:
                st = src.stat()
            except OSError:
                return False
            if (st.st_size, st.st_mtime_ns) != (size, mtime_ns):
                return False
            sources.append((src, staging / rel))
        for src, dst in sources:
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        self.new[model_id] = entry
        self.reused += 1
        return True

    def written(self, model_id: str, key: str, staging: Path, files: tuple[str, ...]) -> None:
        """Record the files just rendered for a model (their stat survives the swap of the folder)."""
        stats = {}
        for rel in files:
            st = (staging / rel).stat()
            stats[rel] = (st.st_size, st.st_mtime_ns)
        self.new[model_id] = {"key": key, "files": stats}
        self.rendered += 1

    def save(self) -> None:
        if self.manifest is not None:
            data = {"version": MANIFEST_VERSION, "models": self.new}
            atomic_write_bytes(self.manifest, json.dumps(data, separators=(",", ":")).encode())


def _load(manifest: Path) -> dict[str, dict]:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        return {}
    models = data.get("models")
    return models if isinstance(models, dict) else {}
