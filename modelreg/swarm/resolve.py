"""``--from``: which torrent to fetch for a repository, from a published site or a local registry folder.

A site (``http(s)://...``, or a built site's folder) is read through its JSON API: ``api/models/<org>/<name>.json``
(``api/models.json`` to list every model, or to find an id written in another case), then the ``.torrent``
the record names. A registry folder is read with :func:`modelreg.registry.catalog.load_catalog`, and the
metadata cache beside it supplies the commit of a branch and the LFS SHA-256 of files where it has them.
Where ``--from`` is not given: ``$MODELREG_FROM``, else the config's ``site_url``.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

from modelreg.config import Config
from modelreg.errors import MetadataCacheError, ModelregError, SourceError, TorrentError
from modelreg.registry.catalog import COMMIT, REPO_ID, Model, load_catalog
from modelreg.registry.metacache import MetaCache
from modelreg.torrent.metainfo import TORRENT_MAX_BYTES, Torrent

FROM_ENV = "MODELREG_FROM"
#: Largest API record accepted from a site (a bigger answer is a broken or hostile site); a .torrent's cap is
#: the one of torrent files on disk, :data:`~modelreg.torrent.metainfo.TORRENT_MAX_BYTES`.
MAX_RECORD = 64 << 20
TIMEOUT = 30


@dataclass(frozen=True)
class Entry:
    """A registry's torrent of one repository, with what placing its files in the HF cache needs."""

    repo_id: str
    revision: str | None
    torrent: Torrent
    where: str
    #: The full commit the snapshot folder is named by (None where the registry does not know it).
    commit: str | None = None
    #: The branch ``refs/`` records (a sidecar's or record's ``branch``, else main).
    branch: str = "main"
    #: Whether this is the registry's newest torrent of the repository (only then is the ref written).
    newest: bool = True
    #: Repository path -> LFS SHA-256, for the files the metadata lists as LFS.
    lfs_sha256: dict[str, str] = field(default_factory=dict)


def from_spec(explicit: str | None, config: Config | None) -> str:
    """The site or registry to use.

    Raises:
        SourceError: none is named anywhere.
    """
    spec = explicit or os.environ.get(FROM_ENV) or (config.site_url if config else "")
    if not spec:
        raise SourceError("no registry to download from: pass --from with a site URL or a registry folder, "
                          f"or set {FROM_ENV}, or site_url in modelreg.toml")
    return spec


def open_source(spec: str) -> Site | Registry:
    """A reader for ``spec``: a site URL, a built site's folder (``api/models.json`` in it), or a registry folder.

    Raises:
        SourceError: a folder that does not exist.
    """
    if spec.startswith(("http://", "https://")):
        return Site(spec)
    folder = Path(spec).expanduser()
    if (folder / "api" / "models.json").is_file():
        return Site(folder.resolve().as_uri())
    if not folder.is_dir():
        raise SourceError(f"{spec}: not a site URL and no such folder")
    return Registry(folder)


def pick(entries: list[Entry], repo_id: str, revision: str | None, where: str) -> Entry:
    """The entry of ``repo_id`` (any case) at ``revision`` (a commit, a prefix of one, or a branch);
    without ``revision``, the newest one.

    Raises:
        SourceError: the repository or revision is not in the registry.
    """
    if not REPO_ID.match(repo_id):
        raise SourceError(f"{repo_id!r} is not a repository id (Org/Name)")
    mine = [e for e in entries if e.repo_id.lower() == repo_id.lower()]
    if not mine:
        raise SourceError(f"{where}: {repo_id} is not in this registry")
    if revision is None:
        return next((e for e in mine if e.newest), mine[0])
    for e in mine:
        if revision in (e.revision, e.commit, e.branch) or (len(revision) >= 7 and (e.commit or "").startswith(revision)):
            return e
    have = ", ".join(e.commit or e.revision or "main" for e in mine)
    raise SourceError(f"{where}: {repo_id} has no torrent for revision {revision!r} (the registry has: {have})")


