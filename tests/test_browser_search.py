"""The site at a few thousand models in Chromium: listing pages without JavaScript, and the sharded search
giving exactly what a brute-force filter of ``api/models.json`` gives, with its state in the URL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
from loopback import serve_folder

from modelreg.config import Config
from modelreg.registry.catalog import Catalog, load_catalog
from modelreg.site import render, render_site, search
from modelreg.site.search import file_words

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synth import generate, synthetic_meta  # noqa: E402

COUNT = 2500
PAGE = 50


def _with_health(model_record):
    """Records with the ``health`` field the swarm-health work adds, varied: absent (None), no seeders,
    seeders, a working, broken or unchecked web seed."""
    def record(model, config):
        r = model_record(model, config)
        n = sum(map(ord, model.repo_id))
        seeders = [None, 0, 2, 7][n % 4]
        r["health"] = None if n % 5 == 0 else {  # the shape of modelreg.registry.health.summary()
            "seeders": seeders, "leechers": None if seeders is None else 0, "downloaded": None,
            "source": None if seeders is None else "DHT", "webseed_ok": [True, False, None][n % 3],
            "webseed_failing_since": None, "checked_at": "2026-11-29T00:00:00Z", "sources": [], "webseeds": []}
        return r
    return record


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A synthetic registry (built-in shapes, no corpus needed) with made-up metadata, built and served."""
    work = tmp_path_factory.mktemp("scale")
    generate(work / "registry", COUNT, corpus=None, seed=7)
    catalog = load_catalog(work / "registry")
    models = [dataclasses.replace(m, meta=synthetic_meta(m.repo_id, i)) for i, m in enumerate(catalog.models)]
    out = work / "site"
    out.mkdir()
    shard_bytes, search.SHARD_BYTES = search.SHARD_BYTES, 3000  # small shards: split prefixes get exercised
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(render, "model_record", _with_health(render.model_record))
            render_site(Catalog(models, []), Config(), out)
    finally:
        search.SHARD_BYTES = shard_bytes
    meta = json.loads((out / "search" / "meta.json").read_text())
    assert meta["split"] and meta["name_split"]
    words = {m.repo_id: file_words(f.path_str for f in m.torrent.files) for m in models}
    server = serve_folder(out).start()
    try:
        yield server.url, out, words
    finally:
        server.stop()


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context()
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


def records(out: Path) -> list[dict]:
    return json.loads((out / "api" / "models.json").read_text())


def shown_ids(pg) -> list[str]:
    return pg.eval_on_selector_all("#results > li", "els => els.map(e => e.dataset.modelId)")


def settled(pg) -> None:
    pg.wait_for_selector("html[data-search-ready]", state="attached")
    pg.wait_for_selector("#results[aria-busy=false]", state="attached")


