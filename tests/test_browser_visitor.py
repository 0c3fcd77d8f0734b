"""A visitor in Chromium: the aria2c command a model page shows downloads the model from a loopback web
seed, copy buttons work from the keyboard and stay in view on a phone, rows are dense, the filters fold
on a phone, gated models are marked, and a site built for disk browsing works from file://."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from fakehub import fake_hub
from loopback import serve_folder
from webseed_harness import make_files, make_model, start_gateway

from modelreg.config import Config, load_config
from modelreg.hf.metadata import ModelMeta
from modelreg.registry.metacache import MetaCache
from modelreg.site.build import build_site

FILES = {
    "config.json": 2_345,
    "model-00001-of-00002.safetensors": 700_001,
    "model-00002-of-00002.safetensors": 500_123,
    "docs/README.md": 4_321,
}
PHONE = {"width": 390, "height": 844}
ARIA2C_QUIET = ["--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false", "--enable-peer-exchange=false",
                "--file-allocation=none", "--summary-interval=0", "--console-log-level=warn", "--retry-wait=1",
                "--max-tries=10", "--listen-port=6881-6999"]

pytestmark = [
    pytest.mark.skipif(shutil.which("aria2c") is None, reason="aria2c is not installed"),
]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A model on the fake hub, the gateway in front of it, and the site of a registry holding its torrent
    (web seed: the gateway), served at site_url on 127.0.0.1."""
    tmp = tmp_path_factory.mktemp("visitor")
    hub_gen = fake_hub()
    hub = next(hub_gen)
    model = make_model(hub, tmp, "TestOrg/Tiny-Model", make_files(FILES), piece_length=64 * 1024)
    gated = make_model(hub, tmp / "g", "TestOrg/Locked", make_files({"w.bin": 1000}, seed=2), piece_length=16 * 1024)
    out = tmp / "site"
    server = serve_folder(out)
    site_url = server.url.rstrip("/")
    with start_gateway(model, "mirror", hub, cache=tmp / "cache") as gw:
        registry = tmp / "registry"
        for m in (model, gated):
            path = registry / m.repo_id / f"{m.torrent.name}.torrent"
            path.parent.mkdir(parents=True)
            path.write_bytes(m.torrent_bytes(gw.url))
        MetaCache.for_registry(registry).store_meta(
            ModelMeta("TestOrg/Locked", revision=gated.revision, commit=gated.revision, gated="manual"),
            fetched_at="2026-01-01T00:00:00Z")
        build_site(Config(root=tmp).replace(registry=str(registry), out=str(out), site_url=site_url),
                   incremental=False)
        server.start()
        try:
            yield {"url": site_url + "/", "model": model, "out": out, "tmp": tmp}
        finally:
            server.stop()
            hub_gen.close()


def new_page(browser, **options):
    context = browser.new_context(permissions=["clipboard-read", "clipboard-write"], **options)
    context.set_default_timeout(10_000)
    return context, context.new_page()


def copied_by_keyboard(page, button) -> str:
    """Focus a copy button, press Enter, and return what landed on the clipboard."""
    page.evaluate("navigator.clipboard.writeText('')")
    button.focus()
    page.keyboard.press("Enter")
    page.wait_for_function("navigator.clipboard.readText().then(t => t.length > 0)")
    return page.evaluate("navigator.clipboard.readText()")


