"""The Hugging Face Hub API subset that ``huggingface_hub`` downloads with, answered by the mirror.

With ``HF_ENDPOINT`` pointing at the gateway, ``hf download``, ``snapshot_download``,
``hf_hub_download``, ``HfApi().model_info()`` / ``list_repo_files()`` and ``from_pretrained`` use:

- ``GET /api/models/<org>/<name>[/revision/<rev>]`` (``?blobs=true`` adds sizes, blob ids and LFS
  hashes; ``expand=`` keeps only the named fields): the model info, from the registry's metadata cache
  (card metadata, tags, dates) and the torrent (the files);
- ``GET /api/models/<org>/<name>/tree/<rev>[/<path>]`` (``recursive``, ``expand``; pages of 1000
  entries, 50 with ``expand``, linked by ``Link: <...>; rel="next"`` like HF);
- ``HEAD`` and ``GET /<org>/<name>/resolve/<rev>/<path>``: the file's bytes from the verified piece
  cache (a miss is fetched from upstream and verified piece by piece), never a redirect, with
  ``X-Repo-Commit``, ``ETag`` (LFS SHA-256 or git blob id), ``X-Linked-Etag`` / ``X-Linked-Size``
  (LFS files), ``Content-Length``, ``Accept-Ranges`` and ``Range`` answers.

Only files of the served torrent are listed and served. ``<rev>`` is the served commit, or a branch
whose served commit the metadata cache records (``main``: else the repository's first served commit,
the one the registry pins). Errors answer as HF does (status, ``X-Error-Code``, ``X-Error-Message``, JSON
``{"error": ...}``), so the client raises its own ``RepositoryNotFoundError``, ``RevisionNotFoundError``,
``EntryNotFoundError`` or ``GatedRepoError``.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from dataclasses import dataclass, field
from urllib.parse import unquote

from aiohttp import web

from modelreg.errors import ConfigError, MetadataCacheError, WebseedError
from modelreg.hf.metadata import ModelMeta
from modelreg.registry.catalog import COMMIT
from modelreg.registry.metacache import MetaCache
from modelreg.torrent.metainfo import FileEntry
from modelreg.webseed.accesslog import note
from modelreg.webseed.app import Gateway
from modelreg.webseed.hffiles import CheckedFiles, HfFile, lfs_hashes
from modelreg.webseed.ranges import RangeNotSatisfiable
from modelreg.webseed.routes import Served, Target
from modelreg.webseed.tokens import TokenFile

PAGE = 1000
PAGE_EXPANDED = 50
#: Seconds a model's cached metadata is reused before the file is read again.
META_TTL = 30.0
_PRINTABLE = re.compile(r"[^\x20-\x7e]")
_BRANCH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,254}$")
_HEADERS = web.RequestKey("modelreg_hfapi", dict) if hasattr(web, "RequestKey") else "modelreg_hfapi"


class HfApiError(WebseedError):
    """An answer in HF's error shape: status, ``X-Error-Code`` and message (and extra headers)."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None):
        super().__init__(status, message)
        self.code = code
        self.headers = headers or {}


@dataclass
class _Model:
    """What the API says about one served revision (metadata re-read every META_TTL seconds)."""

    served: Served
    meta: ModelMeta | None
    lfs: dict[str, str]
    files: list[FileEntry] = field(default_factory=list)
    loaded: float = 0.0


