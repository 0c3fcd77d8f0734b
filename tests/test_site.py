"""The static site built from the real corpus: structure, JSON API, feeds, sanitized cards, base paths."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import shutil
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import pytest

from modelreg.config import Config
from modelreg.hf.metadata import ModelMeta
from modelreg.registry.catalog import Catalog, load_catalog
from modelreg.site import render_site, search
from modelreg.site.build import build_site

ATOM = "{http://www.w3.org/2005/Atom}"
EXTRA_TRACKER = "udp://tracker.example.org:6969/announce"
EXTRA_SEED = "https://mirror.example.org/seed/"


def build(registry: Path, out: Path, **options) -> Path:
    config = Config(root=out.parent).replace(registry=str(registry), out=str(out), **options)
    build_site(config, incremental=False)
    return out


@pytest.fixture(scope="module")
def site(corpus_dir: Path, tmp_path_factory) -> Path:
    return build(corpus_dir, tmp_path_factory.mktemp("plain") / "site")


@pytest.fixture(scope="module")
def mirror(corpus_dir: Path, tmp_path_factory) -> Path:
    """Built for /mirror/ with a tracker and a web seed added, and a site_url for the sitemap."""
    return build(corpus_dir, tmp_path_factory.mktemp("mirror") / "site", base_url="/mirror/",
                 trackers=[EXTRA_TRACKER], webseeds=[EXTRA_SEED], site_url="https://models.example.org")


def records(site: Path) -> list[dict]:
    return json.loads((site / "api" / "models.json").read_text())


def test_every_corpus_model_has_its_pages_torrent_and_api_record(site: Path, corpus_dir: Path):
    catalog = load_catalog(corpus_dir)
    assert len(catalog.models) == 49 and not catalog.errors
    for name in ("index.html", "search/meta.json", "api/models/pages.json", "feed.xml", "404.html", "api/index.html", "static/site.css",
                 "static/search.js", "static/site.js"):
        assert (site / name).is_file(), name
    assert not (site / "sitemap.xml").exists()  # no site_url: sitemaps need absolute URLs
    for model in catalog.models:
        assert (site / "models" / model.repo_id / "index.html").is_file()
        assert (site / "models" / model.repo_id / model.torrent_path.name).read_bytes() == model.torrent.raw
        detail = json.loads((site / "api" / "models" / f"{model.repo_id}.json").read_text())
        assert [f["path"] for f in detail["files"]] == [f.path_str for f in model.torrent.files]
        assert sum(f["size"] for f in detail["files"]) == detail["size"]


def test_api_records_match_what_libtorrent_reads(site: Path, corpus_dir: Path, corpus_expected: dict):
    by_path = {m.rel_path: m.repo_id for m in load_catalog(corpus_dir).models}
    by_id = {r["id"]: r for r in records(site)}
    assert len(by_id) == len(corpus_expected) == 49
    for path, want in corpus_expected.items():
        record = by_id[by_path[path]]
        assert record["infohash_v1"] == want["infohash_v1"]
        assert record["infohash_v2"] == want["infohash_v2"]
        assert record["size"] == want["total_size"]
        assert record["file_count"] == want["file_count"]
        assert record["piece_length"] == want["piece_length"]
        assert record["num_pieces"] == want["num_pieces"]
        assert record["webseeds"] == want["webseeds"]
        assert record["trackers"] == want["trackers"]
        assert record["name"] == want["name"]
        for key in ("page", "torrent", "magnet", "revision", "license", "tags", "pipeline_tag", "parameters",
                    "formats", "last_modified"):
            assert key in record
        assert (site / unquote(record["torrent"])).is_file()
        assert (site / record["page"] / "index.html").is_file()


def test_index_lists_every_model_without_javascript(site: Path):
    html = (site / "index.html").read_text()
    ids = [r["id"] for r in records(site)]
    assert html.count("<li data-model-id=") == len(ids) == 49
    for model_id in ids:
        assert f'data-model-id="{model_id}"' in html
    assert '<span id="result-count">49</span>' in html
    assert 'id="results"' in html and " hidden" not in html.split('id="results"')[1].split("</ol>")[0]


def test_search_index_follows_the_list_order(site: Path):
    """The sharded index (search/) numbers models in the API's order; its columns agree with the records."""
    meta = json.loads((site / "search" / "meta.json").read_text())
    ids = [i for k in range(-(-meta["count"] // meta["ids_chunk"]))
           for i in json.loads((site / "search" / "ids" / f"{k}.json").read_text())]
    assert ids == [r["id"] for r in records(site)]
    deltas = json.loads((site / "search" / "v" / f"f{meta['formats'].index('GGUF')}.json").read_text())
    gguf = [r["id"] for r in records(site) if "GGUF" in r["formats"]]
    assert [ids[d] for d in itertools.accumulate(deltas)] == gguf and gguf
    sizes = json.loads((site / "search" / "k" / "s.json").read_text())
    order = [meta["buckets"]["s"][search.BUCKET_CHARS.index(c)] for c in sizes]
    assert all(lo <= r["size"] <= hi for (lo, hi), r in zip(order, records(site), strict=True))


def test_feed_is_atom_newest_first_with_torrent_enclosures(site: Path):
    feed = ET.fromstring((site / "feed.xml").read_bytes())
    assert feed.findtext(f"{ATOM}id").startswith("urn:uuid:")  # absolute, even without site_url
    entries = feed.findall(f"{ATOM}entry")
    assert len(entries) == 49
    updated = [e.findtext(f"{ATOM}updated") for e in entries]
    assert updated == sorted(updated, reverse=True)
    for entry in entries:
        (enclosure,) = [link for link in entry.findall(f"{ATOM}link") if link.get("rel") == "enclosure"]
        assert enclosure.get("type") == "application/x-bittorrent"
        assert (site / unquote(enclosure.get("href")).lstrip("/")).is_file()
        assert entry.findtext(f"{ATOM}id").startswith("urn:btih:")


def test_the_newest_records_are_found_among_those_from_the_cut_on():
    # the feed sorts only the records dated at or after newest_cut: the same first ones as sorting all,
    # ties (the same date, unknown dates) included
    import random

    from modelreg.site.feeds import newest_cut, newest_first

    rng = random.Random(5)
    days = [None, "", *(f"2026-0{m}-1{d}T00:00:00Z" for m in range(1, 4) for d in range(3))]
    records = [{"id": f"Org/M{rng.randrange(10**6)}", "last_modified": rng.choice(days)} for _ in range(400)]
    for count in (1, 7, 40, 120, 399, 400, 500):
        cut = newest_cut([r["last_modified"] for r in records], count)
        found = [r for r in records if (r["last_modified"] or "") >= cut]
        assert len(found) >= min(count, len(records))
        assert newest_first(found)[:count] == newest_first(records)[:count]
    assert len([r for r in records if (r["last_modified"] or "") >= newest_cut([r["last_modified"] for r in records], 7)]) < 400


def test_sitemap_has_absolute_urls_under_the_base_path(mirror: Path):
    sitemap = ET.fromstring((mirror / "sitemap.xml").read_bytes())
    locs = [loc.text for loc in sitemap.iter("{http://www.sitemaps.org/schemas/sitemap/0.9}loc")]
    assert len(locs) == 49 + 2
    assert all(loc.startswith("https://models.example.org/mirror/") for loc in locs)
    feed = (mirror / "feed.xml").read_text()
    assert 'href="https://models.example.org/mirror/models/' in feed


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src", "data-search") and value:
                self.links.append(value)


def _check_links(site: Path, page: Path, url: str, host: str, prefix: str) -> int:
    parser = _Links()
    parser.feed(page.read_text())
    checked = 0
    for link in parser.links:
        if link.startswith("#"):
            continue  # same page
        target = urlsplit(urljoin(url, link))
        if target.scheme in ("magnet", "mailto") or target.netloc != host:
            continue
        assert target.path.startswith(prefix), f"{page}: {link} leaves {prefix}"
        path = site / unquote(target.path[len(prefix):])
        if target.path.endswith("/"):
            path = path / "index.html"
        assert path.is_file(), f"{page}: {link} -> {target.path} does not exist"
        checked += 1
    return checked


def test_every_link_resolves_under_a_base_path(mirror: Path):
    host, prefix = "127.0.0.1:8000", "/mirror/"
    checked = 0
    for page in mirror.rglob("*.html"):
        rel = page.relative_to(mirror).as_posix()
        url_path = rel[: -len("index.html")] if rel.endswith("index.html") else rel
        checked += _check_links(mirror, page, f"http://{host}{prefix}{url_path}", host, prefix)
    # A 404 page is served at whatever URL was missing, so its links must not be relative.
    checked += _check_links(mirror, mirror / "404.html", f"http://{host}{prefix}no/such/deep/page", host, prefix)
    assert checked > 49 * 5


def test_extra_trackers_and_webseeds_keep_the_infohash(mirror: Path, corpus_dir: Path, corpus_expected: dict):
    lt = pytest.importorskip("libtorrent")
    by_id = {r["id"]: r for r in records(mirror)}
    for model in load_catalog(corpus_dir).models:
        want = corpus_expected[model.rel_path]
        atp = lt.load_torrent_buffer((mirror / "models" / model.repo_id / model.torrent_path.name).read_bytes())
        hashes = atp.ti.info_hashes()
        assert str(hashes.v1) == want["infohash_v1"] and str(hashes.v2) == want["infohash_v2"]
        assert EXTRA_TRACKER in atp.trackers
        assert EXTRA_SEED in atp.url_seeds
        record = by_id[model.repo_id]
        assert record["trackers"] == [EXTRA_TRACKER] and EXTRA_SEED in record["webseeds"]
        params = lt.parse_magnet_uri(record["magnet"])
        assert str(params.info_hashes.v1) == want["infohash_v1"]
        assert str(params.info_hashes.v2) == want["infohash_v2"]
        assert EXTRA_TRACKER in params.trackers and EXTRA_SEED in params.url_seeds


EVIL_CARD = """---
license: mit
---
# Evil card

<script>alert("card")</script>
<img src="x.png" onerror="alert('img')">
<a href="javascript:alert('a')" onclick="alert('click')">click me</a>
<a href="JaVaScRiPt:alert('b')">mixed case</a>
[markdown link](javascript:alert('md'))
<iframe src="https://evil.example/"></iframe>
<svg onload="alert('svg')"></svg>
<p style="background:url(javascript:alert('css'))">styled</p>
<img src="data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+" alt="data">
<a href="vbscript:msgbox('v')">vb</a> <a href=" javascript:alert('space')">space</a>
<form action="https://evil.example/"><input name="password"></form>
[good link](https://example.org/) and [relative](config.json)
"""


def _model_with_meta(corpus_dir: Path, **meta):
    model = load_catalog(corpus_dir).models[0]
    return dataclasses.replace(model, meta=ModelMeta(repo_id=model.repo_id, **meta),
                               problems=("the card is from an older revision",))


def _card_html(page: str) -> str:
    return page.split('<article class="markdown">', 1)[1].split("</article>", 1)[0]


def test_a_hostile_model_card_is_sanitized(corpus_dir: Path, tmp_path: Path):
    model = _model_with_meta(corpus_dir, card_markdown=EVIL_CARD, license="mit")
    render_site(Catalog([model], []), Config(), tmp_path)
    card = _card_html((tmp_path / "models" / model.repo_id / "index.html").read_text())
    assert "Evil card" in card and "click me" in card
    lowered = card.lower()
    for bad in ("<script", "onerror", "onclick", "onload", "javascript:", "<iframe", "style=", "alert('img')",
                "data:", "vbscript:", "<form", "<input"):
        assert bad not in lowered, bad
    assert 'href="https://example.org/" rel="nofollow noopener noreferrer"' in card
    assert f"https://huggingface.co/{model.repo_id}/blob/{model.revision}/config.json" in card
    assert f'href="https://huggingface.co/{model.repo_id}/resolve/{model.revision}/x.png"' in card  # not loaded


def test_metadata_is_shown_and_missing_metadata_degrades(corpus_dir: Path, tmp_path: Path):
    rich = _model_with_meta(corpus_dir, license="apache-2.0", tags=("llm", "chat"), parameters=7_600_000_000,
                            pipeline_tag="text-generation", downloads=1234, last_modified="2026-05-01T10:00:00.000Z")
    plain = load_catalog(corpus_dir).models[1]
    render_site(Catalog([rich, plain], []), Config(), tmp_path)
    by_id = {r["id"]: r for r in records(tmp_path)}
    record = by_id[rich.repo_id]
    assert (record["license"], record["tags"], record["parameters"]) == ("apache-2.0", ["llm", "chat"], 7_600_000_000)
    assert record["last_modified"] == "2026-05-01T10:00:00Z"
    assert record["problems"] == ["the card is from an older revision"]
    page = (tmp_path / "models" / rich.repo_id / "index.html").read_text()
    assert "7.6B params" in page and "apache-2.0" in page
    assert "the card is from an older revision" not in page  # operators' problems stay in the API and summary
    index = (tmp_path / "index.html").read_text()
    assert 'value="popular"' in index and "<option>apache-2.0</option>" in index
    assert by_id[plain.repo_id]["license"] is None and by_id[plain.repo_id]["tags"] == []
    assert "No model card here" in (tmp_path / "models" / plain.repo_id / "index.html").read_text()


def test_model_page_shows_hashes_tree_revision_and_clients(site: Path, corpus_dir: Path):
    model = max(load_catalog(corpus_dir).models, key=lambda m: len({f.path[:-1] for f in m.torrent.files}))
    page = (site / "models" / model.repo_id / "index.html").read_text()
    t = model.torrent
    for text in (t.infohash_v1, t.infohash_v2, model.revision, "pinned commit", "aria2c", "transmission-cli",
                 "qbittorrent-nox", "lt.session()", f"https://huggingface.co/{model.repo_id}/tree/{model.revision}/"):
        assert text in page
    for f in t.files:
        assert f'<span class="fname">{f.path[-1]}</span>' in page
    assert "<details" in page


def _copy_registry(corpus_dir: Path, dest: Path, count: int) -> list[Path]:
    paths = sorted(corpus_dir.rglob("*.torrent"))[:count]
    for path in paths:
        target = dest / path.relative_to(corpus_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    return [dest / p.relative_to(corpus_dir) for p in paths]


def test_incremental_rebuild_renders_only_what_changed(corpus_dir: Path, tmp_path: Path):
    registry, out = tmp_path / "registry", tmp_path / "site"
    paths = _copy_registry(corpus_dir, registry, 4)
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    first = build_site(config)
    assert (first.rendered, first.reused) == (4, 0)
    again = build_site(config)
    assert (again.rendered, again.reused) == (0, 4)
    assert json.loads((out / "api" / "models.json").read_text()) == json.loads(
        (out / "api" / "models.json").read_text())

    # A torrent replaced by another: only that model is rendered, and the site shows the new one.
    other = sorted(corpus_dir.rglob("*.torrent"))[10]
    shutil.copyfile(other, paths[0])
    changed = build_site(config)
    assert (changed.rendered, changed.reused) == (1, 3)
    ids = {r["infohash_v1"] for r in records(out)}
    assert load_catalog(registry).models and ids == {m.torrent.infohash_v1 for m in load_catalog(registry).models}

    # A sidecar changes the repository: rendered again. An output edited by hand is not trusted.
    sidecar = paths[1].with_suffix(".json")
    sidecar.write_text(json.dumps({"repo_id": "Renamed/Model", "revision": "main"}))
    page = next(p for p in (out / "models").rglob("index.html") if "Renamed" not in str(p))
    page.write_text("tampered")
    third = build_site(config)
    assert third.rendered == 2 and third.reused == 2
    assert (out / "models" / "Renamed" / "Model" / "index.html").is_file()
    assert all(p.read_text() != "tampered" for p in (out / "models").rglob("index.html"))


def test_changed_options_render_everything_again(corpus_dir: Path, tmp_path: Path):
    registry, out = tmp_path / "registry", tmp_path / "site"
    _copy_registry(corpus_dir, registry, 2)
    config = Config(root=tmp_path).replace(registry=str(registry), out=str(out))
    build_site(config)
    report = build_site(config.replace(trackers=[EXTRA_TRACKER]))
    assert (report.rendered, report.reused) == (2, 0)
    assert all(EXTRA_TRACKER in r["trackers"] for r in records(out))
    # Rendered again from cached (slim) torrents: the served files are the registry's bytes once more.
    report = build_site(config)
    assert (report.rendered, report.reused) == (2, 0)
    for model in load_catalog(registry).models:
        assert (out / "models" / model.repo_id / model.torrent_path.name).read_bytes() == model.torrent.raw


def test_torrent_file_names_needing_quotes_link_correctly(corpus_dir: Path, tmp_path: Path):
    registry, out = tmp_path / "registry", tmp_path / "site"
    (path,) = _copy_registry(corpus_dir, registry, 1)
    odd = path.with_name("Weird name #1 ü.torrent")
    path.rename(odd)
    build(registry, out, base_url="/mirror/")
    (record,) = records(out)
    assert record["torrent"].endswith("/Weird%20name%20%231%20%C3%BC.torrent")
    assert (out / unquote(record["torrent"])).read_bytes() == odd.read_bytes()
    page = out / record["page"] / "index.html"
    assert _check_links(out, page, f"http://h/mirror/{record['page']}", "h", "/mirror/") > 3


def test_parallel_prefetch_matches_a_plain_parse(corpus_dir: Path, tmp_path: Path):
    from modelreg.site import ParseCache
    from modelreg.torrent.metainfo import Torrent

    paths = sorted(corpus_dir.rglob("*.torrent"))
    cache = ParseCache(tmp_path / "torrents")
    cache.prefetch(paths * 10, workers=2)  # enough work to start the worker processes
    cache.prefetch([tmp_path / "missing.torrent"], workers=2)
    for path in paths:
        cached, plain = cache.read(path), Torrent.read(path)
        assert (cached.infohash_v1, cached.infohash_v2, cached.total_size) == (
            plain.infohash_v1, plain.infohash_v2, plain.total_size)
        assert [(f.path, f.size, f.offset) for f in cached.files] == [(f.path, f.size, f.offset) for f in plain.files]
        assert cache.digest(path) == hashlib.sha256(plain.raw).hexdigest()
    assert cache.hits == len(paths)
    cache.save()
    again = ParseCache(tmp_path / "torrents")
    assert again.read(paths[0]).infohash_v2 == Torrent.read(paths[0]).infohash_v2 and again.hits == 1