def run_aria2c(command: str, dest: Path) -> None:
    argv = shlex.split(command)
    assert argv[0] == "aria2c"
    dest.mkdir(parents=True)
    done = subprocess.run([shutil.which("aria2c"), *argv[1:], *ARIA2C_QUIET, f"--dir={dest}"], cwd=dest,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def test_the_aria2c_commands_on_a_model_page_download_from_the_web_seed(browser, published):
    model, tmp = published["model"], published["tmp"]
    context, page = new_page(browser)
    try:
        page.goto(published["url"] + "models/TestOrg/Tiny-Model/")
        get = page.locator("section[aria-labelledby=h-get]")
        whole = copied_by_keyboard(page, get.locator(".snippet").first.locator("button"))
        assert whole.startswith("aria2c ") and published["url"] in whole
        run_aria2c(whole, tmp / "whole")
        name = model.torrent.name
        assert {rel: (tmp / "whole" / name / rel).read_bytes() for rel in model.files} == model.files

        # One file: open its entry in the file list and copy its command.
        target = "model-00002-of-00002.safetensors"
        entry = page.locator("#files li.file", has=page.locator(".fname", has_text=target))
        entry.locator("summary").click()
        one = copied_by_keyboard(page, entry.locator(".copy-btn"))
        assert "--select-file=" in one
        run_aria2c(one, tmp / "one")
        assert (tmp / "one" / name / target).read_bytes() == model.files[target]
        other = tmp / "one" / name / "model-00001-of-00002.safetensors"
        assert not other.exists() or other.read_bytes() != model.files["model-00001-of-00002.safetensors"]
    finally:
        context.close()


def test_every_command_has_a_copy_button_that_stays_in_view_on_a_phone(browser, published):
    context, page = new_page(browser, viewport=PHONE)
    try:
        page.goto(published["url"] + "models/TestOrg/Tiny-Model/")
        snippets = page.locator("section[aria-labelledby=h-get] .snippet")
        assert snippets.count() == 4
        assert page.locator("pre").count() == page.locator(".snippet pre").count()  # no snippet without one
        for i in range(snippets.count()):
            snippet = snippets.nth(i)
            snippet.scroll_into_view_if_needed()
            pre, button = snippet.locator("pre").bounding_box(), snippet.locator("button").bounding_box()
            assert button["x"] >= pre["x"] and button["x"] + button["width"] <= min(pre["x"] + pre["width"],
                                                                                      PHONE["width"])
            # The command wraps: nothing is hidden in a horizontal scroll, nothing under the button.
            assert snippet.locator("pre").evaluate("e => e.scrollWidth <= e.clientWidth")
            code = snippet.locator("code").evaluate(
                "e => { const r = document.createRange(); r.selectNodeContents(e); "
                "return Math.max(...[...r.getClientRects()].map(b => b.right)); }")
            assert code <= button["x"] + 1 or snippet.locator("code").evaluate(
                "e => e.getBoundingClientRect().top") > button["y"] + button["height"]
        text = copied_by_keyboard(page, snippets.nth(3).locator("button"))
        assert text.startswith("import time, urllib.request, libtorrent as lt\n") and "is_seeding" in text
    finally:
        context.close()


def test_rows_are_dense_and_gated_models_are_marked(browser, published):
    context, page = new_page(browser, viewport={"width": 1100, "height": 900})
    try:
        page.goto(published["url"])
        rows = page.locator("#results > li")
        heights = [rows.nth(i).bounding_box()["height"] for i in range(rows.count())]
        assert max(heights) <= 80, heights  # were ~133 px: 4.5 models per screen
        locked = page.locator("#results > li[data-model-id='TestOrg/Locked']")
        assert locked.locator(".chip.warn", has_text="gated").is_visible()
        first = rows.first.locator(".r-act a").first
        assert first.inner_text() == ".torrent" and "primary" in first.get_attribute("class")
        page.goto(published["url"] + "models/TestOrg/Locked/")
        assert page.locator("h1 .chip", has_text="gated").is_visible()
        assert "Gated" in page.inner_text("#gated")
    finally:
        context.close()


def test_the_filters_fold_on_a_phone(browser, published):
    context, page = new_page(browser, viewport=PHONE)
    try:
        page.goto(published["url"])
        page.wait_for_selector("#filters")
        assert page.locator("#filters").bounding_box()["height"] <= 130
        assert page.locator("#results > li").first.bounding_box()["y"] < PHONE["height"]
    finally:
        context.close()


def test_a_site_built_for_disk_browsing_works_from_file_urls(browser, published, tmp_path):
    (tmp_path / "modelreg.toml").write_text("use_directory_urls = false\n")
    out = tmp_path / "site"
    registry = published["tmp"] / "registry"
    build_site(load_config(tmp_path / "modelreg.toml").replace(registry=str(registry), out=str(out)),
               incremental=False)
    context, page = new_page(browser)
    try:
        page.goto((out / "index.html").as_uri())
        page.locator("#results a.r-name").first.click()
        page.wait_for_load_state()
        assert page.url == (out / "models" / "TestOrg" / "Locked" / "index.html").as_uri()
        assert page.inner_text("h1").startswith("TestOrg/Locked")
        page.locator("nav[aria-label=Site] a", has_text="API").click()
        page.wait_for_load_state()
        assert page.url == (out / "api" / "index.html").as_uri() and page.inner_text("h1") == "JSON API"
        page.locator("nav[aria-label=Site] a", has_text="Models").click()
        # the new page loaded (a click waits for the navigation to start, not for the page): its list counted
        page.wait_for_load_state()
        assert page.url == (out / "index.html").as_uri()
        assert page.locator("#results > li").count() == 2
    finally:
        context.close()


def test_without_site_url_the_commands_fetch_the_torrent_from_where_the_page_is_served(browser, published,
                                                                                       tmp_path):
    out = tmp_path / "site"
    build_site(Config(root=tmp_path).replace(registry=str(published["tmp"] / "registry"), out=str(out)),
               incremental=False)
    server = serve_folder(out).start()
    context, page = new_page(browser)
    try:
        base = f"{server.url}models/TestOrg/Tiny-Model/"
        page.goto(base)
        page.wait_for_function("document.getElementById('torrent-where').textContent.includes('fetch')")
        url = base + "Tiny-Model.torrent"
        codes = page.eval_on_selector_all(".snippet code", "els => els.map(e => e.textContent)")
        assert codes[0] == f"aria2c --seed-time=0 {url}"
        assert codes[3].startswith("import time, urllib.request, libtorrent as lt\n")
        assert f'lt.load_torrent_buffer(urllib.request.urlopen("{url}").read())' in codes[3]
        assert all(url in code for code in codes)  # the per-file commands too
        assert copied_by_keyboard(page, page.locator(".snippet button").first) == codes[0]
        # From disk the page cannot know a URL: the commands name the file, as built.
        page.goto((out / "models" / "TestOrg" / "Tiny-Model" / "index.html").as_uri())
        assert page.inner_text(".snippet code >> nth=0") == "aria2c --seed-time=0 Tiny-Model.torrent"
    finally:
        context.close()
        server.stop()
