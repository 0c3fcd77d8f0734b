"""The metadata cache: one JSON file per repository and revision, kept with the registry and committed with it.

``<registry>/.metadata/<org>/<name>/<revision>.json`` (``main.json`` for a model with no known revision)
holds the :class:`~modelreg.hf.metadata.ModelMeta` last fetched, the model card included, and the last
failure, if the latest refresh failed. A build reads only these files, so it never needs the network and
the same cache always gives the same site. Files are written atomically with sorted keys; the only
field that changes when nothing on the hub changed is ``fetched_at``, which the site does not show.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from modelreg.errors import HubError, MetadataCacheError
from modelreg.fsutil import atomic_write_bytes, read_regular
from modelreg.hf.metadata import ModelMeta, RepoFile
from modelreg.registry.revfiles import MAIN, RevisionFolder

CACHE_DIR = ".metadata"
FORMAT = 1
#: A cache file is at most this large (model cards and file lists of big repositories are a few MB).
MAX_BYTES = 64 << 20
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


class MetaCache(RevisionFolder):
    """The cache folder; every method is safe to call from several threads for different entries.

    :meth:`path` raises :class:`~modelreg.errors.MetadataCacheError` for a file that would lie outside it.
    """

    FOLDER, OUTSIDE_ERROR, OUTSIDE_VERB = CACHE_DIR, MetadataCacheError, "cached"

    def load(self, repo_id: str, revision: str | None) -> CacheEntry | None:
        """The cached entry, or None when there is none.

        The file is checked against the cache's schema (:mod:`modelreg.registry.cacheschema`) as it is read.

        Raises:
            MetadataCacheError: the file is damaged, of the wrong shape, not a regular file, over
                :data:`MAX_BYTES`, or for another repository.
        """
        path = self.path(repo_id, revision)
        try:
            data = json.loads(read_regular(path, MAX_BYTES, "metadata cache file"))
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MetadataCacheError(path, f"cannot read the cached metadata: {exc.strerror or exc}; {_AGAIN}") from exc
        except (ValueError, RecursionError) as exc:
            raise MetadataCacheError(path, f"the cached metadata is not valid JSON ({exc}); {_AGAIN}") from exc
        try:
            entry = _entry_from(data)
        except _SchemaError as exc:
            raise MetadataCacheError(path, f"the cached metadata is not valid: {exc}; {_AGAIN}") from exc
        if (entry.repo_id.lower(), entry.revision) != (repo_id.lower(), revision):
            raise MetadataCacheError(path, f"the cached metadata is for {entry.repo_id}@{entry.revision or MAIN}, "
                                           f"not {repo_id}@{revision or MAIN}; {_AGAIN}")
        return entry

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
        """Write an entry, checked against the same schema as a read: nothing is stored that :meth:`load`
        would refuse (a bad value from the hub fails here, naming the file, not on the next build).

        Raises:
            MetadataCacheError: the entry does not fit the schema, or the file cannot be written.
        """
        path = self.path(entry.repo_id, entry.revision)
        data = dumps(entry)
        try:
            _entry_from(json.loads(data))
        except _SchemaError as exc:
            raise MetadataCacheError(path, f"not stored: the metadata is not valid: {exc}") from exc
        try:
            atomic_write_bytes(path, data)
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


# -- the schema: what a cache file may hold, checked field by field as it is read ---------------------------


class _SchemaError(ValueError):
    """A value of a cache file that does not fit the schema; the message names the field."""


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise _SchemaError(f"a string, not {_shown(value)}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _SchemaError("text without lone surrogates") from None
    return value


def _count(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _SchemaError(f"a whole number >= 0, not {_shown(value)}")
    return value


def _number(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise _SchemaError(f"a finite number, not {_shown(value)}")
    return value


def _date(value: Any) -> str:
    """An ISO 8601 date and time whose UTC year is 1970 to 9999 (what pages and feeds can show)."""
    text = _text(value)
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        year = (when if when.tzinfo is None else when.astimezone(dt.UTC)).year
    except (ValueError, OverflowError):
        raise _SchemaError(f"an ISO 8601 date and time, not {text!r}") from None
    if not 1970 <= year <= 9999:
        raise _SchemaError(f"a date between 1970 and 9999, not {text!r}")
    return text


def _gated(value: Any) -> bool | str:
    return value if isinstance(value, bool) else _text(value)


def _optional(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else check(value)


def _list_of(check: Callable[[Any], Any]) -> Callable[[Any], tuple]:
    def checked(value: Any) -> tuple:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise _SchemaError(f"a list, not {_shown(value)}")
        return tuple(_field(f"[{i}]", check, item) for i, item in enumerate(value))
    return checked


def _object(schema: dict[str, Callable[[Any], Any]], required: tuple[str, ...] = ()) -> Callable[[Any], dict]:
    """A JSON object: the keys of ``schema`` checked (``required`` ones must be there), others ignored."""
    def checked(value: Any) -> dict:
        if not isinstance(value, dict):
            raise _SchemaError(f"an object, not {_shown(value)}")
        missing = [key for key in required if key not in value]
        if missing:
            raise _SchemaError(f"an object with {', '.join(repr(k) for k in missing)}")
        return {key: _field(f".{key}", check, value[key]) for key, check in schema.items() if key in value}
    return checked


def _field(name: str, check: Callable[[Any], Any], value: Any) -> Any:
    try:
        return check(value)
    except _SchemaError as exc:
        inner = str(exc)
        if inner.startswith((".", "[")):  # already names a field further in
            raise _SchemaError(name + inner) from None
        raise _SchemaError(f"{name} must be {inner}") from None


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, default=repr) if not isinstance(value, float) else repr(value)
    return f"{type(value).__name__} {text[:40]}{'...' if len(text) > 40 else ''}"


_FILE = _object({"path": _text, "size": _optional(_count), "lfs_sha256": _optional(_text)}, required=("path",))
#: One check per field of :class:`ModelMeta` (but ``fetched_at``, kept at the top of the file).
_META = {
    "repo_id": _text, "revision": _optional(_text), "license": _optional(_text), "pipeline_tag": _optional(_text),
    "library_name": _optional(_text), "tags": _list_of(_text), "parameters": _optional(_count),
    "base_model": _list_of(_text), "downloads": _optional(_count), "likes": _optional(_count),
    "trending_score": _optional(_number), "last_modified": _optional(_date), "created_at": _optional(_date),
    "gated": _gated, "card_markdown": _optional(_text), "files": _list_of(_FILE), "commit": _optional(_text),
}
assert set(_META) == {f.name for f in fields(ModelMeta)} - {"fetched_at"}, "the schema must follow ModelMeta"
_FAILURE = _object({"reason": _text, "detail": _text, "at": _text}, required=("reason", "detail", "at"))
_ENTRY = _object({
    "format": lambda v: v if v == FORMAT and not isinstance(v, bool) else _fail(f"{FORMAT}, not {_shown(v)}"),
    "repo_id": _text, "revision": _optional(_text), "fetched_at": _optional(_date),
    "meta": _optional(_object(_META, required=("repo_id",))), "failure": _optional(_FAILURE),
}, required=("format", "repo_id", "revision", "meta"))


def _fail(message: str) -> Any:
    raise _SchemaError(message)


def _entry_from(data: Any) -> CacheEntry:
    """The entry a cache file's JSON holds, checked against the schema.

    Raises:
        _SchemaError: naming the first field that does not fit (``meta.downloads must be ...``).
    """
    try:
        top = _ENTRY(data)
    except _SchemaError as exc:
        message = str(exc)
        raise _SchemaError(message[1:] if message.startswith(".") else f"the file must be {message}") from None
    meta = None
    if top.get("meta") is not None:
        values = top["meta"]
        values["files"] = tuple(RepoFile(f["path"], f.get("size"), f.get("lfs_sha256")) for f in values.get("files", ()))
        meta = ModelMeta(**values, fetched_at=top.get("fetched_at"))
    failure = Failure(**top["failure"]) if top.get("failure") else None
    return CacheEntry(top["repo_id"], top["revision"], meta, failure)
