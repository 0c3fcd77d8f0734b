"""The built site in headless Chromium: search, filters, shareable URLs, copy magnet, file tree, themes."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from loopback import serve_folder

from modelreg.config import Config
from modelreg.hf.metadata import ModelMeta
from modelreg.registry.catalog import Catalog, load_catalog
from modelreg.site import render_site
from modelreg.site.search import file_words

LICENSES = ("apache-2.0", "mit", "llama3")


@pytest.fixture(scope="module")
def served(corpus_dir: Path, tmp_path_factory):
    """The corpus site (with licenses and tags made up per model) on a threaded server at 127.0.0.1."""
    models = [
        dataclasses.replace(m, meta=ModelMeta(repo_id=m.repo_id, license=LICENSES[i % 3], tags=(f"tag{i % 5}",),
                                              downloads=i * 10))
        for i, m in enumerate(load_catalog(corpus_dir).models)
    ]
    out = tmp_path_factory.mktemp("browser") / "site"
    out.mkdir()
    render_site(Catalog(models, []), Config(), out)
    with serve_folder(out) as server:
        yield server.url, out


@pytest.fixture
def page(browser):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(10_000)
    pg = context.new_page()
    yield pg
    context.close()


def open_index(page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("html[data-search-ready]", state="attached")


def visible_ids(page) -> list[str]:
    return page.eval_on_selector_all("#results > li:not([hidden])", "els => els.map(e => e.dataset.modelId)")


def count(page) -> int:
    return int(page.inner_text("#result-count"))


def matching(out: Path, term: str) -> set[str]:
    """Ids of the models with a word (of id, name, tags or file names) starting with ``term``."""
    found = set()
    for r in json.loads((out / "api" / "models.json").read_text()):
        files = json.loads((out / "api" / "models" / f"{r['id']}.json").read_text())["files"]
        text = " ".join([r["id"], r["name"], *r["tags"], *file_words(f["path"] for f in files)])
        if any(w.startswith(term) for w in re.findall(r"[a-z0-9]+", text.lower())):
            found.add(r["id"])
    return found


def test_typing_narrows_the_results(served, page):
    url, out = served
    open_index(page, url)
    assert count(page) == 49 and len(visible_ids(page)) == 49
    page.keyboard.press("/")  # keyboard shortcut to the search box
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type("qwen", delay=10)
    want = matching(out, "qwen")
    page.wait_for_function(f"document.getElementById('result-count').textContent === '{len(want)}'")
    shown = visible_ids(page)
    assert set(shown) == want and len(shown) == len(want) and 0 < len(want) < 49
    assert shown[0].split("/")[1].lower().startswith("qwen")  # names starting with the query rank first
    assert "q=qwen" in page.url  # shareable state
    page.keyboard.press("Escape")
    page.wait_for_function("document.getElementById('result-count').textContent === '49'")


def test_filters_narrow_and_sort(served, page):
    url, out = served
    records = json.loads((out / "api" / "models.json").read_text())
    open_index(page, url)
    page.select_option("#f-license", "mit")
    want = [r["id"] for r in records if r["license"] == "mit"]
    page.wait_for_function(f"document.getElementById('result-count').textContent === '{len(want)}'")
    assert visible_ids(page) == want
    page.select_option("#f-sort", "size")
    page.wait_for_function("location.search.includes('sort=size')")
    assert visible_ids(page) == [r["id"] for r in sorted(records, key=lambda r: -r["size"]) if r["license"] == "mit"]
    assert "license=mit" in page.url


def test_a_query_url_opens_filtered(served, page):
    url, out = served
    records = json.loads((out / "api" / "models.json").read_text())
    open_index(page, url + "?format=GGUF&sort=size-asc&min=5")
    want = [r["id"] for r in sorted(records, key=lambda r: r["size"]) if "GGUF" in r["formats"] and r["size"] >= 5e9]
    assert want and count(page) == len(want)
    assert visible_ids(page) == want
    assert page.input_value("#f-format") == "GGUF" and page.input_value("#f-min") == "5"


def test_copy_magnet_puts_a_magnet_libtorrent_parses(served, page):
    lt = pytest.importorskip("libtorrent")
    url, out = served
    records = {r["id"]: r for r in json.loads((out / "api" / "models.json").read_text())}
    open_index(page, url + "?q=gguf")
    first = page.locator("#results > li:not([hidden])").first
    model_id = first.get_attribute("data-model-id")
    first.locator("[data-copy]").click()
    page.wait_for_selector("#toast.show")
    magnet = page.evaluate("navigator.clipboard.readText()")
    params = lt.parse_magnet_uri(magnet)
    assert str(params.info_hashes.v1) == records[model_id]["infohash_v1"]
    assert str(params.info_hashes.v2) == records[model_id]["infohash_v2"]
    assert page.url.endswith("?q=gguf")  # the click copied; it did not navigate


def test_model_page_file_tree_shows_the_files(served, page, corpus_dir: Path):
    url, _ = served
    model = max(load_catalog(corpus_dir).models, key=lambda m: len({f.path[:-1] for f in m.torrent.files}))
    page.goto(f"{url}models/{model.repo_id}/")
    shown = page.eval_on_selector_all("#files li.file .fname", "els => els.map(e => e.textContent)")
    assert sorted(shown) == sorted(f.path[-1] for f in model.torrent.files)
    nested = [f for f in model.torrent.files if len(f.path) > 1]
    assert nested, "the chosen model has folders"
    assert page.locator("#files details").count() >= 1
    assert page.get_by_text(nested[0].path[-1], exact=True).first.is_visible()
    assert page.inner_text("#ih-v1") == model.torrent.infohash_v1


def test_without_javascript_the_full_list_shows(browser, served):
    url, _ = served
    context = browser.new_context(java_script_enabled=False)
    try:
        pg = context.new_page()
        pg.goto(url + "?q=qwen")
        assert pg.locator("#results > li").count() == 49
        assert pg.locator("#results > li:visible").count() == 49
        assert not pg.locator("#filters").is_visible()
        assert pg.locator("#results > li a[href^='magnet:']").count() == 49
    finally:
        context.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_themes_follow_the_system_and_screenshots_render(browser, served, scheme, tmp_path):
    url, _ = served
    context = browser.new_context(color_scheme=scheme, viewport={"width": 1100, "height": 900})
    try:
        pg = context.new_page()
        backgrounds = []
        for path in ("", "models/Qwen/Qwen3.8-27B/"):
            pg.goto(url + path)
            backgrounds.append(pg.evaluate("getComputedStyle(document.body).backgroundColor"))
            shot = tmp_path / f"{scheme}-{path.count('/')}.png"
            pg.screenshot(path=str(shot))
            assert shot.stat().st_size > 10_000
        dark = [bg in ("rgb(15, 17, 21)",) for bg in backgrounds]
        assert dark == [scheme == "dark"] * 2
    finally:
        context.close()


def test_long_lists_show_a_page_of_matches_and_more_on_demand(browser, corpus_dir: Path, tmp_path: Path):
    """Without a query the page lists the first 50 and links the next pages; 50 matches of a search show,
    and more on demand; the count still says how many match."""
    base = load_catalog(corpus_dir).models
    models = sorted((dataclasses.replace(m, repo_id=f"{m.org}/{m.name}-copy{k}") for k in range(3) for m in base),
                    key=lambda m: m.repo_id.lower())
    out = tmp_path / "site"
    out.mkdir()
    render_site(Catalog(models, []), Config(), out)
    server = serve_folder(out).start()
    context = browser.new_context()
    try:
        pg = context.new_page()
        open_index(pg, server.url)
        assert count(pg) == 147 and visible_ids(pg) == [m.repo_id for m in models][:50]
        assert pg.locator("#pager a[rel=next]").is_visible() and pg.locator("#show-more").is_hidden()
        pg.fill("#q", "copy")
        pg.wait_for_function("document.getElementById('results').getAttribute('aria-busy') === 'false'")
        assert count(pg) == 147 and len(visible_ids(pg)) == 50
        assert pg.locator("#pager").is_hidden()
        pg.click("#show-more")
        pg.wait_for_function("document.querySelectorAll('#results > li:not([hidden])').length === 100")
        pg.click("#show-more")
        pg.wait_for_function("document.querySelectorAll('#results > li:not([hidden])').length === 147")
        assert sorted(visible_ids(pg)) == sorted(m.repo_id for m in models)
        assert pg.locator("#show-more").is_hidden()
        pg.fill("#q", "copy1")
        pg.wait_for_function("document.getElementById('result-count').textContent === '49'")
        assert len(visible_ids(pg)) == 49
    finally:
        context.close()
        server.stop()
