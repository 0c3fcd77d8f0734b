"""The metadata cache: one JSON file per repository and revision, kept with the registry and committed with it.

``<registry>/.metadata/<org>/<name>/<revision>.json`` (``main.json`` for a model with no known revision)
holds the :class:`~modelreg.hf.metadata.ModelMeta` last fetched, the model card included, and the last
failure, if the latest refresh failed. A build reads only these files, so it never needs the network and
the same cache always gives the same site. Files are written atomically with sorted keys; the only
field that changes when nothing on the hub changed is ``fetched_at``, which the site does not show.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from modelreg.errors import HubError, MetadataCacheError
from modelreg.fsutil import atomic_write_bytes
from modelreg.hf.metadata import ModelMeta, RepoFile

CACHE_DIR = ".metadata"
FORMAT = 1
MAIN = "main"
_AGAIN = "delete it and run 'modelreg refresh' to fetch it again"


@dataclass(frozen=True)
class Failure:
    """Why the latest refresh of an entry failed: :attr:`HubError.reason`, its message, and when."""

    reason: str
    detail: str
    at: str


@dataclass(frozen=True)
class CacheEntry:
    """What the cache knows about one repository at one revision (``revision`` None: the main branch)."""

    repo_id: str
    revision: str | None
    meta: ModelMeta | None = None
    failure: Failure | None = None

    @property
    def fetched_at(self) -> str | None:
        return self.meta.fetched_at if self.meta else None


class MetaCache:
    """The cache folder; every method is safe to call from several threads for different entries."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @classmethod
    def for_registry(cls, registry: str | Path) -> MetaCache:
        return cls(Path(registry) / CACHE_DIR)

    def path(self, repo_id: str, revision: str | None) -> Path:
        org, name = repo_id.split("/")
        return self.root / org / name / f"{revision or MAIN}.json"

    def load(self, repo_id: str, revision: str | None) -> CacheEntry | None:
        """The cached entry, or None when there is none. A damaged file raises :class:`MetadataCacheError`."""
        path = self.path(repo_id, revision)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MetadataCacheError(path, f"cannot read the cached metadata ({exc}); {_AGAIN}") from exc
        try:
            return _entry_from(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise MetadataCacheError(path, f"the cached metadata is not in format {FORMAT} ({exc!r}); {_AGAIN}") from exc

    def store_meta(self, meta: ModelMeta, fetched_at: str, failure: Failure | None = None) -> CacheEntry:
        """Record freshly fetched metadata; ``failure`` says what part of it could not be fetched, if any."""
        entry = CacheEntry(meta.repo_id, meta.revision, replace(meta, fetched_at=fetched_at), failure)
        self._write(entry)
        return entry

    def store_failure(self, error: HubError, at: str) -> CacheEntry:
        """Record a failed refresh, keeping the metadata fetched before, if any (a damaged file is replaced)."""
        try:
            previous = self.load(error.repo_id, error.revision)
        except MetadataCacheError:
            previous = None
        entry = CacheEntry(error.repo_id, error.revision, previous.meta if previous else None,
                           Failure(error.reason, error.detail, at))
        self._write(entry)
        return entry

    def _write(self, entry: CacheEntry) -> None:
        path = self.path(entry.repo_id, entry.revision)
        try:
            atomic_write_bytes(path, dumps(entry))
        except OSError as exc:
            raise MetadataCacheError(path, f"cannot write the cache file: {exc}") from exc


def dumps(entry: CacheEntry) -> bytes:
    """The file content of an entry: deterministic (sorted keys, one layout), UTF-8, ending in a newline."""
    meta = None
    if entry.meta is not None:
        meta = asdict(entry.meta)
        del meta["fetched_at"]  # stored once, at the top
    data = {
        "format": FORMAT,
        "repo_id": entry.repo_id,
        "revision": entry.revision,
        "fetched_at": entry.fetched_at,
        "meta": meta,
        "failure": asdict(entry.failure) if entry.failure else None,
    }
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def _entry_from(data: dict[str, Any]) -> CacheEntry:
    if data.get("format") != FORMAT:
        raise ValueError(f"format {data.get('format')!r}")
    meta = None
    if data["meta"] is not None:
        known = {f.name for f in fields(ModelMeta)} - {"fetched_at"}
        values = {k: v for k, v in data["meta"].items() if k in known}
        for key in ("tags", "base_model"):
            values[key] = tuple(values.get(key) or ())
        values["files"] = tuple(RepoFile(**f) for f in values.get("files") or ())
        meta = ModelMeta(**values, fetched_at=data.get("fetched_at"))
    failure = Failure(**data["failure"]) if data.get("failure") else None
    return CacheEntry(data["repo_id"], data["revision"], meta, failure)
