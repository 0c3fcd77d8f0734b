"""Build the site: registry -> catalog -> rendered files, swapped into place only when complete."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .catalog import Catalog, Model, load_catalog
from .config import Config
from .crosscheck import compare_files
from .errors import BuildError, MetadataCacheError, ModelregError
from .fsutil import staged_dir
from .hub import HubClient, hub_endpoint, hub_token
from .metacache import MetaCache
from .refresh import RefreshReport, RefreshSettings, refresh
from .render import render_site


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

    def summary(self) -> str:
        lines = [self.refresh.summary()] if self.refresh else []
        lines.append(f"built {self.models} models into {self.out} in {self.seconds:.2f} s")
        if self.errors:
            lines.append(f"{len(self.errors)} problem(s), skipped:")
            lines += [f"  - {e}" for e in self.errors]
        if self.model_problems:
            lines.append(f"{len(self.model_problems)} problem(s) in models built:")
            lines += [f"  - {repo_id}: {problem}" for repo_id, problem in self.model_problems]
        return "\n".join(lines)


def build_site(config: Config, strict: bool = False, refresh_metadata: RefreshSettings | None = None) -> BuildReport:
    """Read the registry, join the cached Hugging Face metadata and render the site into ``config.out``.

    With ``strict``, any bad torrent fails the build before anything is written. Only with
    ``refresh_metadata`` does the build talk to the hub (to update the cache first); otherwise it reads
    the cache alone.
    """
    start = time.perf_counter()
    registry, out = config.path(config.registry), config.path(config.out)
    catalog: Catalog = load_catalog(registry)
    if strict and catalog.errors:
        problems = "\n".join(f"  - {e}" for e in catalog.errors)
        raise BuildError(f"{len(catalog.errors)} problem(s) in {registry} (--strict, nothing written):\n{problems}")
    metacache = MetaCache.for_registry(registry)
    refreshed = None
    if refresh_metadata is not None:
        client = HubClient(hub_endpoint(config), hub_token(), refresh_metadata.retry)
        refreshed = refresh(catalog.models, metacache, client, refresh_metadata)
    catalog = join_metadata(catalog, metacache)
    with staged_dir(out) as staging:
        render_site(catalog, config, staging)
    problems = [(m.repo_id, p) for m in catalog.models for p in m.problems]
    return BuildReport(out, len(catalog.models), catalog.errors, time.perf_counter() - start,
                       model_problems=problems, refresh=refreshed)


def join_metadata(catalog: Catalog, cache: MetaCache) -> Catalog:
    """The catalog with each model's cached metadata in ``meta`` and what is wrong with it in ``problems``."""
    return Catalog([_joined(model, cache) for model in catalog.models], catalog.errors)


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
