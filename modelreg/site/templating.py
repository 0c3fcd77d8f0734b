"""The site's theme: packaged templates and static files, overridden file by file from a user's folder.

The theme ships inside the package (``modelreg/site/templates/``), so an installed wheel can build a site.
A file in the user's ``theme_dir`` (``templates/`` beside ``modelreg.toml`` by default) replaces the
packaged file of the same relative path, like MkDocs' ``custom_dir``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
from collections.abc import Iterator
from pathlib import Path

import jinja2

from modelreg.config import Config
from modelreg.site.records import binary_size, human_count, human_size, link, plural

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATES = Path(__file__).resolve().parent / "templates"
# Packages whose code shapes the output: a change to any file in them, or in a top-level module (units, config,
# errors: every layer uses them), re-renders every page.
RENDERING_PACKAGES = ("site", "registry", "hf", "torrent")


class Theme:
    """The packaged templates with an optional folder of overrides in front of them."""

    def __init__(self, overrides: Path | None = None):
        self.overrides = overrides if overrides is not None and overrides.is_dir() else None
        self.dirs = [d for d in (self.overrides, TEMPLATES) if d is not None]

    def environment(self, config: Config | None = None) -> jinja2.Environment:
        """Autoescaping (HTML and XML) environment with the site's filters, for one build (templates are
        read once: a change to one during the build is seen by the next build).

        ``link`` makes every link to a page (see :func:`modelreg.site.records.link`), as ``config`` says.
        """
        env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in self.dirs]),
            autoescape=jinja2.select_autoescape(["html", "xml"]),
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # one environment per build: a template is read once, not checked on disk at each of the
            # thousands of get_template() calls of a build (model pages, imports, listing pages)
            auto_reload=False,
        )
        env.filters["size"] = human_size
        env.filters["count"] = human_count
        env.filters["bsize"] = binary_size
        env.filters["plural"] = plural
        env.filters["link"] = functools.partial(link, directory_urls=(config or Config()).use_directory_urls)
        # JSON to show in a page: real characters, escaped as HTML by autoescape (tojson's \u0026 is for <script>).
        env.filters["shquote"] = shlex.quote  # names in shell commands come from untrusted torrents
        # A JSON string is a valid Python string literal (non-ASCII kept, as site.js writes it too).
        env.filters["pystr"] = functools.partial(json.dumps, ensure_ascii=False)
        env.filters["pretty_json"] = lambda value: json.dumps(value, indent=1, ensure_ascii=False)
        return env

    def static_files(self) -> Iterator[tuple[str, Path]]:
        """Each static file as (path relative to ``static/``, file to copy), an override winning."""
        seen: set[str] = set()
        for folder in self.dirs:
            root = folder / "static"
            for path in sorted(root.rglob("*")) if root.is_dir() else ():
                rel = path.relative_to(root).as_posix()
                if path.is_file() and rel not in seen:
                    seen.add(rel)
                    yield rel, path

    def fingerprint(self) -> str:
        """A hash of the theme (overrides included), of every module of the packages that shape the output
        and of the top-level modules they all use (``units.py`` formats the pages' dates): a change to any of
        them re-renders all."""
        h = hashlib.sha256()
        for n, folder in enumerate(self.dirs):
            for path in sorted(folder.rglob("*")):
                if path.is_file():
                    h.update(b"%d\0%s\0" % (n, path.relative_to(folder).as_posix().encode()) + path.read_bytes())
        modules = sorted(PACKAGE.glob("*.py"))
        for package in RENDERING_PACKAGES:
            modules += sorted((PACKAGE / package).rglob("*.py"))
        for path in modules:
            h.update(str(path.relative_to(PACKAGE)).encode() + b"\0" + path.read_bytes() + b"\0")
        return h.hexdigest()

