"""The packaged theme and a user's overrides: a file in ``theme_dir`` replaces the packaged one."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from modelreg.config import Config
from modelreg.site import templating
from modelreg.site.build import build_site
from modelreg.site.templating import TEMPLATES

EXAMPLES = Path(__file__).resolve().parents[1] / "registry"


def build(root: Path, **options) -> Path:
    config = Config(root=root).replace(registry=str(EXAMPLES), out=str(root / "site"), **options)
    build_site(config)
    return root / "site"


def test_the_theme_is_package_data():
    assert (TEMPLATES / "base.html").is_file() and (TEMPLATES / "static" / "site.css").is_file()


def test_without_overrides_the_packaged_theme_is_used(tmp_path):
    site = build(tmp_path)
    assert (site / "static" / "site.css").read_bytes() == (TEMPLATES / "static" / "site.css").read_bytes()


def test_an_override_replaces_one_file_and_the_rest_stays_packaged(tmp_path):
    theme = tmp_path / "templates"
    (theme / "static").mkdir(parents=True)
    (theme / "static" / "site.css").write_text("body { color: rebeccapurple }\n")
    (theme / "404.html").write_text("{% extends 'base.html' %}{% block main %}OVERRIDDEN 404{% endblock %}\n")
    site = build(tmp_path)
    assert (site / "static" / "site.css").read_text() == "body { color: rebeccapurple }\n"
    assert (site / "static" / "search.js").read_bytes() == (TEMPLATES / "static" / "search.js").read_bytes()
    assert "OVERRIDDEN 404" in (site / "404.html").read_text()
    assert "OVERRIDDEN" not in (site / "index.html").read_text()


def test_changing_an_override_rerenders(tmp_path):
    theme = tmp_path / "custom"
    theme.mkdir()
    site = build(tmp_path, theme_dir="custom")
    before = (site / "index.html").read_text()
    base = (TEMPLATES / "base.html").read_text()
    (theme / "base.html").write_text(base.replace("<body", "<body data-theme-test=\"1\"", 1))
    site = build(tmp_path, theme_dir="custom")
    pages = list((site / "models").rglob("index.html"))
    assert pages and all('data-theme-test="1"' in p.read_text() for p in pages)
    assert (site / "index.html").read_text() != before


@pytest.mark.parametrize("module", ["units.py", "site/records.py", "hf/metadata.py", "torrent/metainfo.py"])
def test_a_change_to_any_module_that_shapes_the_pages_changes_the_rendering_fingerprint(tmp_path, monkeypatch,
                                                                                         module):
    # The package is copied so that the test edits the copy; the fingerprint reads whole packages, not a list.
    copy = tmp_path / "modelreg"
    shutil.copytree(templating.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(templating, "PACKAGE", copy)
    theme = templating.Theme()
    before = theme.fingerprint()
    with open(copy / module, "a") as f:
        f.write("\n# a change\n")
    assert theme.fingerprint() != before