class Registry:
    """A registry folder: torrents with sidecars, and the metadata cache."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.meta = MetaCache.for_registry(folder)

    def __str__(self) -> str:
        return str(self.folder)

    def entries(self) -> tuple[list[Entry], list[ModelregError]]:
        """Every model of the registry, and the problems met reading it."""
        catalog = load_catalog(self.folder)
        return [self._entry(m) for m in catalog.models], catalog.errors

    def entry(self, repo_id: str, revision: str | None) -> Entry:
        entries, errors = self.entries()
        try:
            return pick(entries, repo_id, revision, str(self.folder))
        except SourceError:
            # A file of the repository's folder that could not be read (a FIFO or a huge file named .torrent,
            # a bad sidecar) says more than "not in this registry".
            folder = f"/{repo_id.lower()}/"
            for error in errors:
                path = Path(getattr(error, "path", None) or "/")
                if path.is_relative_to(self.folder) and folder in f"/{path.relative_to(self.folder).as_posix().lower()}":
                    raise SourceError(str(error)) from None
            raise

    def _entry(self, model: Model) -> Entry:
        try:
            cached = self.meta.load(model.repo_id, model.revision)
        except MetadataCacheError:
            cached = None
        meta = cached.meta if cached else None
        commit = model.revision if model.pinned else (meta.commit if meta and meta.commit and COMMIT.match(meta.commit) else None)
        lfs = {f.path: f.lfs_sha256 for f in meta.files if f.lfs_sha256} if meta and meta.commit in (None, commit) else {}
        branch = model.sidecar.get("branch")
        return Entry(model.repo_id, model.revision, model.torrent, str(model.torrent_path), commit,
                     branch if isinstance(branch, str) and branch else _branch(model.revision), True, lfs)


class Site:
    """A published site, read through its JSON API."""

    def __init__(self, url: str):
        self.url = url.rstrip("/") + "/"

    def __str__(self) -> str:
        return self.url

    def entries(self) -> tuple[list[Entry], list[ModelregError]]:
        records = self._json("api/models.json")
        if not isinstance(records, list):
            raise SourceError(f"{self.url}api/models.json: not a list of models")
        entries, errors = [], []
        for record in records:
            try:
                entries.append(self._entry(record))
            except (SourceError, TorrentError) as exc:
                errors.append(exc)
        return entries, errors

    def entry(self, repo_id: str, revision: str | None) -> Entry:
        if not REPO_ID.match(repo_id):
            raise SourceError(f"{repo_id!r} is not a repository id (Org/Name)")
        try:
            record = self._json("api/models/" + quote(repo_id) + ".json")
        except _NotFound:
            # Ids are case-insensitive on the hub; the site's paths are not.
            records = self._json("api/models.json")
            found = [r for r in records if isinstance(r, dict) and str(r.get("id", "")).lower() == repo_id.lower()]
            if not found:
                raise SourceError(f"{self.url}: {repo_id} is not in this registry") from None
            record = self._json("api/models/" + quote(found[0]["id"]) + ".json")
        return pick([self._entry(record)], repo_id, revision, self.url)

    def _entry(self, record: Any) -> Entry:
        if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not REPO_ID.match(record["id"]):
            raise SourceError(f"{self.url}: a model record without a valid 'id'")
        rel = record.get("torrent")
        if not isinstance(rel, str) or not rel or rel.startswith("/") or "://" in rel:
            raise SourceError(f"{self.url}: the record of {record['id']} names no .torrent")
        url = urljoin(self.url, rel)
        torrent = Torrent.from_bytes(self._get(url, TORRENT_MAX_BYTES), source=url)
        revision = record.get("revision") if isinstance(record.get("revision"), str) else None
        commit = revision if revision and COMMIT.match(revision) else None
        lfs = {}
        for f in record.get("files") or []:
            sha = f.get("lfs_sha256") or f.get("sha256") if isinstance(f, dict) else None
            if isinstance(sha, str) and len(sha) == 64 and isinstance(f.get("path"), str):
                lfs[f["path"]] = sha.lower()
        branch = record.get("branch")
        return Entry(record["id"], revision, torrent, url, commit,
                     branch if isinstance(branch, str) and branch else _branch(revision), True, lfs)

    def _json(self, rel: str) -> Any:
        url = urljoin(self.url, rel)
        try:
            return json.loads(self._get(url, MAX_RECORD))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SourceError(f"{url}: not valid JSON: {exc}") from None

    def _get(self, url: str, limit: int) -> bytes:
        try:
            with urllib.request.urlopen(url, timeout=TIMEOUT) as answer:
                data = answer.read(limit + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise _NotFound(f"{url}: not found (404)") from None
            raise SourceError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, FileNotFoundError):
                raise _NotFound(f"{url}: not found") from None
            raise SourceError(f"{url}: cannot fetch: {exc.reason}") from None
        except OSError as exc:
            raise SourceError(f"{url}: cannot fetch: {getattr(exc, 'reason', exc)}") from None
        if len(data) > limit:
            raise SourceError(f"{url}: larger than {limit} bytes")
        return data


class _NotFound(SourceError):
    pass


def _branch(revision: str | None) -> str:
    """The branch a registry entry follows: its revision when that names a branch, else main."""
    return revision if revision and not COMMIT.match(revision) and "/" not in revision else "main"
