"""The catalog: every torrent of a registry folder as a :class:`Model` with its Hugging Face repository.

Where a torrent's repository and revision come from, first match wins:

1. a sidecar ``<TorrentStem>.json`` next to the torrent: ``{"repo_id": "Org/Name", "revision": "<commit>"}``;
2. its web seed: an HF ``.../<org>/<name>/resolve/<revision>/`` URL, or the gateway layout
   ``.../v1/<org>/<name>/<revision>/`` that modelreg's web seed and the public registries use;
3. its folder: ``<registry>/[...]/<org>/<name>/<file>.torrent`` (no revision: the main branch).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from modelreg.errors import CatalogError, ModelregError
from modelreg.fsutil import read_regular
from modelreg.hf.metadata import ModelMeta
from modelreg.hf.repoid import RepoIdParts
from modelreg.registry.health import Health
from modelreg.registry.history import commit_dates
from modelreg.torrent.metainfo import Torrent

# ``\Z``, not ``$`` (which also matches before a final newline), and :meth:`re.Pattern.fullmatch` below.
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
REPO_ID = re.compile(rf"^({_PART})/({_PART})\Z")
COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
_HF_RESOLVE = re.compile(rf"/(?:models/)?({_PART})/({_PART})/resolve/([^/]+)/?\Z")
_GATEWAY = re.compile(rf"/v1/({_PART})/({_PART})/([0-9a-f]{{40}})/?\Z")
#: What git's ref-name rules forbid anywhere in a branch name (``git check-ref-format --branch``).
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
#: Size caps of the files a build reads, named in the errors of files over them.
SIDECAR_MAX_BYTES = 1 << 20
#: The creation dates a torrent may have: 1970 to the end of year 9999 (seconds since the epoch, UTC).
_LATEST_DATE = 253402300799


@dataclass(frozen=True)
class Model(RepoIdParts):
    """One registry entry: a torrent and the Hugging Face repository (and revision) it was made from."""

    repo_id: str
    revision: str | None
    revision_source: str
    torrent: Torrent
    torrent_path: Path
    rel_path: str
    sidecar: dict[str, Any] = field(default_factory=dict)
    #: Hugging Face metadata joined from the cache, or None where none is cached.
    meta: ModelMeta | None = None
    #: Why metadata is missing or stale, and any mismatch between the torrent and HF's file list.
    problems: tuple[str, ...] = ()
    #: Unix time of the registry's last git commit of the torrent file (None: not a checkout, uncommitted).
    committed: int | None = None
    #: The last swarm and web-seed check (registry/.health/), or None where never checked.
    health: Health | None = None

    @property
    def pinned(self) -> bool:
        """Whether the revision is a full commit hash (else the page says it follows a branch)."""
        return bool(self.revision and COMMIT.fullmatch(self.revision))


@dataclass
class Catalog:
    """The models of a registry, sorted by id, and every problem met while reading it."""

    models: list[Model]
    errors: list[ModelregError]

    def by_id(self) -> dict[str, Model]:
        return {m.repo_id: m for m in self.models}


def find_torrents(registry: Path) -> list[Path]:
    """Every ``.torrent`` regular file below the registry folder, in a stable order.

    Links are followed, but each real folder (device and inode) is read once, so links that loop, or
    that reach one folder by several ways, neither hang the walk nor list a torrent twice.
    """
    found: list[str] = []
    seen: set[tuple[int, int]] = set()
    todo = [str(registry)]
    while todo:
        folder = todo.pop()
        try:
            st = os.stat(folder)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = list(os.scandir(folder))
        except OSError:
            continue  # gone, unreadable or a dangling link: nothing to list
        for entry in entries:  # the entry's type comes with it: a stat only for links
            try:
                if entry.is_dir():
                    todo.append(entry.path)
                elif entry.name.endswith(".torrent") and entry.is_file():
                    found.append(entry.path)
            except OSError:
                continue
    return [Path(p) for p in sorted(found)]


#: The catalog's reader of a torrent file (bounded, regular files only): :meth:`Torrent.read`.
read_torrent = Torrent.read


def load_catalog(registry: str | Path, read: Any = read_torrent, paths: list[Path] | None = None) -> Catalog:
    """Read every torrent below ``registry``; bad files become errors, the good ones models.

    ``read`` turns a path into a :class:`Torrent` (a caching reader can be passed in); ``paths`` spares
    a second scan where the caller has listed the torrents already.
    """
    registry = Path(registry)
    if not registry.is_dir():
        raise CatalogError(registry, "the registry folder does not exist")
    models, errors = [], []
    for path in find_torrents(registry) if paths is None else paths:
        try:
            models.append(model_from(path, registry, read(path)))
        except ModelregError as exc:
            errors.append(exc)
    models, dup_errors = _without_duplicates(models)
    dates = commit_dates(registry) if models else {}
    if dates:
        models = [replace(m, committed=dates.get(m.rel_path)) for m in models]
    models.sort(key=lambda m: m.repo_id.lower())
    return Catalog(models, errors + dup_errors)


def model_from(path: Path, registry: Path, torrent: Torrent) -> Model:
    """The model of one torrent file, with its repository and revision found as the module says.

    A creation date no calendar can show (before 1970, after 9999) is dropped, with a problem noted.

    Raises:
        CatalogError: a bad sidecar, or no repository can be told.
    """
    text, top = str(path), str(registry)
    if os.sep == "/" and text.startswith(top + "/") and top not in ("", "/"):
        rel = text[len(top) + 1:]  # what relative_to gives, without its cost (100,000 models at each build)
    else:
        rel = path.relative_to(registry).as_posix()
    sidecar = _read_sidecar(path.with_suffix(".json"))
    if sidecar.get("repo_id") is not None:
        repo_id, revision, source = sidecar["repo_id"], sidecar.get("revision"), "sidecar"
    else:
        found = repo_from_webseeds(torrent.webseeds)
        if found:
            repo_id, revision, source = (*found, "web seed")
        else:
            repo_id, revision, source = _repo_from_folder(path, registry), None, "folder"
    problems: tuple[str, ...] = ()
    date = torrent.creation_date
    if date is not None and not 0 <= date <= _LATEST_DATE:
        torrent = replace(torrent, creation_date=None)
        problems = (f"the torrent's creation date {date} is out of range (seconds since 1970 up to the year "
                    "9999); it is ignored",)
    return Model(repo_id, revision, source if revision else "default branch", torrent, path, rel, sidecar,
                 problems=problems)


def is_revision(text: object) -> bool:
    """Whether ``text`` is a revision: a 40-hex commit, or a branch name git's ref-name rules allow.

    Such a name never starts a path over (no leading ``/``), never climbs (no ``..``, no component
    starting with ``.``) and has no control characters, so it can name a file of the metadata cache.
    """
    if not isinstance(text, str) or not text or len(text) > 200:
        return False
    if COMMIT.fullmatch(text):
        return True
    if _REF_FORBIDDEN.search(text) or text in ("@", "HEAD") or text[0] in "-/" or text[-1] in "./":
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in text.split("/"))


def repo_from_webseeds(webseeds: Iterable[str]) -> tuple[str, str] | None:
    """(repo id, revision) from the first web seed in an HF ``resolve`` or gateway ``v1`` layout
    whose revision :func:`is_revision`."""
    for url in webseeds:
        path = unquote(urlsplit(url).path)
        m = _GATEWAY.search(path) or _HF_RESOLVE.search(path)
        if m and is_revision(m.group(3)):
            return f"{m.group(1)}/{m.group(2)}", m.group(3)
    return None


def _repo_from_folder(path: Path, registry: Path) -> str:
    parts = path.relative_to(registry).parts[:-1]
    repo_id = "/".join(parts[-2:])
    if len(parts) < 2 or not REPO_ID.fullmatch(repo_id):
        raise CatalogError(
            path,
            "cannot tell which Hugging Face repository this torrent is from: put it in a "
            "<org>/<name>/ folder or add a sidecar .json with \"repo_id\" and \"revision\"",
        )
    return repo_id


def _read_sidecar(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(read_regular(path, SIDECAR_MAX_BYTES, "sidecar"))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CatalogError(path, f"cannot read the sidecar: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CatalogError(path, f"the sidecar is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(path, "the sidecar must be a JSON object")
    repo_id, revision = data.get("repo_id"), data.get("revision")
    if repo_id is not None and not (isinstance(repo_id, str) and REPO_ID.fullmatch(repo_id)):
        raise CatalogError(path, f"'repo_id' must look like 'Org/Name', not {repo_id!r}")
    if revision is not None and not is_revision(revision):
        raise CatalogError(path, f"'revision' must be a 40-hex commit hash or a branch name git allows, "
                                 f"not {revision!r}")
    return data


def _without_duplicates(models: list[Model]) -> tuple[list[Model], list[ModelregError]]:
    """Keep the first of models that share an infohash or a repository id; report the others."""
    seen: dict[str, Model] = {}
    kept, errors = [], []
    for model in models:
        t = model.torrent
        keys = [k for k in (t.infohash_v1, t.infohash_v2) if k] + ["repo:" + model.repo_id.lower()]
        clash = next((seen[k] for k in keys if k in seen), None)
        if clash is None:
            kept.append(model)
            seen.update(dict.fromkeys(keys, model))
            continue
        what = "the same repository" if clash.repo_id.lower() == model.repo_id.lower() else "the same infohash"
        errors.append(CatalogError(model.torrent_path, f"{what} as {clash.rel_path} ({clash.repo_id}); skipped"))
    return kept, errors
