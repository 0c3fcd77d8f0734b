"""The jinja2 environment of the site's templates, and a fingerprint of everything that shapes the output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import jinja2

from .records import binary_size, human_count, human_size

PACKAGE = Path(__file__).resolve().parent.parent
TEMPLATES = PACKAGE.parent / "templates"
STATIC = TEMPLATES / "static"


def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    """Autoescaping (HTML and XML) environment with the site's filters."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        autoescape=jinja2.select_autoescape(["html", "xml"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["size"] = human_size
    env.filters["count"] = human_count
    env.filters["bsize"] = binary_size
    return env


def fingerprint(templates: Path = TEMPLATES) -> str:
    """A hash of the templates, static files and rendering code: a change to any of them re-renders all."""
    h = hashlib.sha256()
    sources = sorted(templates.rglob("*")) + sorted((PACKAGE / "site").glob("*.py"))
    sources += [PACKAGE / name for name in ("sanitize.py", "magnet.py", "formats.py", "torrent.py", "catalog.py")]
    for path in sources:
        if path.is_file():
            h.update(str(path.relative_to(PACKAGE.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