# The oracle: the documented semantics, computed over the API's records, one model at a time.
def _terms(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _days(iso: str | None) -> int:
    if not iso:
        return -1
    return int(dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp() // 86400)


def _seeders(r: dict) -> int:
    health = r.get("health") or {}
    return health.get("seeders") or 0


def brute_force(recs: list[dict], words: dict[str, list[str]], params: dict[str, str]) -> list[str]:
    q = params.get("q", "").strip().lower()
    wanted = _terms(q)
    found = []
    for doc, r in enumerate(recs):
        have = set(_terms(" ".join([r["id"], r["name"], *r["tags"], *words[r["id"]]])))
        if not all(any(h.startswith(t) for h in have) for t in wanted):
            continue
        if params.get("license") and r["license"] != params["license"]:
            continue
        if params.get("task") and r["pipeline_tag"] != params["task"]:
            continue
        if params.get("format") and params["format"] not in r["formats"]:
            continue
        if params.get("org") and r["org"] != params["org"]:
            continue
        if params.get("min") and r["size"] < float(params["min"]) * 1e9:
            continue
        if params.get("max") and r["size"] > float(params["max"]) * 1e9:
            continue
        if params.get("live") and not (_seeders(r) > 0 or (r.get("health") or {}).get("webseed_ok") is True):
            continue
        org, name = r["id"].lower().split("/")
        qorg, _, qname = q.partition("/") if "/" in q else (None, "", q)
        rank = 3
        if len(qname) >= 2 and (qorg is None or qorg == org) and name.startswith(qname):
            rank = 0 if name == qname else 1
        elif wanted and all(t in have for t in wanted):
            rank = 2
        found.append((rank, doc, r))
    keys = {"size": lambda r: -r["size"], "size-asc": lambda r: r["size"],
            "newest": lambda r: -_days(r["last_modified"]), "seeded": lambda r: -_seeders(r),
            "popular": lambda r: -(r["downloads"] if r["downloads"] is not None else -1)}
    key = keys.get(params.get("sort", ""), lambda r: 0)
    return [r["id"] for rank, doc, r in sorted(found, key=lambda f: (f[0] if q else 0, key(f[2]), f[1]))]


def test_listing_pages_work_without_javascript(browser, served):
    url, out, _ = served
    ids = [r["id"] for r in records(out)]
    context = browser.new_context(java_script_enabled=False)
    try:
        pg = context.new_page()
        pg.goto(url)
        assert shown_ids(pg) == ids[:PAGE]
        assert pg.locator("#results > li:visible").count() == PAGE
        assert not pg.locator("#filters").is_visible()
        pg.click("a[rel=next]")
        assert pg.url == url + "page/2/"
        assert shown_ids(pg) == ids[PAGE : 2 * PAGE]
        pg.locator("#pager a", has_text=str(-(-len(ids) // PAGE))).click()  # the last page
        assert shown_ids(pg) == ids[-(len(ids) % PAGE or PAGE):]
        assert pg.locator("a[rel=next]").count() == 0
        first_model = pg.locator("#results > li a[href*='models/']").first
        first_model.click()  # a row's link from a page two folders down still resolves
        assert pg.url == url + f"models/{ids[-(len(ids) % PAGE or PAGE)]}/"

        org = records(out)[0]["org"]
        pg.goto(url + "orgs/")
        pg.click(f"#groups a:text-is('{org}')")
        want = [r["id"] for r in records(out) if r["org"] == org]
        assert shown_ids(pg) == want[:PAGE]
        pg.goto(url + "formats/")
        pg.click("#groups a:text-is('GGUF')")
        assert shown_ids(pg) == [r["id"] for r in records(out) if "GGUF" in r["formats"]][:PAGE]
    finally:
        context.close()


CASES = [
    {"q": "qwen3.8-27b"},
    {"q": "Qwen3"},
    {"q": "gguf", "sort": "size"},
    {"q": "instruct q4"},
    {"q": "l"},
    {"q": "a"},
    {"q": "amber 1"},
    {"q": "ambercoral"},
    {"q": "zzzz"},
    {"q": "onnx encoder", "sort": "newest"},
    {"license": "mit"},
    {"license": "mit", "task": "text-generation", "sort": "size-asc"},
    {"format": "GGUF", "min": "5", "max": "20"},
    {"q": "chat", "format": "safetensors", "sort": "popular"},
    {"sort": "seeded", "q": "tag3"},
    {"live": "1"},
    {"live": "1", "sort": "seeded", "q": "qwen"},
    {"sort": "seeded"},
    {"license": "no-such-license"},
    # Whole-registry sorts (their buckets read in order) and several filters with a sort (the columns).
    {"sort": "size"},
    {"sort": "size-asc"},
    {"sort": "newest"},
    {"sort": "popular"},
    {"max": "3", "sort": "size"},
    {"q": "instruct", "format": "safetensors", "min": "1", "max": "20", "sort": "newest"},
    {"license": "apache-2.0", "task": "text-generation", "format": "GGUF", "sort": "popular"},
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: urlencode(p))
def test_search_equals_a_brute_force_filter(served, page, params):
    url, out, words = served
    want = brute_force(records(out), words, params)
    if params.get("sort"):
        assert len(want) > 1  # the sort has something to order
    if "live" in params or params.get("sort") == "seeded":
        assert want and any(r.get("health") for r in records(out))  # the health cases test something
    page.goto(url + "?" + urlencode(params))
    settled(page)
    assert int(page.inner_text("#result-count")) == len(want)
    assert shown_ids(page) == want[:PAGE]
    assert page.is_visible("#show-more") == (len(want) > PAGE)
    assert page.is_visible("#no-results") == (not want)


def test_exact_ids_and_org_queries_rank_first(served, page):
    url, out, words = served
    recs = records(out)
    target = recs[len(recs) // 3]
    for q in (target["id"], target["id"].split("/")[1].upper(), target["id"].split("/")[1][:-1]):
        page.goto(url + "?" + urlencode({"q": q}))
        settled(page)
        want = brute_force(recs, words, {"q": q})
        assert shown_ids(page) == want[:PAGE]
        if q != target["id"].split("/")[1][:-1]:
            assert want[0] == target["id"]


def test_typing_updates_the_url_and_the_url_restores_the_state(served, page):
    url, out, words = served
    page.goto(url)
    settled(page)
    page.keyboard.press("/")
    page.keyboard.type("llama q8", delay=5)
    page.select_option("#f-sort", "size")
    page.check("#f-live")
    page.uncheck("#f-live")
    page.select_option("#f-license", "apache-2.0")
    settled(page)
    params = {"q": "llama q8", "license": "apache-2.0", "sort": "size"}
    want = brute_force(records(out), words, params)
    page.wait_for_function(f"document.getElementById('result-count').textContent === '{len(want)}'")
    assert shown_ids(page) == want[:PAGE] and want
    shared = page.url
    assert "q=llama+q8" in shared and "license=apache-2.0" in shared and "sort=size" in shared
    page.click("#show-more")
    page.wait_for_function(f"document.querySelectorAll('#results > li').length === {min(len(want), 2 * PAGE)}")
    assert shown_ids(page) == want[: 2 * PAGE]

    page.goto("about:blank")
    page.goto(shared)
    settled(page)
    assert page.input_value("#q") == "llama q8" and page.input_value("#f-sort") == "size"
    assert page.input_value("#f-license") == "apache-2.0"
    assert shown_ids(page) == want[:PAGE]
    page.click("#reset")
    page.wait_for_function(f"location.href === {json.dumps(url)}")
    settled(page)
    assert shown_ids(page) == [r["id"] for r in records(out)][:PAGE]


@pytest.mark.parametrize("params", [{"sort": "size-asc"}, {"q": "gguf", "sort": "newest"}], ids=urlencode)
def test_show_more_past_the_sorted_buckets(served, page, params):
    """A sort orders exactly only the buckets the shown rows need; showing more orders the next ones."""
    url, out, words = served
    want = brute_force(records(out), words, params)
    assert len(want) > 3 * PAGE
    page.goto(url + "?" + urlencode(params))
    settled(page)
    for shown in (2 * PAGE, 3 * PAGE):
        page.click("#show-more")
        page.wait_for_function(f"document.querySelectorAll('#results > li').length === {shown}")
        settled(page)
        assert shown_ids(page) == want[:shown]