class HfApi:
    """The HF paths of a mirror-mode gateway; constructing it adds them to the gateway's application."""

    def __init__(self, gateway: Gateway, metadata: MetaCache | None = None, tokens: TokenFile | None = None):
        """Add the HF paths to ``gateway``'s application: card metadata from ``metadata``, tokens checked by ``tokens``.

        Raises:
            ConfigError: the gateway is not in mirror mode.
        """
        if not gateway.mirror or gateway.cache is None or gateway.fetcher is None:
            raise ConfigError("the Hugging Face API is served in mirror mode only (it serves verified bytes)")
        self.gateway = gateway
        self.metadata = metadata
        self.tokens = tokens
        self.checked = CheckedFiles(gateway.cache, gateway.fetcher)
        self._repos: dict[str, list[Served]] = {}
        for served in gateway.serve:
            if served.torrent is not None:
                self._repos.setdefault(served.repo_id.lower(), []).append(served)
        self._models: dict[tuple[str, str], _Model] = {}
        gateway.extensions.append(self.install)

    def install(self, app: web.Application) -> None:
        app.router.add_route("GET", "/api/models/{tail:.*}", self._guard("api", self.api))
        for method in ("GET", "HEAD"):
            app.router.add_route(method, "/{org}/{name}/resolve/{tail:.*}", self._guard("resolve", self.resolve))
        app.on_response_prepare.append(_add_headers)

    # -- plumbing --------------------------------------------------------------------------------

    def _guard(self, kind: str, handler):
        async def guarded(request: web.Request) -> web.StreamResponse:
            self.gateway.metrics.hf_api_requests[kind] += 1
            try:
                self._authorize(request)
                return await handler(request)
            except WebseedError as exc:
                if note(request).get("response") is not None or isinstance(exc, RangeNotSatisfiable):
                    raise  # the gateway's own answer: cut short once under way, or 416 with Content-Range
                note(request)["error"] = str(exc)
                return _error_response(exc)

        return guarded

    def _authorize(self, request: web.Request) -> None:
        if self.tokens is None:
            return
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            parts = _parts(request)
            what = "/".join(parts[3:5] if parts[1:3] == ["api", "models"] else parts[1:3])
            raise HfApiError(401, f"Access to model {what} is restricted. You must have access to it and be "
                             "authenticated to access it. Please log in.", "GatedRepo")
        if not self.tokens.accepts(token.strip()):
            raise HfApiError(401, "Invalid credentials in Authorization header")

    def _locate(self, org: str, name: str, revision: str) -> Served:
        """The served revision ``revision`` names. Raises HfApiError (RepoNotFound, RevisionNotFound)."""
        items = self._repos.get(f"{org}/{name}".lower())
        if not items:
            raise HfApiError(404, "Repository not found", "RepoNotFound")
        if COMMIT.match(revision):
            found = next((s for s in items if s.revision == revision), None)
        elif _BRANCH.match(revision):
            commit = self._branch_commit(items[0].repo_id, revision)
            found = next((s for s in items if s.revision == commit), None)
            if found is None and revision == "main":  # the registry pins what its "main" is
                found = items[0]
        else:
            found = None
        if found is None:
            raise HfApiError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        return found

    def _branch_commit(self, repo_id: str, branch: str) -> str | None:
        if self.metadata is None:
            return None
        try:
            entry = self.metadata.load(repo_id, None if branch == "main" else branch)
        except (MetadataCacheError, OSError, ValueError):
            return None
        return entry.meta.commit if entry and entry.meta else None

    def _model(self, served: Served) -> _Model:
        found = self._models.get(served.key)
        now = time.monotonic()
        if found is not None and now - found.loaded < META_TTL:
            return found
        files = sorted((e for e in served.torrent.layout if not e.is_pad), key=lambda e: e.path_str)
        meta = self._meta(served)
        found = self._models[served.key] = _Model(served, meta, lfs_hashes(meta, files), files, now)
        return found

    def _meta(self, served: Served) -> ModelMeta | None:
        """The cached metadata of exactly the served commit (a branch's, if it resolved to it), else None."""
        if self.metadata is None:
            return None
        for revision in (served.revision, None):
            try:
                entry = self.metadata.load(served.repo_id, revision)
            except (MetadataCacheError, OSError, ValueError):
                continue
            meta = entry.meta if entry else None
            if meta is not None and meta.commit in ((served.revision,) if revision is None else (None, served.revision)):
                return meta
        return None

    async def _describe(self, model: _Model, entries: list[FileEntry]) -> list[HfFile]:
        store = self.gateway.cache.store(model.served)
        return list(await asyncio.gather(
            *(self.checked.describe(store, e, model.lfs.get(e.path_str)) for e in entries)))

    # -- endpoints -------------------------------------------------------------------------------

    async def api(self, request: web.Request) -> web.Response:
        """The JSON answer to ``GET /api/models/...``: model info, or a tree listing.

        Raises:
            HfApiError: as HF answers: 401 without a listed token (with ``--require-token``), 404 with
                ``X-Error-Code`` for an unknown repository, revision or path, 400 for a path that is not UTF-8.
        """
        parts = _parts(request)  # ["", "api", "models", org, name, action?, rev?, path...]
        if len(parts) < 5:
            raise HfApiError(404, "Not Found")
        org, name, rest = parts[3], parts[4], parts[5:]
        if not rest or rest == [""]:
            action, revision = "info", "main"
        elif rest[0] in ("revision", "tree") and len(rest) >= 2:
            action, revision = rest[0], rest[1]
        else:
            raise HfApiError(404, "Not Found")
        served = self._locate(org, name, revision)
        model = self._model(served)
        if action == "tree":
            return await self._tree(request, model, "/".join(rest[2:]).strip("/"))
        return await self._info(request, model)

    async def _info(self, request: web.Request, model: _Model) -> web.Response:
        served, meta = model.served, model.meta or ModelMeta(model.served.repo_id)
        if request.query.get("blobs", "").lower() in ("1", "true"):
            siblings = []
            for f in await self._describe(model, model.files):
                sib: dict = {"rfilename": f.path, "size": f.size, "blobId": f.blob_id}
                if f.lfs_sha256:
                    sib["lfs"] = {"sha256": f.lfs_sha256, "size": f.size, "pointerSize": f.pointer_size()}
                siblings.append(sib)
        else:
            siblings = [{"rfilename": e.path_str} for e in model.files]
        card = {"license": meta.license, "base_model": list(meta.base_model) or None,
                "pipeline_tag": meta.pipeline_tag, "library_name": meta.library_name}
        data = {
            "id": served.repo_id, "modelId": served.repo_id, "author": served.org,
            "sha": served.revision, "lastModified": meta.last_modified, "createdAt": meta.created_at,
            "private": False, "gated": meta.gated if meta.gated in ("auto", "manual") else False,
            "disabled": False, "downloads": meta.downloads, "likes": meta.likes, "tags": list(meta.tags),
            "pipeline_tag": meta.pipeline_tag, "library_name": meta.library_name,
            "cardData": {k: v for k, v in card.items() if v is not None}, "siblings": siblings,
            "spaces": [], "usedStorage": sum(e.size for e in model.files),
        }
        data = {k: v for k, v in data.items() if v is not None}
        expand = request.query.getall("expand", []) + request.query.getall("expand[]", [])
        if expand:
            data = {k: v for k, v in data.items() if k == "id" or k in expand}
        return web.json_response(data, headers={"X-Repo-Commit": served.revision})

    async def _tree(self, request: web.Request, model: _Model, prefix: str) -> web.Response:
        commit = model.served.revision
        recursive = request.query.get("recursive", "").lower() in ("1", "true")
        expand = request.query.get("expand", "").lower() in ("1", "true")
        by_path = {e.path_str: e for e in model.files}
        if prefix in by_path:  # HF lists a file path as that one file
            items = [prefix]
        else:
            items = _tree_items(list(by_path), prefix, recursive)
            if items is None:
                raise HfApiError(404, f"Entry not found: {prefix}", "EntryNotFound", {"X-Repo-Commit": commit})
        size = PAGE_EXPANDED if expand else PAGE
        cursor = request.query.get("cursor", "0")
        start = int(cursor) if cursor.isdigit() and len(cursor) < 10 else 0
        page = items[start : start + size]
        described = {f.path: f for f in await self._describe(model, [by_path[p] for p in page if p in by_path])}
        out = []
        for path in page:
            f = described.get(path)
            if f is None:
                out.append({"type": "directory", "oid": _dir_oid(commit, path), "size": 0, "path": path})
                continue
            entry: dict = {"type": "file", "oid": f.blob_id, "size": f.size, "path": f.path}
            if f.lfs_sha256:
                entry["lfs"] = {"oid": f.lfs_sha256, "size": f.size, "pointerSize": f.pointer_size()}
            out.append(entry)
        headers = {"X-Repo-Commit": commit}
        if start + size < len(items):
            query = {"recursive": str(recursive).lower(), "expand": str(expand).lower(), "cursor": str(start + size)}
            scheme = request.headers.get("X-Forwarded-Proto", request.scheme)
            url = request.url.with_query(query)
            headers["Link"] = f'<{url.with_scheme(scheme) if scheme in ("http", "https") else url}>; rel="next"'
        return web.json_response(out, headers=headers)

    async def resolve(self, request: web.Request) -> web.StreamResponse:
        """The file to answer ``HEAD``/``GET /<org>/<name>/resolve/<rev>/<path>`` with.

        Raises:
            HfApiError: as HF answers: 401 without a listed token (with ``--require-token``), 404 with
                ``X-Error-Code`` for an unknown repository, revision or file.
        """
        parts = _parts(request)  # ["", org, name, "resolve", rev, path...]
        if len(parts) < 6 or any(p in ("", ".", "..") for p in parts[5:]):
            raise HfApiError(404, "Entry not found", "EntryNotFound")
        served = self._locate(parts[1], parts[2], parts[4])
        path = "/".join(parts[5:])
        entry = served.files.get(path)
        if entry is None or entry.is_pad:
            raise HfApiError(404, "Entry not found", "EntryNotFound", {"X-Repo-Commit": served.revision})
        model = self._model(served)
        hf = (await self._describe(model, [entry]))[0]
        headers = {"X-Repo-Commit": served.revision, "ETag": f'"{hf.etag}"'}
        if hf.lfs_sha256:
            headers.update({"X-Linked-Etag": f'"{hf.lfs_sha256}"', "X-Linked-Size": str(hf.size)})
        request[_HEADERS] = headers
        return await self.gateway.serve_target(request, Target(served, path, entry))


