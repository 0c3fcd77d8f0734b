"""Build the site: registry -> catalog -> rendered files, swapped into place only when complete."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog, load_catalog
from .config import Config
from .errors import BuildError, ModelregError
from .fsutil import staged_dir
from .site import ParseCache, Reuse, render_site

#: Folder (beside the site's output folder) that holds the incremental build's cache.
CACHE_DIR = ".modelreg-cache"


@dataclass
class BuildReport:
    """What a build did: how many models, which files were skipped and why, how long it took."""

    out: Path
    models: int
    errors: list[ModelregError] = field(default_factory=list)
    seconds: float = 0.0
    #: Model pages rendered anew and reused unchanged from the previous build.
    rendered: int = 0
    reused: int = 0

    def summary(self) -> str:
        lines = [f"built {self.models} models into {self.out} in {self.seconds:.2f} s"
                 f" ({self.rendered} rendered, {self.reused} unchanged)"]
        if self.errors:
            lines.append(f"{len(self.errors)} problem(s), skipped:")
            lines += [f"  - {e}" for e in self.errors]
        return "\n".join(lines)


def cache_dir(out: Path) -> Path:
    """Where incremental builds keep their state: ``.modelreg-cache/<site folder name>/`` beside the site."""
    return out.parent / CACHE_DIR / out.name


def build_site(config: Config, strict: bool = False, incremental: bool = True) -> BuildReport:
    """Read the registry and render the site into ``config.out``.

    With ``strict``, any bad torrent fails the build before anything is written. ``incremental`` reuses
    parsed torrents and the pages of unchanged models from the previous build (see ``modelreg.site.reuse``).
    """
    start = time.perf_counter()
    registry, out = config.path(config.registry), config.path(config.out)
    cache = cache_dir(out) if incremental else None
    parsed = ParseCache(cache / "torrents.pickle" if cache else None)
    catalog: Catalog = load_catalog(registry, read=parsed.read)
    if strict and catalog.errors:
        problems = "\n".join(f"  - {e}" for e in catalog.errors)
        raise BuildError(f"{len(catalog.errors)} problem(s) in {registry} (--strict, nothing written):\n{problems}")
    reuse = Reuse(cache / "manifest.json" if cache else None, out if cache else None)
    with staged_dir(out) as staging:
        stats = render_site(catalog, config, staging, reuse=reuse, digests=parsed.digests)
    parsed.save()
    reuse.save()
    return BuildReport(out, len(catalog.models), catalog.errors, time.perf_counter() - start,
                       stats.rendered, stats.reused)
