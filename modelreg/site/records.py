"""What the site says about a model: its paths in the site, its JSON API record and its file tree."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from modelreg.registry.catalog import Model
from modelreg.config import Config
from modelreg.site.formats import detect_formats
from modelreg.torrent.magnet import magnet_link


@dataclass(frozen=True)
class Paths:
    """Where a model's files live in the site, relative to the site's root (never starting with '/')."""

    model: Model

    @property
    def page(self) -> str:
        return f"models/{self.model.repo_id}/"

    @property
    def torrent_file(self) -> str:
        """The served .torrent, beside the page (one folder per model keeps rebuilds cheap)."""
        return f"{self.page}{self.model.torrent_path.name}"

    @property
    def torrent(self) -> str:
        """The torrent's URL path (the file name percent-encoded)."""
        return f"{self.page}{quote(self.model.torrent_path.name)}"

    @property
    def api(self) -> str:
        return f"api/models/{self.model.repo_id}.json"

    def outputs(self) -> tuple[str, ...]:
        """Every file written for this model."""
        return (self.page + "index.html", self.torrent_file, self.api)


def last_modified(model: Model) -> str:
    """When the model last changed, as ISO 8601 UTC: HF's lastModified, else the torrent's creation date,
    else the torrent file's modification time (the only source that depends on the checkout)."""
    if model.meta and model.meta.last_modified:
        return _iso(_parse_iso(model.meta.last_modified))
    if model.torrent.creation_date is not None:
        return _iso(dt.datetime.fromtimestamp(max(0, model.torrent.creation_date), dt.timezone.utc))
    return _iso(dt.datetime.fromtimestamp(model.torrent_path.stat().st_mtime, dt.timezone.utc))


def _parse_iso(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.timezone.utc)
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.timezone.utc).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def model_record(model: Model, config: Config) -> dict[str, Any]:
    """One model in ``api/models.json``; every other output of the site is rendered from this record."""
    t, paths, meta = model.torrent, Paths(model), model.meta
    return {
        "id": model.repo_id,
        "org": model.org,
        "name": t.name,
        "revision": model.revision,
        "pinned": model.pinned,
        "page": paths.page,
        "torrent": paths.torrent,
        "magnet": magnet_link(t, config.trackers, config.webseeds),
        "infohash_v1": t.infohash_v1,
        "infohash_v2": t.infohash_v2,
        "size": t.total_size,
        "file_count": len(t.files),
        "piece_length": t.piece_length,
        "num_pieces": t.num_pieces,
        "webseeds": list(dict.fromkeys([*t.webseeds, *config.webseeds])),
        "trackers": list(dict.fromkeys([*t.trackers, *config.trackers])),
        "license": meta.license if meta else None,
        "tags": list(meta.tags) if meta else [],
        "pipeline_tag": meta.pipeline_tag if meta else None,
        "parameters": meta.parameters if meta else None,
        "downloads": meta.downloads if meta else None,
        "likes": meta.likes if meta else None,
        "formats": detect_formats(f.path_str for f in t.files),
        "last_modified": last_modified(model),
        "problems": list(model.problems),
        "health": model.health.summary() if model.health else None,
    }


def file_list(model: Model) -> list[dict[str, Any]]:
    """The torrent's files (pad files left out) for ``api/models/<org>/<name>.json``."""
    return [{"path": f.path_str, "size": f.size} for f in model.torrent.files]


@dataclass
class Folder:
    """A folder of the file tree, with its total size and file count for the ``<summary>``."""

    name: str
    folders: dict[str, "Folder"] = field(default_factory=dict)
    files: list[tuple[str, int]] = field(default_factory=list)
    size: int = 0
    count: int = 0

    def sorted_folders(self) -> list["Folder"]:
        return sorted(self.folders.values(), key=lambda f: f.name.lower())


def file_tree(model: Model) -> Folder:
    """The torrent's files as nested folders (relative to the torrent's own folder)."""
    root = Folder(model.torrent.name)
    for f in model.torrent.files:
        node = root
        node.size += f.size
        node.count += 1
        for part in f.path[:-1]:
            node = node.folders.setdefault(part, Folder(part))
            node.size += f.size
            node.count += 1
        node.files.append((f.path[-1], f.size))
    return root


def human_size(n: int | None) -> str:
    """Bytes in decimal units, as download tools and HF show them (8.1 GB)."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def binary_size(n: int) -> str:
    """A power-of-two size such as a piece length: 4 MiB, 16 KiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def human_count(n: int | None) -> str:
    """A parameter or download count the way model cards write it: 7.6B, 350M, 12k."""
    if n is None:
        return ""
    for div, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= div:
            value = n / div
            return f"{value:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)