async def _add_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """Put an HF file's headers on its successful answer (sent by the gateway's own file code)."""
    extra = request.get(_HEADERS)
    if extra and 200 <= response.status < 300:
        response.headers.update(extra)


def _error_response(exc: WebseedError) -> web.Response:
    message = _PRINTABLE.sub("?", str(exc))  # no CR, LF or non-ASCII in a header value
    headers = {"X-Error-Message": message}
    if isinstance(exc, HfApiError):
        headers.update(exc.headers)
        if exc.code:
            headers["X-Error-Code"] = exc.code
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="modelreg"'
    elif exc.status in (502, 503, 504):
        headers["Retry-After"] = "10"
    return web.json_response({"error": str(exc)}, status=exc.status, headers=headers)


def _parts(request: web.Request) -> list[str]:
    """The request path's components, each percent-decoded (so ``%2F`` inside one stays inside it)."""
    raw = request.raw_path
    if not raw.startswith("/"):  # absolute-form request target
        raw = "/" + raw.partition("://")[2].partition("/")[2]
    try:
        return [unquote(p, errors="strict") for p in raw.split("?", 1)[0].split("/")]
    except UnicodeDecodeError:
        raise HfApiError(400, "the path is not valid percent-encoded UTF-8") from None


def _tree_items(paths: list[str], prefix: str, recursive: bool) -> list[str] | None:
    """Paths under ``prefix`` (folders end with '/' until listed), sorted; None if ``prefix`` is no folder."""
    base = prefix + "/" if prefix else ""
    items: set[str] = set()
    for path in paths:
        if not path.startswith(base):
            continue
        rest = path[len(base) :].split("/")
        if recursive:
            items.update(base + "/".join(rest[:i]) for i in range(1, len(rest)))
            items.add(path)
        else:
            items.add(base + rest[0])
    if prefix and not items:
        return None
    return sorted(items)


def _dir_oid(commit: str, path: str) -> str:
    """A stable id for a folder (HF sends its git tree id, which the files' blob ids alone cannot give)."""
    return hashlib.sha1(f"tree\0{commit}\0{path}".encode()).hexdigest()
