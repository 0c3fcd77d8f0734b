"""Shared fixtures: the real torrent corpus (when ../shared is there), Chromium, and where tests keep the hub and
caches."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The corpus beside the checkout, or where MODELREG_CORPUS says (a git worktree's parent has no ../shared).
CORPUS = Path(os.environ.get("MODELREG_CORPUS") or ROOT.parent / "shared" / "corpus" / "modelregistry")
#: Debian's Chromium: Playwright drives it (executable_path) and never downloads a browser.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The 49 real hybrid torrents of a public registry; the test is skipped where ../shared is absent."""
    if not (CORPUS / "expected.json").is_file():
        pytest.skip(f"real torrent corpus not found at {CORPUS}")
    return CORPUS


@pytest.fixture(scope="session")
def corpus_expected(corpus_dir: Path) -> dict[str, dict]:
    """expected.json: what libtorrent reads from each corpus torrent, keyed by its path in the corpus."""
    return json.loads((corpus_dir / "expected.json").read_text())


@pytest.fixture(autouse=True)
def never_the_real_hub(monkeypatch):
    """Whatever a test forgets to set, nothing leaves 127.0.0.1 and no saved token is used."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{s.getsockname()[1]}")
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")


@pytest.fixture(autouse=True)
def build_cache_in_tmp(tmp_path_factory, monkeypatch):
    """Incremental-build caches go to a temporary folder, never the user's ~/.cache."""
    monkeypatch.setenv("MODELREG_CACHE_DIR", str(tmp_path_factory.mktemp("modelreg-cache")))


@pytest.fixture(scope="module")
def browser():
    """Chromium driven by Playwright, one per test module; the test is skipped where either is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"chromium is not installed at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        yield launched
        launched.close()
