"""Render the catalog into the static site: HTML pages, .torrent files and the JSON API."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from .catalog import Catalog, Model
from .config import Config
from .magnet import magnet_link
from .torrent import torrent_with_extras

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@dataclass(frozen=True)
class Page:
    """Where a model's files live in the site, relative to its root."""

    model: Model

    @property
    def dir(self) -> str:
        return f"models/{self.model.repo_id}/"

    @property
    def torrent(self) -> str:
        return f"torrents/{self.model.repo_id}/{self.model.torrent_path.name}"

    @property
    def api(self) -> str:
        return f"api/models/{self.model.repo_id}.json"


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def model_record(model: Model, config: Config) -> dict[str, Any]:
    """One model in the JSON API."""
    t, page = model.torrent, Page(model)
    return {
        "id": model.repo_id,
        "name": t.name,
        "revision": model.revision,
        "page": page.dir,
        "torrent": page.torrent,
        "magnet": magnet_link(t, config.trackers, config.webseeds),
        "infohash_v1": t.infohash_v1,
        "infohash_v2": t.infohash_v2,
        "size": t.total_size,
        "file_count": len(t.files),
        "piece_length": t.piece_length,
        "num_pieces": t.num_pieces,
        "webseeds": [*t.webseeds, *config.webseeds],
        "trackers": list(dict.fromkeys([*t.trackers, *config.trackers])),
    }


def render_site(catalog: Catalog, config: Config, out: Path) -> None:
    """Write every file of the site into ``out`` (an empty folder)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters["size"] = human_size
    records = [model_record(m, config) for m in catalog.models]
    common = {"config": config, "base": config.base_url}

    _write(out / "index.html", env.get_template("index.html").render(models=records, **common))
    for model, record in zip(catalog.models, records):
        page = Page(model)
        data = torrent_with_extras(model.torrent, config.trackers, config.webseeds)
        _write(out / page.torrent, data)
        detail = dict(record, files=[{"path": f.path_str, "size": f.size} for f in model.torrent.files])
        _write(out / page.api, json.dumps(detail, indent=1))
        html = env.get_template("model.html").render(model=model, record=record, files=detail["files"], **common)
        _write(out / page.dir / "index.html", html)
    _write(out / "api" / "models.json", json.dumps(records, indent=1))


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
