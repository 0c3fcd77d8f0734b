"""Build the site: registry -> catalog -> rendered files, swapped into place only when complete."""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

from modelreg.config import Config
from modelreg.errors import BuildError, MetadataCacheError, ModelregError
from modelreg.fsutil import staged_update, switch_path
from modelreg.registry.catalog import Catalog, Model, checked_date, load_catalog, read_torrent, scan_registry
from modelreg.registry.crosscheck import compare_files
from modelreg.registry.health import HealthStore, join_health
from modelreg.registry.metacache import MAIN, MetaCache
from modelreg.registry.refresh import RefreshReport, RefreshSettings, refresh
from modelreg.site import ParseCache, Reuse, render_site
from modelreg.site.parsecache import identity
from modelreg.site.render import model_files
from modelreg.site.workers import RenderPool

#: A site larger than this gets a warning: GitHub Pages publishes at most 1 GB.
PAGES_WARN_BYTES = 800_000_000
#: Environment variable naming the folder of incremental build caches (default: the user's cache folder).
CACHE_ENV = "MODELREG_CACHE_DIR"


@dataclass
class BuildReport:
    """What a build did: how many models, which files were skipped and why, how long it took."""

    out: Path
    models: int
    errors: list[ModelregError] = field(default_factory=list)
    seconds: float = 0.0
    #: (repository id, problem) for every model built with missing metadata or a file mismatch.
    model_problems: list[tuple[str, str]] = field(default_factory=list)
    refresh: RefreshReport | None = None
    #: Models rendered anew and reused unchanged from the previous build.
    rendered: int = 0
    reused: int = 0
    #: The size of the site's files.
    site_bytes: int = 0

    def summary(self) -> str:
        lines = [self.refresh.summary()] if self.refresh else []
        lines.append(f"built {self.models} models into {self.out} in {self.seconds:.2f} s"
                     f" ({self.rendered} rendered, {self.reused} unchanged); the site is {self.site_bytes / 1e6:,.1f} MB")
        if self.site_bytes > PAGES_WARN_BYTES:
            lines.append(f"warning: the site is {self.site_bytes / 1e9:.2f} GB, near GitHub Pages' 1 GB limit: "
                         "set torrent_url to link the registry's .torrent files instead of copying them")
        if self.errors:
            lines.append(f"{len(self.errors)} problem(s), skipped:")
            lines += [f"  - {e}" for e in self.errors]
        if self.model_problems:
            lines.append(f"{len(self.model_problems)} problem(s) in models built:")
            lines += [f"  - {repo_id}: {problem}" for repo_id, problem in self.model_problems]
        return "\n".join(lines)


def cache_dir(out: Path) -> Path:
    """Where the incremental builds of the site in ``out`` keep their state.

    ``$MODELREG_CACHE_DIR`` or ``$XDG_CACHE_HOME/modelreg`` (``~/.cache/modelreg``), one folder per output
    path: neither the project nor the folder around the site gets extra files, and deleting the cache
    only makes the next build a full one.
    """
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modelreg")
    out = switch_path(out)
    return Path(base) / "sites" / f"{out.name}-{hashlib.sha256(str(out).encode()).hexdigest()[:16]}"


