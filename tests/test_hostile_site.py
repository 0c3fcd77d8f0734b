"""Hostile configs and cards: nothing the site loads may come from another host (issue 15, items 7 and 8)."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from hostile import REPO_DEFAULT, REV, add_model, build, good_meta, meta_file

from modelreg.config import Config, load_config
from modelreg.errors import ConfigError
from modelreg.site.sanitize import render_card

BAD_BASES = ["//evil.example/", "/\\evil.example/", "\\/evil.example/", "/\t/evil.example/", "/\n/evil/",
             "/mirror//x/", "/ /", "https://evil.example/", "mirror/", "/./", "/../", "/a/../"]


@pytest.mark.parametrize("base", BAD_BASES)
def test_a_base_url_is_a_path_with_one_leading_slash(tmp_path: Path, base: str):
    with pytest.raises(ConfigError, match="'base_url' must be a path"):
        Config(root=tmp_path).replace(base_url=base)
    (tmp_path / "modelreg.toml").write_text(f"base_url = {json.dumps(base)}\n")
    with pytest.raises(ConfigError, match="'base_url' must be a path"):
        load_config(tmp_path / "modelreg.toml")


@pytest.mark.parametrize("base, kept", [("/", "/"), ("/mirror", "/mirror/"), ("/a/b-c_d.e~/", "/a/b-c_d.e~/"),
                                        ("/%C3%A9t%C3%A9/", "/%C3%A9t%C3%A9/")])
def test_ordinary_base_paths_are_kept(tmp_path: Path, base: str, kept: str):
    assert Config(root=tmp_path).replace(base_url=base).base_url == kept


class _Sources(HTMLParser):
    """Every URL an HTML page loads by itself: src, srcset, poster, and <link href> (not <a href>)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value is None:
                continue
            if name in ("src", "poster", "background", "data") or (tag == "link" and name == "href"):
                self.urls.append(value)
            elif name in ("srcset", "imagesrcset"):
                self.urls += [part.split()[0] for part in value.split(",") if part.strip()]


def _off_host(url: str) -> bool:
    parts = urlsplit(url.strip())
    return bool(parts.scheme or parts.netloc or url.strip().startswith(("//", "\\", "/\\")))


CARD = """# A card with images

![tracker](https://evil.example/track.png) <img src="//evil.example/pixel.gif" alt="pixel">
<img src="http://evil.example/a.png" srcset="https://evil.example/b.png 2x"> ![relative](docs/chart.png)
[![badge](https://img.shields.io/badge/x-y-green)](https://example.org/)
<picture><source srcset="https://evil.example/c.webp"><img src="https://evil.example/c.png"></picture>
<video src="https://evil.example/v.mp4" poster="https://evil.example/p.png"></video>
"""


def test_card_images_become_links(tmp_path: Path):
    html = render_card(CARD, "https://hf.example/Org/Model/blob/main/", "https://hf.example/Org/Model/resolve/main/")
    parser = _Sources()
    parser.feed(html)
    assert parser.urls == []
    assert '<a href="https://evil.example/track.png" rel="nofollow noopener noreferrer">[image: tracker]</a>' in html
    assert 'href="https://hf.example/Org/Model/resolve/main/docs/chart.png"' in html
    assert '<a href="https://example.org/" rel="nofollow noopener noreferrer">[image: badge]</a>' in html


def test_a_built_site_loads_nothing_from_another_host(tmp_path: Path):
    registry = tmp_path / "registry"
    add_model(registry, REPO_DEFAULT, sidecar={"repo_id": REPO_DEFAULT, "revision": REV})
    meta = good_meta(REPO_DEFAULT)
    meta["meta"]["card_markdown"] = CARD
    meta_file(registry, REPO_DEFAULT).write_text(json.dumps(meta))
    out = tmp_path / "site"
    report = build(registry, out, base_url="/mirror/")
    assert report.models == 1 and not report.errors
    pages = sorted(out.rglob("*.html"))
    assert len(pages) >= 4
    for page in pages:
        parser = _Sources()
        parser.feed(page.read_text())
        assert not [u for u in parser.urls if _off_host(u)], page
    assert "[image: tracker]" in (out / "models" / REPO_DEFAULT / "index.html").read_text()
