"""Build the site: registry -> catalog -> rendered files, swapped into place only when complete."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from .catalog import Catalog, load_catalog
from .config import Config
from .errors import BuildError, ModelregError
from .fsutil import staged_dir
from .render import render_site


@dataclass
class BuildReport:
    """What a build did: how many models, which files were skipped and why, how long it took."""

    out: Path
    models: int
    errors: list[ModelregError] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"built {self.models} models into {self.out} in {self.seconds:.2f} s"]
        if self.errors:
            lines.append(f"{len(self.errors)} problem(s), skipped:")
            lines += [f"  - {e}" for e in self.errors]
        return "\n".join(lines)


def build_site(config: Config, strict: bool = False) -> BuildReport:
    """Read the registry and render the site into ``config.out``.

    With ``strict``, any bad torrent fails the build before anything is written.
    """
    start = time.perf_counter()
    registry, out = config.path(config.registry), config.path(config.out)
    catalog: Catalog = load_catalog(registry)
    if strict and catalog.errors:
        problems = "\n".join(f"  - {e}" for e in catalog.errors)
        raise BuildError(f"{len(catalog.errors)} problem(s) in {registry} (--strict, nothing written):\n{problems}")
    with staged_dir(out) as staging:
        render_site(catalog, config, staging)
    return BuildReport(out, len(catalog.models), catalog.errors, time.perf_counter() - start)