@contextlib.contextmanager
def _without_cyclic_gc() -> Iterator[None]:
    """Pause Python's cyclic garbage collector.

    A build allocates millions of small acyclic objects (file entries, records, strings), which
    reference counting frees; the cyclic collector would walk them all again and again (about a third
    of a rebuild of 10,000 models). It runs again, as before, when the build ends.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_site(config: Config, strict: bool = False, refresh_metadata: RefreshSettings | None = None,
               incremental: bool = True, jobs: int | None = None) -> BuildReport:
    """Read the registry, join the cached Hugging Face metadata and render the site into ``config.out``.

    With ``strict``, any bad torrent fails the build before anything is written. Only with
    ``refresh_metadata`` does the build talk to the hub (to update the cache first); otherwise it reads
    the cache alone. ``incremental`` reuses parsed torrents and the files of unchanged models from the
    previous build (see ``modelreg.site.reuse``). ``jobs`` processes render the models to render (None:
    one per core, where there are enough of them; 1: this process alone; see ``modelreg.site.workers``).

    Raises:
        BuildError: ``jobs`` is below 1, a torrent changed during the build, or (``strict``) the registry
            has problems.
    """
    if jobs is not None and jobs < 1:
        raise BuildError(f"jobs must be at least 1, not {jobs}")
    with _without_cyclic_gc(), contextlib.ExitStack() as caches:
        return _build(config, strict, refresh_metadata, incremental, caches, jobs)


def _build(config: Config, strict: bool, refresh_metadata: RefreshSettings | None, incremental: bool,
           caches: contextlib.ExitStack, jobs: int | None) -> BuildReport:
    start = time.perf_counter()
    registry, out = config.path(config.registry), site_path(config)
    cache = cache_dir(out) if incremental else None
    if cache:
        _drop_legacy(cache)
    parsed = ParseCache(cache / "torrents.sqlite" if cache else None)
    # closed however the build ends: a failed build's writes are rolled back, never left holding a lock
    caches.callback(parsed.db.close)
    reuse = Reuse(cache / "manifest.sqlite" if cache else None, out if cache else None)
    caches.callback(reuse.db.close)
    caches.callback(reuse.stop)  # the check of the live files started below ends with the build
    # The catalog holds every model without its file list; render_site takes one model at a time
    # through prepare(), which reads its files and joins its metadata, so memory holds one model's files.
    # The parse cache keeps the catalog's entries: only torrents whose files changed are read.
    catalog: Catalog = load_catalog(registry, read=parsed.read_light,
                                    paths=scan_registry(registry, parsed) if registry.is_dir() else None,
                                    store=parsed, prefetch=parsed.prefetch if cache else None)
    if strict and catalog.errors:
        problems = "\n".join(f"  - {e}" for e in catalog.errors)
        raise BuildError(f"{len(catalog.errors)} problem(s) in {registry} (--strict, nothing written):\n{problems}")
    metacache = MetaCache.for_registry(registry)
    refreshed = None
    if refresh_metadata is not None:
        # imported here: huggingface_hub and httpx take half a second to import, which a build that
        # reads the metadata cache alone does not need
        from modelreg.hf.client import HubClient, hub_endpoint, hub_token

        client = HubClient(hub_endpoint(config), hub_token(), refresh_metadata.retry)
        refreshed = refresh(catalog.models, metacache, client, refresh_metadata)
    catalog = Catalog(join_health(catalog.models, HealthStore.for_registry(registry)), catalog.errors, catalog.stamps)
    # the live files of the last build's models are checked from now on, in another process: the check
    # takes that process as long as the render's loop takes this one (render_site takes its result)
    reuse.watch(model_files(catalog.models, config))

    def prepare(model: Model) -> Model:
        digest = parsed.digest(model.path)
        # the torrent with its file list, from the cache, checked as the catalog checks its own (a creation
        # date out of range dropped): nothing is asked of the catalog's torrent, whose fields a rebuild
        # loads only where asked (see parsecache._Recalled)
        torrent, _ = checked_date(parsed.read(model.path))
        full = replace(model, torrent=torrent)
        if parsed.digest(model.path) != digest:
            raise BuildError(f"{model.path}: the file changed during the build; build again")
        return _joined(full, metacache)

    # render workers read the file lists from the cache file: what this build parsed must be in it
    parsed.db.commit()
    with staged_update(out, state=cache / "update" if cache else None) as stage, \
            RenderPool(jobs, config, stage.dir, WorkerPrepare(parsed.db.file, registry),
                       parsed.identities) as pool:
        stats = render_site(catalog, config, stage.dir, reuse=reuse, digests=parsed.digests, prepare=prepare,
                            fingerprint=metadata_fingerprints(metacache),
                            identities=parsed.identities, pool=pool)
        stage.kept.update(reuse.kept)
    parsed.save()
    reuse.save()
    problems = stats.problems
    return BuildReport(out, len(catalog.models), catalog.errors, time.perf_counter() - start,
                       model_problems=problems, refresh=refreshed, rendered=stats.rendered, reused=stats.reused,
                       site_bytes=stats.bytes)


@dataclass(frozen=True)
class WorkerPrepare:
    """``prepare`` of :func:`_build` for a render worker (:mod:`modelreg.site.workers`), which has not the
    build's caches open: it reads the model's files from the committed parse cache (``cache``), or parses
    its torrent again, and joins the metadata cache of ``registry``."""

    cache: Path | None
    registry: Path

    def __call__(self, model: Model, digest: str, parsed: tuple[int, int, int, int] | None) -> Model:
        """The model with its files and metadata, from the torrent whose bytes are those of ``digest``
        (read when its stat was ``parsed``).

        Raises:
            BuildError: the torrent changed since the build read it.
            TorrentError: it changed and is no torrent any more.
        """
        opened = _prepared.get(self)
        if opened is None:
            opened = _prepared[self] = (ParseCache(self.cache, readonly=True), MetaCache.for_registry(self.registry))
        cache, metacache = opened
        torrent = None
        try:
            unchanged = parsed is not None and identity(os.stat(model.torrent_path)) == parsed
        except OSError:
            unchanged = False
        if unchanged:
            torrent = cache.committed(model.torrent_path, parsed)
        if torrent is None:
            torrent = read_torrent(model.torrent_path)  # served from these bytes: no second read
            if hashlib.sha256(torrent.raw).hexdigest() != digest:
                raise BuildError(f"{model.torrent_path}: the file changed during the build; build again")
        # as in prepare(): checked as the catalog checks its own (the model comes without it: RenderPool)
        torrent, _ = checked_date(torrent)
        return _joined(replace(model, torrent=torrent), metacache)


#: Each worker's parse cache and metadata cache, opened by its first model.
_prepared: dict[WorkerPrepare, tuple[ParseCache, MetaCache]] = {}


def _drop_legacy(cache: Path) -> None:
    """Delete the whole-file caches of older modelreg versions (now SQLite files beside them)."""
    for name in ("torrents", "manifest"):
        with contextlib.suppress(OSError):
            if (cache / name).is_file():
                (cache / name).unlink()


def site_path(config: Config) -> Path:
    """The site folder readers use: a link to the current version, switched by each build
    (:func:`modelreg.fsutil.staged_update`), so it is not resolved like the other paths."""
    return switch_path(config.root / config.out)


def metadata_fingerprint(cache: MetaCache, model: Model, folders: dict[str, object] | None = None) -> tuple:
    """What identifies the metadata cache file that :func:`_joined` reads for ``model``, without reading it.

    The ``lstat`` of each component of its path below the cache folder (a link anywhere changes it) and
    the ``stat`` of the file: its inode, size, modification and change times (a file rewritten, in place
    or by rename, changes them). The rest of what ``_joined`` computes comes from the model's torrent and
    sidecar, which its key covers already. ``folders`` remembers the orgs' folders' identities during one
    build (an org's folder is on the path of each of its models).
    """
    parts = [*model.repo_id.split("/"), *(model.revision or MAIN).split("/")]
    parts[-1] += ".json"
    here, seen = str(cache.root), []
    for i, part in enumerate(parts, 1 - len(parts)):
        here = os.path.join(here, part)
        memo = folders is not None and i != 0 and i == 1 - len(parts)
        known = folders.get(here) if memo else None  # type: ignore[union-attr]
        if known is None:
            try:
                st = os.lstat(here)
            except OSError as exc:
                known = exc.errno
            else:
                # a folder by what it is (its times change with every entry added beside), the file by its
                # contents
                known = (st.st_mode, st.st_ino) if i else (st.st_mode, st.st_ino, st.st_size, st.st_mtime_ns,
                                                           st.st_ctime_ns)
            if memo:
                folders[here] = known  # type: ignore[index]
        seen.append(known)
        if isinstance(known, int):
            break
    return (str(cache.root), model.repo_id, model.revision, tuple(seen))


def metadata_fingerprints(cache: MetaCache) -> Callable[[Model], tuple]:
    """:func:`metadata_fingerprint` for each model of a build, sparing the ``lstat`` of every model whose
    org has no folder in the cache (one listing of the cache folder, taken now, tells: names compared
    case-folded, as a case-insensitive file system finds them; the same tuple as ``lstat`` gives then), and
    taking each org's folder's identity once."""
    try:
        orgs: set[str] | None = {name.casefold() for name in os.listdir(cache.root)}
    except FileNotFoundError:
        orgs = set()
    except OSError:
        orgs = None  # not a listable folder: lstat tells each model what it is
    root = str(cache.root)
    folders: dict[str, object] = {}

    def fingerprint(model: Model) -> tuple:
        if orgs is not None and model.repo_id.split("/", 1)[0].casefold() not in orgs:
            return (root, model.repo_id, model.revision, (errno.ENOENT,))
        return metadata_fingerprint(cache, model, folders)

    return fingerprint


def join_metadata(catalog: Catalog, cache: MetaCache) -> Catalog:
    """The catalog with each model's cached metadata in ``meta`` and what is wrong with it in ``problems``."""
    return Catalog([_joined(model, cache) for model in catalog.models], catalog.errors, catalog.stamps)


def _joined(model: Model, cache: MetaCache) -> Model:
    problems = list(model.problems)
    if model.revision is None:
        problems.append("no revision is known for this torrent (no sidecar or web seed names one): "
                        "its Hugging Face metadata is the main branch's and may not match its files")
    elif not model.pinned:
        problems.append(f"revision {model.revision!r} is a branch, not a commit: "
                        "its Hugging Face metadata may not match the torrent's files")
    try:
        entry = cache.load(model.repo_id, model.revision)
    except MetadataCacheError as exc:
        return replace(model, problems=(*problems, str(exc)))
    meta = entry.meta if entry else None
    if entry is None:
        problems.append("no Hugging Face metadata cached: run 'modelreg refresh' (or build --refresh-metadata)")
    elif entry.failure and meta is None:
        problems.append(f"no Hugging Face metadata: {entry.failure.detail}")
    elif entry.failure:
        problems.append(f"the last Hugging Face metadata refresh failed: {entry.failure.detail}")
    if meta is not None:
        errors, notes = compare_files(model.torrent, meta)
        problems += errors + notes
    return replace(model, meta=meta, problems=tuple(problems))
