"""Render the catalog into the static site: pages, .torrent files, the JSON API, search index and feeds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from modelreg.registry.catalog import Catalog, Model
from modelreg.config import Config
from modelreg.site.sanitize import render_card
from modelreg.errors import BuildError
from modelreg.torrent.metainfo import Torrent, torrent_with_extras
from modelreg.site.feeds import feed_xml, sitemap_xml
from modelreg.site.parsecache import full_torrent
from modelreg.site.records import Paths, file_list, file_tree, model_record, visitor_notes
from modelreg.site.reuse import Reuse
from modelreg.site.search import search_index, search_text
from modelreg.site.templating import Theme


@dataclass
class RenderStats:
    """How many models were rendered and how many reused unchanged from the previous build."""

    rendered: int = 0
    reused: int = 0


def render_site(
    catalog: Catalog,
    config: Config,
    out: Path,
    reuse: Reuse | None = None,
    digests: dict[str, str] | None = None,
) -> RenderStats:
    """Write every file of the site into ``out`` (an empty folder), but for unchanged models' files.

    ``reuse`` finds the models unchanged since the previous build: their files stay where they are
    (``reuse.kept``) and their parts of the shared files are reused; ``digests`` (absolute torrent path -> SHA-256 of its bytes) spares hashing again.
    """
    _readable(out)
    theme = Theme(config.path(config.theme_dir))
    env = theme.environment(config)
    reuse = reuse or Reuse(None, None)
    common = Reuse.key(theme.fingerprint(), _config_key(config))
    entry = env.get_template("entry.html")
    records, entries, texts, jsons = [], [], [], []
    for model in catalog.models:
        paths = Paths(model)
        inputs = _inputs(model, digests)
        key = Reuse.key(common, inputs)
        parts = reuse.lookup(model.repo_id, key)
        if parts is None:
            record = model_record(model, config)
            _render_model(env, model, record, paths, config, out, inputs["torrent"])
            parts = {
                "record": record,
                "json": _json(record),
                "entry": entry.render(r=record),
                "text": search_text(record, (f.path_str for f in model.torrent.files)),
            }
            reuse.written(model.repo_id, key, out, paths.outputs(), parts)
        records.append(parts["record"])
        entries.append(parts["entry"])
        texts.append(parts["text"])
        jsons.append(parts["json"])

    site = {"config": config}
    write = lambda rel, text: _write(out / rel, text)  # noqa: E731
    write("index.html", env.get_template("index.html").render(
        entries=entries, total=len(records), root="", facets=_facets(records), **site))
    write("search.json", search_index(records, texts))
    write("api/models.json", "[\n" + ",\n".join(jsons) + "\n]\n")
    write("api/index.html", env.get_template("api.html").render(
        root="../", example=records[0] if records else None, **site))
    write("feed.xml", feed_xml(env, config, records))
    sitemap = sitemap_xml(env, config, records)
    if sitemap is not None:
        write("sitemap.xml", sitemap)
    write("404.html", env.get_template("404.html").render(root=config.base_url, **site))
    for rel, path in theme.static_files():
        (out / "static" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, out / "static" / rel)
    return RenderStats(rendered=reuse.rendered, reused=reuse.reused)


def _inputs(model: Model, digests: dict[str, str] | None) -> dict[str, Any]:
    """Everything a model's outputs are made from besides the config and the templates."""
    path = os.path.abspath(model.torrent_path)
    digest = (digests or {}).get(path)
    if digest is None:
        digest = hashlib.sha256(full_torrent(model.torrent, model.torrent_path).raw).hexdigest()
    return {
        "torrent": digest,
        "committed": model.committed,  # last_modified falls back to it
        "file": model.torrent_path.name,
        "repo": [model.repo_id, model.revision, model.revision_source, model.rel_path],
        "sidecar": model.sidecar,
        "meta": repr(model.meta),
        "problems": list(model.problems),
        "health": model.health.digest if model.health else None,
    }


def _render_model(env: jinja2.Environment, model: Model, record: dict, paths: Paths, config: Config,
                  out: Path, digest: str) -> None:
    _write(out / paths.torrent_file, _served_torrent(model, config, digest))
    detail = dict(record, files=file_list(model, config))
    _write(out / paths.api, _json(detail) + "\n")
    meta = model.meta
    card = None
    if meta and meta.card_markdown:
        card = render_card(meta.card_markdown, _hf_url(config, model, "blob"), _hf_url(config, model, "resolve"))
    html = env.get_template("model.html").render(
        model=model, meta=meta, record=record, tree=file_tree(model, config), card=card, config=config,
        notes=visitor_notes(model),
        hf_url=_hf_url(config, model, "tree"), root=_relative_root(paths.page),
    )
    _write(out / paths.page / "index.html", html)


def _served_torrent(model: Model, config: Config, digest: str) -> bytes:
    """The .torrent as served: the registry's bytes, with the config's trackers and web seeds if any.

    A torrent that came slim from the parse cache is read again, and must still be the bytes the
    record was made from.
    """
    torrent = model.torrent
    data = torrent.raw
    if not data:
        data = model.torrent_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise BuildError(f"{model.torrent_path}: the file changed during the build; build again")
    if not (config.trackers or config.webseeds):
        return data
    if not torrent.raw:
        torrent = Torrent.from_bytes(data, source=str(model.torrent_path))
    return torrent_with_extras(torrent, config.trackers, config.webseeds)


def _hf_url(config: Config, model: Model, kind: str) -> str:
    """The repository on the HF endpoint at the model's revision (``tree``, ``blob`` or ``resolve``)."""
    return f"{config.hf_endpoint}/{model.repo_id}/{kind}/{model.revision or 'main'}/"


def _relative_root(page_dir: str) -> str:
    """The relative path from a page's folder back to the site's root ('' for the root itself)."""
    return "../" * page_dir.count("/")


def _facets(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The values the index's filters offer, each sorted."""
    def values(key: str) -> list[str]:
        return sorted({r[key] for r in records if r[key]}, key=str.lower)

    return {
        "license": values("license"),
        "task": values("pipeline_tag"),
        "org": values("org"),
        "format": sorted({f for r in records for f in r["formats"]}, key=str.lower),
        "popularity": any(r["downloads"] is not None for r in records),
    }


def _config_key(config: Config) -> dict[str, Any]:
    return {k: v for k, v in vars(config).items() if k not in ("root", "registry", "out", "theme_dir")}


def _json(value: Any) -> str:
    """Compact JSON on one line: without ``indent`` the json module's C encoder does the work (10x faster)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _readable(folder: Path) -> None:
    """The staging folder is made private (0700) by mkdtemp; a site must be readable by a web server."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def _write(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(content.encode("utf-8") if isinstance(content, str) else content)
