"""The site's parts that keep it small and its rebuilds proportional: paged listings, the paged API,
shared files kept when unchanged, and ``torrent_url`` instead of copying every .torrent."""

from __future__ import annotations

import json
import marshal
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import quote, unquote

import jinja2
import pytest

from modelreg.config import Config
from modelreg.errors import ConfigError
from modelreg.hf.metadata import ModelMeta
from modelreg.registry.catalog import load_catalog
from modelreg.registry.metacache import MetaCache
from modelreg.site import build as build_module
from modelreg.site import listing, render
from modelreg.site.build import build_site
from modelreg.site.listing import PAGE_SIZE
from modelreg.site.reuse import Reuse
from modelreg.torrent import bencode

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synth import generate  # noqa: E402

COUNT = 240


def _generated(tmp_path: Path, monkeypatch, count: int, seed: int) -> Path:
    """A synthetic registry of ``count`` models, its build caches kept in ``tmp_path``."""
    monkeypatch.setenv("MODELREG_CACHE_DIR", str(tmp_path / "cache"))
    generate(tmp_path / "registry", count, corpus=None, seed=seed)
    return tmp_path / "registry"


@pytest.fixture
def registry(tmp_path: Path, monkeypatch) -> Path:
    return _generated(tmp_path, monkeypatch, COUNT, seed=3)


def inodes(site: Path) -> dict[str, int]:
    return {p.relative_to(site).as_posix(): p.stat().st_ino for p in site.rglob("*") if p.is_file()}


def test_api_pages_and_listing_pages_cover_every_model(registry: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(render, "API_PAGE", 64)
    out = tmp_path / "site"
    build_site(Config(root=tmp_path).replace(registry=str(registry), out=str(out)), incremental=False)
    everything = json.loads((out / "api" / "models.json").read_text())
    manifest = json.loads((out / "api" / "models" / "pages.json").read_text())
    assert manifest["count"] == COUNT and len(manifest["pages"]) == -(-COUNT // 64)
    paged = [r for page in manifest["pages"] for r in json.loads((out / page["url"]).read_text())]
    assert paged == everything
    assert [(p["first"], p["last"]) for p in manifest["pages"]] == [
        (everything[k]["id"], everything[min(k + 63, COUNT - 1)]["id"]) for k in range(0, COUNT, 64)]
    # Every model on exactly one page of the main listing, in name order; the pages link each other.
    pages = -(-COUNT // PAGE_SIZE)
    listed = []
    for n in range(1, pages + 1):
        html = (out / ("index.html" if n == 1 else f"page/{n}/index.html")).read_text()
        listed += [part.split('"', 1)[0] for part in html.split('data-model-id="')[1:]]
        assert ('rel="next"' in html) == (n < pages) and ('rel="prev"' in html) == (n > 1)
    assert listed == [r["id"] for r in everything]
    assert not (out / f"page/{pages + 1}").exists()
    # Each model's own API file is its record with its files, written as compactly as models.json's lines.
    for record in everything[:20]:
        text = (out / "api" / "models" / f"{record['id']}.json").read_text()
        detail = json.loads(text)
        assert detail == dict(record, files=detail["files"]) and len(detail["files"]) == record["file_count"]
        assert text == render._json(detail) + "\n"
    for org in {r["org"] for r in everything}:
        html = (out / "orgs" / org / "index.html").read_text()
        assert html.count("data-model-id=") == min(PAGE_SIZE, sum(r["org"] == org for r in everything))


def test_one_change_rewrites_only_the_files_that_include_it(registry: Path, tmp_path: Path):
    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    before = inodes(out)
    model = load_catalog(registry).models[COUNT - 1]  # on the last listing page
    top = bencode.decode(model.torrent_path.read_bytes())
    top[b"comment"] = b"re-made"
    model.torrent_path.write_bytes(bencode.encode(top))
    report = build_site(config)
    assert (report.rendered, report.reused) == (1, COUNT - 1)
    after = inodes(out)
    assert after.keys() == before.keys()
    rewritten = {rel for rel in after if after[rel] != before[rel]}
    own = {rel for rel in rewritten if rel.startswith((f"models/{model.repo_id}/", f"api/models/{model.repo_id}."))}
    assert own and all(rel.startswith(f"models/{model.repo_id}/") or rel.startswith("api/") for rel in own)
    shared = rewritten - own
    # The full API list changes with any model; nothing else may change beyond what lists this model.
    assert shared <= {"api/models.json", "feed.xml", "api/models/page/1.json", f"page/{-(-COUNT // PAGE_SIZE)}/index.html",
                      f"orgs/{model.org}/index.html"} | {rel for rel in shared if rel.startswith("search/")}
    assert "index.html" not in rewritten and "search/meta.json" not in rewritten
    assert len(rewritten) < 15, sorted(rewritten)


def test_torrent_url_links_the_registry_files_instead_of_copying(registry: Path, tmp_path: Path, capsys):
    out = tmp_path / "site"
    prefix = "https://registry.example.org/raw/main"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out), torrent_url=prefix,
                                           site_url="https://models.example.org")
    report = build_site(config, incremental=False)
    assert not list(out.rglob("*.torrent"))
    for record, model in zip(json.loads((out / "api" / "models.json").read_text()), load_catalog(registry).models,
                             strict=True):
        assert record["torrent"] == f"{prefix}/{quote(model.rel_path)}"
        assert unquote(record["torrent"][len(prefix) + 1:]) == model.rel_path
        assert f"&xs={quote(record['torrent'], safe='')}" in record["magnet"]
    page = (out / record["page"] / "index.html").read_text()
    assert f'href="{record["torrent"]}"' in page
    assert f'href="{record["torrent"]}"' in (out / "feed.xml").read_text()
    row = json.loads((out / record["page"] / "row.json").read_text())["html"]
    assert f'href="{record["torrent"]}"' in row
    # The site's size is reported (every file counted), with a warning only near the Pages limit.
    assert report.site_bytes == sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert "warning" not in report.summary() and f"{report.site_bytes / 1e6:,.1f} MB" in report.summary()


def test_a_large_site_warns_about_the_pages_limit(registry: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setattr(build_module, "PAGES_WARN_BYTES", 1000)
    report = build_site(Config(root=tmp_path).replace(registry=str(registry), out=str(tmp_path / "site")))
    assert "near GitHub Pages' 1 GB limit: set torrent_url" in report.summary()
    assert report.site_bytes == sum(p.stat().st_size for p in (tmp_path / "site").rglob("*") if p.is_file())


def test_torrent_url_must_be_an_absolute_url(tmp_path: Path):
    with pytest.raises(ConfigError, match="torrent_url"):
        Config(root=tmp_path).replace(torrent_url="/torrents/")
    assert Config(root=tmp_path).replace(torrent_url="https://h/t").torrent_url == "https://h/t/"


def tree(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}


def full_build(tmp_path: Path, registry: Path) -> dict[str, bytes]:
    """The :func:`tree` of ``registry``'s site built without caches (into ``tmp_path/full``)."""
    full = tmp_path / "full"
    build_site(Config(root=tmp_path).replace(registry=str(registry), out=str(full)), incremental=False)
    return tree(full)


def test_one_change_renders_only_the_listing_pages_that_include_it(registry: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    model = load_catalog(registry).models[COUNT // 2]
    top = bencode.decode(model.torrent_path.read_bytes())
    top[b"comment"] = b"re-made"
    model.torrent_path.write_bytes(bencode.encode(top))
    rendered: list[str] = []
    rows_at = listing.rows_at
    monkeypatch.setattr(listing, "rows_at", lambda chunk, root: rendered.append(rows_at(chunk, root)) or rendered[-1])
    prepared: list[str] = []
    joined = build_module._joined
    monkeypatch.setattr(build_module, "_joined", lambda m, cache: prepared.append(m.repo_id) or joined(m, cache))
    indexed: list[int] = []
    index_files = render.index_files
    monkeypatch.setattr(render, "index_files", lambda summaries: indexed.append(1) or index_files(summaries))
    report = build_site(config)
    assert (report.rendered, report.reused) == (1, COUNT - 1)
    assert prepared == [model.repo_id]  # unchanged models are not even read
    # A page is rendered again only if it lists the changed model (here none: its row did not change),
    # and the search index is made again only if a model's search summary changed (here none did).
    assert all(f'data-model-id="{model.repo_id}"' in page for page in rendered)
    assert indexed == []
    # A file of the index changed on disk since: the whole index is made again.
    shard = next(p for p in sorted((out / "search" / "t").iterdir()) if p.is_file())
    shard.unlink()
    shard.write_text("{}")
    model.torrent_path.write_bytes(bencode.encode({**top, b"comment": b"again"}))
    assert build_site(config).rendered == 1 and indexed == [1]
    assert tree(out) == full_build(tmp_path, registry)


def test_shared_pages_whose_inputs_are_unchanged_are_neither_rendered_nor_compiled(registry: Path, tmp_path: Path,
                                                                                   monkeypatch):
    """The front page, listings, groups, API page, feed, 404 page and static files are keyed by what they
    are made from: a rebuild with nothing changed loads no template at all; a model added first, of a new
    org, changes the pages it is in (the API page's example among them), as a build from scratch has them."""
    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    loaded: list[str] = []
    get_template = jinja2.Environment.get_template
    monkeypatch.setattr(jinja2.Environment, "get_template",
                        lambda env, name, *args, **kwargs: loaded.append(name) or get_template(env, name, *args, **kwargs))
    assert build_site(config).rendered == 0
    assert loaded == []
    source = load_catalog(registry).models[COUNT // 2].torrent_path
    folder = registry / "aaa-new-org" / "first-model"
    folder.mkdir(parents=True)
    top = bencode.decode(source.read_bytes())
    top[b"info"][b"name"] = b"first-model"  # another info hash: not a duplicate of the model copied
    (folder / "first-model.torrent").write_bytes(bencode.encode(top))
    (folder / "first-model.json").write_text(json.dumps({"repo_id": "aaa-new-org/first-model"}))
    assert build_site(config).rendered == 1
    assert {"api.html", "groups.html", "index.html"} <= set(loaded) and "404.html" not in loaded
    assert "aaa-new-org" in (out / "orgs" / "index.html").read_text()
    assert "aaa-new-org/first-model" in (out / "api" / "index.html").read_text()
    assert tree(out) == full_build(tmp_path, registry)


def test_new_metadata_renders_its_model_again_and_equals_a_full_build(registry: Path, tmp_path: Path, monkeypatch):
    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    model = load_catalog(registry).models[7]
    assert build_site(config).rendered == 0
    MetaCache.for_registry(registry).store_meta(
        ModelMeta(model.repo_id, model.revision, commit=model.revision, license="apache-2.0",
                  card_markdown="# A card written since"), "2026-01-01T00:00:00Z")
    rendered: list[str] = []
    rows_at = listing.rows_at
    monkeypatch.setattr(listing, "rows_at", lambda chunk, root: rendered.append(rows_at(chunk, root)) or rendered[-1])
    report = build_site(config)
    monkeypatch.setattr(listing, "rows_at", rows_at)
    assert (report.rendered, report.reused) == (1, COUNT - 1)
    # its row shows the license: the listing pages that list it (main, org, formats), and only those
    assert rendered and all(f'data-model-id="{model.repo_id}"' in page for page in rendered)
    assert "A card written since" in (out / "models" / model.repo_id / "index.html").read_text()
    assert tree(out) == full_build(tmp_path, registry)
    # the problems of models not rendered again are still reported
    again = build_site(config)
    assert again.rendered == 0 and sorted(again.model_problems) == sorted(report.model_problems)


def test_an_unchanged_model_is_told_by_its_stamps_without_computing_its_key(registry: Path, tmp_path: Path,
                                                                            monkeypatch):
    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    keyed: list[str] = []
    inputs = render._inputs
    monkeypatch.setattr(render, "_inputs", lambda model, digests: keyed.append(model.repo_id) or inputs(model, digests))
    assert build_site(config).reused == COUNT and keyed == []
    # touched: other stamps, so its key is computed, and is the same: reused, and kept with the new stamps
    model = load_catalog(registry).models[11]
    os.utime(model.torrent_path, ns=(1, 1_000_000_000))
    assert build_site(config).reused == COUNT and keyed == [model.repo_id]
    keyed.clear()
    assert build_site(config).reused == COUNT and keyed == []
    # what the stamps do not cover still makes the model again: its metadata (its health: test_health)
    other = load_catalog(registry).models[12]
    MetaCache.for_registry(registry).store_meta(ModelMeta(other.repo_id, other.revision, commit=other.revision,
                                                          license="mit"), "2026-01-01T00:00:00Z")
    report = build_site(config)
    assert (report.rendered, keyed) == (1, [other.repo_id])
    assert tree(out) == full_build(tmp_path, registry)


def test_metadata_fingerprints_are_those_of_one_lstat_each(registry: Path, tmp_path: Path):
    # the listing of the cache folder spares the lstat of models whose org has no folder in it: what it
    # gives must be what lstat tells, whether the folder, the org or the file is there or not
    models = load_catalog(registry).models[:4]
    cache = MetaCache.for_registry(registry)

    def same() -> None:
        fingerprint = build_module.metadata_fingerprints(cache)
        for model in models:
            assert fingerprint(model) == build_module.metadata_fingerprint(cache, model)

    same()  # no cache folder
    cache.root.mkdir()
    same()  # an empty one
    model = models[0]
    cache.store_meta(ModelMeta(model.repo_id, model.revision, commit=model.revision), "2026-01-01T00:00:00Z")
    same()  # one org there, with its file
    (cache.root / models[1].repo_id.split("/")[0].upper()).mkdir()
    same()  # an org in another case, without files
    (cache.root / "stray").write_text("")
    same()


SMALL = 30


@pytest.fixture
def small(tmp_path: Path, monkeypatch) -> Path:
    return _generated(tmp_path, monkeypatch, SMALL, seed=5)


def _caches(tmp_path: Path) -> tuple[Path, Path]:
    (folder,) = (tmp_path / "cache" / "sites").iterdir()
    return folder / "manifest.sqlite", folder / "torrents.sqlite"


def test_damaged_build_caches_are_ignored_and_rebuilt(small: Path, tmp_path: Path):
    registry = small
    import sqlite3

    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    manifest, torrents = _caches(tmp_path)
    full = tmp_path / "full"
    build_site(Config(root=tmp_path).replace(registry=str(registry), out=str(full)), incremental=False)
    # not SQLite at all: a full build, then the caches work again
    manifest.write_bytes(b"not a database" * 100)
    torrents.write_bytes(b"\x00" * 4096)
    report = build_site(config)
    assert (report.rendered, report.reused) == (SMALL, 0) and tree(out) == tree(full)
    assert build_site(config).reused == SMALL
    # SQLite, but rows of the wrong types and shapes: each such entry is a miss (parsed or rendered
    # again), never a traceback (the manifest names no model's file: they come from the model). Without
    # the shared files' state, the API list is made from the bulky rows: a damaged one is rendered again.
    with sqlite3.connect(manifest) as db:
        ids = [row[0] for row in db.execute("SELECT id FROM models ORDER BY id")]
        db.execute("UPDATE models SET light = x'00ff' WHERE id = ?", (ids[0],))
        (light,) = db.execute("SELECT light FROM models WHERE id = ?", (ids[1],)).fetchone()
        _, parts, quick = marshal.loads(light)
        db.execute("UPDATE models SET light = ? WHERE id = ?",
                   (marshal.dumps(((1, 2), parts, quick)), ids[1]))  # the stat of one file, not four
        db.execute("UPDATE models SET key = 42 WHERE id = ?", (ids[2],))  # not a key, whatever the tuple beside
        (light,) = db.execute("SELECT light FROM models WHERE id = ?", (ids[4],)).fetchone()
        stats, parts, quick = marshal.loads(light)
        db.execute("UPDATE models SET light = ? WHERE id = ?",  # the sizes and times, but not as ints
                   (marshal.dumps(((float(stats[0]), *stats[1:]), parts, quick)), ids[4]))
        db.execute("UPDATE parts SET value = x'00' WHERE id = ?", (ids[3],))
        db.execute("UPDATE state SET value = x'0102'")
    with sqlite3.connect(torrents) as db:
        db.execute("UPDATE torrents SET light = x'00', digest = 7 WHERE rowid % 3 = 0")
        db.execute("UPDATE torrents SET layout = 'text' WHERE rowid % 3 = 1")
    report = build_site(config)
    assert report.rendered == 5 and report.reused == SMALL - 5
    assert tree(out) == tree(full)
    assert build_site(config).reused == SMALL


def test_a_failed_build_keeps_the_caches_of_the_site_readers_see(small: Path, tmp_path: Path, monkeypatch):
    registry = small
    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    model = load_catalog(registry).models[3]
    top = bencode.decode(model.torrent_path.read_bytes())
    model.torrent_path.write_bytes(bencode.encode({**top, b"comment": b"re-made"}))

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(render, "feed_xml", fail)
    with pytest.raises(RuntimeError):
        build_site(config)
    monkeypatch.undo()
    monkeypatch.setenv("MODELREG_CACHE_DIR", str(tmp_path / "cache"))
    # the failed build's rows were never committed: the changed model is rendered again, the rest reused
    report = build_site(config)
    assert (report.rendered, report.reused) == (1, SMALL - 1)
    assert tree(out) == full_build(tmp_path, registry)


def test_a_damaged_row_of_a_reused_model_is_found_when_its_page_is_made_again(registry: Path, tmp_path: Path):
    import sqlite3

    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    models = load_catalog(registry).models
    # new metadata shows a license in model 7's row: its listing pages are made again, with model 8's row,
    # which a reused model reads from the manifest's bulky row, damaged here
    MetaCache.for_registry(registry).store_meta(
        ModelMeta(models[7].repo_id, models[7].revision, commit=models[7].revision, license="apache-2.0"),
        "2026-01-01T00:00:00Z")
    (manifest, _) = _caches(tmp_path)
    with sqlite3.connect(manifest) as db:
        db.execute("UPDATE parts SET value = ? WHERE id = ?", (marshal.dumps({"entry": "forged"}), models[8].repo_id))
    report = build_site(config)
    assert (report.rendered, report.reused) == (2, COUNT - 2)
    assert tree(out) == full_build(tmp_path, registry)


def test_reused_models_bulky_parts_are_read_many_at_a_time_each_checked(small: Path, tmp_path: Path, monkeypatch):
    import sqlite3

    from modelreg.site import reuse as reuse_module
    from modelreg.site.reuse import Reuse

    monkeypatch.setattr(reuse_module, "_READ_MANY", 4)  # several queries
    out = tmp_path / "site"
    build_site(Config(root=tmp_path).replace(registry=str(small), out=str(out)))
    (manifest, _) = _caches(tmp_path)
    ids = sorted(m.repo_id for m in load_catalog(small).models)
    with sqlite3.connect(manifest) as db:
        db.execute("UPDATE parts SET value = ? WHERE id = ?", (marshal.dumps({"entry": "forged"}), ids[1]))
        db.execute("DELETE FROM parts WHERE id = ?", (ids[2],))
    reuse = Reuse(manifest, out)
    try:
        rows = reuse._rows()
        for model_id in ids[:-1]:  # reused (the last one is not: it has no parts to give)
            light = reuse_module._light(rows[model_id][1], 4)
            reuse._sha[model_id] = light[1]["sha"]
        asked = [ids[0], ids[1], ids[2], ids[-1], ids[0], *ids[3:-1]]
        found = reuse.parts_of(asked)
        assert [part is None for part in found] == [False, True, True, True, False] + [False] * (len(ids) - 4)
        assert found[0] == found[4] and found[0]["summary"][0] == ids[0]
        assert [part["summary"][0] for part in found[5:]] == ids[3:-1]
        assert reuse.parts(ids[0]) == found[0] and reuse.parts(ids[1]) is None
    finally:
        reuse.stop()
        reuse.db.close()


def test_the_api_list_is_kept_or_spliced_from_the_live_one_unless_that_changed(registry: Path, tmp_path: Path):
    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    api = out / "api" / "models.json"
    inode = api.stat().st_ino
    assert build_site(config).reused == COUNT and api.stat().st_ino == inode  # every line the same: kept
    full = tmp_path / "full"
    for step, k in enumerate((0, COUNT // 2, COUNT - 1)):  # the first, a middle and the last line changed
        model = load_catalog(registry).models[k]
        top = bencode.decode(model.torrent_path.read_bytes())
        top[b"creation date"] = top.get(b"creation date", 0) + 1
        model.torrent_path.write_bytes(bencode.encode(top))
        if step == 2:  # the live list edited by hand: not copied from, made from the manifest's rows
            api.write_bytes(api.read_bytes().replace(b'"id": ', b'"id":  ', 1))
        assert build_site(config).rendered == 1
        build_site(Config(root=tmp_path).replace(registry=str(registry), out=str(full)), incremental=False)
        assert tree(out) == tree(full)


def test_api_offsets_that_do_not_tile_the_live_list_are_not_copied_from(registry: Path, tmp_path: Path):
    """The manifest's index of api/models.json is read from disk: a span shifted by a byte (the lines no
    longer tile the file) makes the list from the manifest's rows instead of copying pieces of two lines."""
    import array
    import sqlite3

    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    manifest, _ = _caches(tmp_path)
    with sqlite3.connect(manifest) as db:
        (value,) = db.execute("SELECT value FROM state WHERE name = 'api'").fetchone()
        state = marshal.loads(value)
        spans = array.array("q")
        spans.frombytes(state["offsets"])
        spans[4] += 1  # the third line's start
        state["offsets"] = spans.tobytes()
        db.execute("UPDATE state SET value = ? WHERE name = 'api'", (marshal.dumps(state),))
    model = load_catalog(registry).models[5]
    top = bencode.decode(model.torrent_path.read_bytes())
    top[b"creation date"] = top.get(b"creation date", 0) + 1
    model.torrent_path.write_bytes(bencode.encode(top))
    assert build_site(config).rendered == 1
    assert tree(out) == full_build(tmp_path, registry)


def test_api_offsets_are_used_only_where_they_tile_the_file():
    import array

    from modelreg.site.reuse import _api_state

    class Db:  # what _api_state asks of the manifest
        def __init__(self, state):
            self.value = marshal.dumps(state)

        def row(self, query, args=()):
            return (self.value,)

    lines = [b'{"id": "a"}', b'{"id": "bb"}', b'{"id": "c"}']
    size = len(b"[\n" + b",\n".join(lines) + b"\n]\n")

    def state(spans: list[int], ids: list = ["a", "bb", "c"], size: int = size) -> dict:  # noqa: B006
        return {"ids": ids, "offsets": array.array("q", spans).tobytes(), "size": size, "mtime_ns": 1}

    good = [2, 11, 15, 12, 29, 11]
    assert _api_state(Db(state(good))) is not None
    assert _api_state(Db(state([], ids=[], size=5))) is not None
    for bad in ([3, 11, 15, 12, 29, 11], [2, 11, 16, 12, 29, 11], [2, 11, 15, 12, 29, 10], [2, 11, 15, 0, 17, 23],
                [2, 11, 14, 13, 29, 11], [2, -1, 3, 24, 29, 11]):
        assert _api_state(Db(state(bad))) is None, bad
    assert _api_state(Db(state(good, size=size + 1))) is None
    assert _api_state(Db(state(good, ids=["a", "bb", 3]))) is None
    assert _api_state(Db(state(good[:4]))) is None


@pytest.mark.parametrize("check", ["forked", "here", "failed"])
def test_live_files_edited_replaced_or_deleted_by_hand_are_made_again(small: Path, tmp_path: Path, monkeypatch,
                                                                      check: str):
    """The live files of reused models are checked beside the build (a forked process), or by the build
    itself where there is none or it failed: a file edited in place, replaced by another or deleted since
    the last build is made again, with its model's other files; the rest of the site stays as it was."""
    import os

    from modelreg.site import reuse as reuse_module

    started = []
    if check == "forked":
        import threading

        real_start = reuse_module.Forked.start.__func__
        monkeypatch.setattr(threading, "active_count", lambda: 1)  # (threads other tests left do not matter)
        monkeypatch.setattr(reuse_module.Forked, "start",
                            classmethod(lambda cls, work: started.append(real_start(cls, work)) or started[-1]))
    if check == "here":
        monkeypatch.setattr(reuse_module.Forked, "start", classmethod(lambda cls, *args: None))
    elif check == "failed":
        monkeypatch.setattr(reuse_module.Forked, "result", lambda self: self.stop())
    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(small), out=str(out))
    build_site(config)
    models = load_catalog(small).models
    page = out / "models" / models[1].repo_id / "index.html"
    with open(page, "r+b") as f:  # the same size, another time
        f.write(b"X")
    os.utime(page, ns=(page.stat().st_atime_ns, page.stat().st_mtime_ns + 10**9))
    served = out / "models" / models[2].repo_id / models[2].torrent_path.name
    other = tmp_path / "other.torrent"
    other.write_bytes(b"not the torrent")
    os.replace(other, served)
    (out / "api" / "models" / f"{models[3].repo_id}.json").unlink()
    before = inodes(out)
    report = build_site(config)
    assert (report.rendered, report.reused) == (3, SMALL - 3)
    assert check != "forked" or any(started)  # the check did run in a child
    after = inodes(out)
    changed = {rel for rel in after if before.get(rel) != after[rel]}
    assert {rel.split("/")[-2] for rel in changed if rel.startswith("models/")} <= {m.name for m in models[1:4]}
    assert all(rel.startswith(("models/", "api/models/")) for rel in changed)  # the shared files are kept
    assert tree(out) == full_build(tmp_path, small)
    again = build_site(config)
    assert (again.rendered, again.reused) == (0, SMALL) and again.site_bytes == report.site_bytes


def test_the_rows_of_models_gone_are_deleted(small: Path, tmp_path: Path):
    import sqlite3

    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(small), out=str(out))
    build_site(config)
    load_catalog(small).models[5].torrent_path.unlink()
    assert build_site(config).reused == SMALL - 1
    manifest, _ = _caches(tmp_path)
    with sqlite3.connect(manifest) as db:
        count = db.execute("SELECT count(*) FROM parts").fetchone()[0]
    assert count == len(_manifest_rows(manifest)) == SMALL - 1
    assert build_site(config).reused == SMALL - 1


def _manifest_rows(manifest: Path) -> dict[str, tuple]:
    """id -> (key, light parts' bytes) of each model in the manifest, as a build reads them."""
    reuse = Reuse(manifest, None)
    try:
        return reuse._rows()
    finally:
        reuse.db.close()


def test_the_manifests_base_is_checked_entry_by_entry_and_written_again_where_damaged(small: Path, tmp_path: Path,
                                                                                      monkeypatch):
    import sqlite3

    from modelreg.site import reuse

    monkeypatch.setattr(reuse, "_JOURNAL_MAX", 0)  # every build's rows folded into the base
    monkeypatch.setattr(reuse, "_BASE_PART", 8)  # in parts of 8 models
    out = tmp_path / "site"
    config = Config(root=tmp_path).replace(registry=str(small), out=str(out))
    manifest = None

    def state(query: str, *args) -> list:
        with sqlite3.connect(manifest) as db:
            return db.execute(query, args).fetchall()

    def parts() -> list[list]:
        (count,) = state("SELECT value FROM state WHERE name = 'models'")[0]
        return [marshal.loads(state("SELECT value FROM state WHERE name = ?", f"models:{k}")[0][0])
                for k in range(marshal.loads(count))]

    build_site(config)
    manifest, _ = _caches(tmp_path)
    # the build that wrote every row leaves them as they are (its memory peaks then); the next folds them
    assert state("SELECT count(*) FROM state WHERE name LIKE 'models%'") == [(0,)]
    assert build_site(config).reused == SMALL
    assert state("SELECT count(*) FROM models") == [(0,)]
    base = parts()
    assert [len(ids) for ids, _, _ in base] == [8, 8, 8, 6]
    assert sorted(i for ids, _, _ in base for i in ids) == sorted(m.repo_id for m in load_catalog(small).models)
    full = full_build(tmp_path, small)
    # entries damaged in the base: each is rendered again
    base[0][1][0] = 42  # a key
    base[1][2][1] = b"\x00\xff"  # light parts
    stats, light, quick = marshal.loads(base[2][2][2])
    base[2][2][2] = marshal.dumps(((1, 2), light, quick))  # the stat of one file, not four
    for k, part in enumerate(base[:3]):
        state("UPDATE state SET value = ? WHERE name = ?", marshal.dumps(part), f"models:{k}")
    report = build_site(config)
    assert (report.rendered, report.reused) == (3, SMALL - 3) and tree(out) == full
    assert build_site(config).reused == SMALL
    # a base of another shape: every model is rendered again, and the base written again
    ids, keys, lights = parts()[0]
    for name, damaged in (("models:0", b"\x00\xff"), ("models:0", marshal.dumps([ids, keys])),
                          ("models:0", marshal.dumps([ids[:-1], keys, lights])),
                          ("models:0", marshal.dumps([[["unhashable"]] * len(ids), keys, lights])),
                          ("models", marshal.dumps("text")), ("models", marshal.dumps(5))):
        state("UPDATE state SET value = ? WHERE name = ?", damaged, name)
        report = build_site(config)
        assert (report.rendered, report.reused) == (SMALL, 0) and tree(out) == full, name
        assert sorted(i for ids, _, _ in parts() for i in ids) == sorted(i for ids, _, _ in base for i in ids)
        assert build_site(config).reused == SMALL


def test_a_large_sitemap_is_an_index_of_files_each_made_again_only_where_a_model_changed(
        registry: Path, tmp_path: Path, monkeypatch):
    # the sitemaps protocol allows 50,000 URLs a file: past SITEMAP_URLS models, sitemap.xml is an index
    monkeypatch.setattr(render, "SITEMAP_URLS", 64)
    made: list[int] = []
    sitemap_xml = render.sitemap_xml
    monkeypatch.setattr(render, "sitemap_xml", lambda *args: made.append(len(args[2])) or sitemap_xml(*args))
    out, site = tmp_path / "site", "https://models.example.org"
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out), site_url=site)
    build_site(config)
    ns = "{http://www.sitemaps.org/schemas/sitemap/0.9}"
    index = ET.fromstring((out / "sitemap.xml").read_bytes())
    parts = -(-COUNT // 64)
    assert index.tag == ns + "sitemapindex" and made == [64] * (parts - 1) + [COUNT - 64 * (parts - 1)]
    assert [loc.text for loc in index.iter(ns + "loc")] == [f"{site}/sitemaps/{n}.xml" for n in range(1, parts + 1)]
    locs = []
    for n in range(1, parts + 1):
        urls = [loc.text for loc in ET.fromstring((out / f"sitemaps/{n}.xml").read_bytes()).iter(ns + "loc")]
        assert len(urls) == 64 + 2 * (n == 1) or n == parts
        locs += urls
    everything = json.loads((out / "api" / "models.json").read_text())
    assert locs == [f"{site}/", f"{site}/api/"] + [f"{site}/{r['page']}" for r in everything]
    # one model's date changed: the file that lists it is made again, the others are kept
    model = load_catalog(registry).models[COUNT // 2]
    top = bencode.decode(model.torrent_path.read_bytes())
    top[b"creation date"] = 1_800_000_000
    model.torrent_path.write_bytes(bencode.encode(top))
    made.clear()
    build_site(config)
    assert made == [64]
    part = (out / f"sitemaps/{COUNT // 2 // 64 + 1}.xml").read_text()
    assert f"<loc>{site}/models/{model.repo_id}/</loc><lastmod>2027-01-15T08:00:00Z</lastmod>" in part
    assert "2027-01-15" in (out / "sitemap.xml").read_text()  # the index's date of that file
    # back under the limit: one sitemap again, the files gone
    monkeypatch.setattr(render, "SITEMAP_URLS", COUNT)
    build_site(config)
    assert ET.fromstring((out / "sitemap.xml").read_bytes()).tag == ns + "urlset" and not (out / "sitemaps").exists()
