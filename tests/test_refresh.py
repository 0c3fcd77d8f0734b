"""Refresh the metadata cache from the fake hub, then build offline from it: same site, problems reported."""

from __future__ import annotations

import json
import shutil
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from examples_hub import publish, serve_examples
from fakehub import FakeHub

from modelreg import cli
from modelreg.config import Config
from modelreg.errors import MetadataCacheError
from modelreg.hf.client import HubClient
from modelreg.hf.retry import RetryPolicy
from modelreg.registry.catalog import load_catalog
from modelreg.registry.metacache import MetaCache
from modelreg.registry.refresh import RefreshSettings, parse_age, refresh
from modelreg.site.build import build_site, join_metadata

FAST = RetryPolicy(retries=3, base_delay=0.01, max_delay=0.05)
TOKEN = "hf_test_token"


WEIGHTS = {"config.json": b'{"hidden_size": 8}', "model.safetensors": b"w" * 5000}


@pytest.fixture
def hub():
    with FakeHub(tokens={TOKEN}) as hub:
        yield hub


@pytest.fixture
def registry(tmp_path, hub):
    reg = tmp_path / "registry"
    publish(hub, reg, "Org/Alpha", WEIGHTS, license="mit", pipeline_tag="text-generation", downloads=10)
    publish(hub, reg, "Org/Beta-GGUF", {"beta.Q4.gguf": b"GGUF" + b"q" * 999}, single_file=True,
            gguf={"total": 4242})
    return reg


def settings(**changes) -> RefreshSettings:
    return RefreshSettings(**{"retry": FAST, "progress": False, **changes})


def config_for(registry: Path, hub: FakeHub | None = None) -> Config:
    extra = {"hf_endpoint": hub.endpoint} if hub else {}
    return Config(registry=str(registry), out=str(registry.parent / "site"), root=registry.parent, **extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def closed_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def joined(registry: Path) -> dict:
    catalog = join_metadata(load_catalog(registry), MetaCache.for_registry(registry))
    return {m.repo_id: m for m in catalog.models}


def test_refresh_then_offline_build_is_byte_identical(registry, hub, monkeypatch):
    config = config_for(registry)  # the same config twice (the site links to its hf_endpoint); HF_ENDPOINT changes
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    report = build_site(config, refresh_metadata=settings())
    assert report.refresh.fetched == [f"Org/Alpha@{hub.repo('Org/Alpha').sha}",
                                      f"Org/Beta-GGUF@{hub.repo('Org/Beta-GGUF').sha}"]
    assert report.model_problems == []
    site = snapshot(registry.parent / "site")
    models = joined(registry)
    assert models["Org/Alpha"].meta.license == "mit" and models["Org/Alpha"].meta.card_markdown
    assert models["Org/Beta-GGUF"].meta.parameters == 4242

    hub.stop()
    monkeypatch.setenv("HF_ENDPOINT", closed_port())
    offline = build_site(config)
    assert offline.refresh is None and offline.model_problems == []
    assert snapshot(registry.parent / "site") == site
    assert joined(registry) == models


def test_cache_files_are_deterministic(registry, hub):
    cache = MetaCache.for_registry(registry)
    client = HubClient(hub.endpoint, retry=FAST)
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    refresh(load_catalog(registry).models, cache, client, settings(), clock=lambda: moment)
    first = snapshot(cache.root)
    refresh(load_catalog(registry).models, cache, client, settings(max_age=timedelta(0)), clock=lambda: moment)
    assert snapshot(cache.root) == first
    sha = hub.repo("Org/Alpha").sha
    text = first[f"Org/Alpha/{sha}.json"].decode()
    data = json.loads(text)
    assert data["fetched_at"] == "2026-01-02T03:04:05Z" and "fetched_at" not in data["meta"]
    assert text == json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def test_max_age_skips_fresh_entries(registry, hub):
    cache, client = MetaCache.for_registry(registry), HubClient(hub.endpoint, retry=FAST)
    models = load_catalog(registry).models
    now = datetime(2026, 3, 1, tzinfo=UTC)
    assert len(refresh(models, cache, client, settings(), clock=lambda: now).fetched) == 2
    hub.reset_stats()
    later = refresh(models, cache, client, settings(max_age=parse_age("7d")), clock=lambda: now + timedelta(days=6))
    assert (later.fetched, len(later.fresh)) == ([], 2)
    assert hub.find_requests() == []
    stale = refresh(models, cache, client, settings(max_age=parse_age("7d")), clock=lambda: now + timedelta(days=8))
    assert len(stale.fetched) == 2 and len(hub.find_requests(path="^/api/")) == 2


def test_429_and_500_during_refresh_are_retried(registry, hub):
    hub.inject("api", 429, retry_after=0.2)
    hub.inject("api", 500)
    report = build_site(config_for(registry, hub), refresh_metadata=settings(jobs=1))
    assert report.refresh.failed == [] and len(report.refresh.fetched) == 2
    assert report.model_problems == []


def test_404_and_gated_keep_cached_metadata_and_say_why(tmp_path, hub, monkeypatch, capsys):
    reg = tmp_path / "registry"
    publish(hub, reg, "Org/Alpha", WEIGHTS, license="mit")
    publish(hub, reg, "Org/Locked", WEIGHTS, license="llama3", gated="manual")
    monkeypatch.setenv("HF_TOKEN", TOKEN)  # a token makes the gated repository work
    first = build_site(config_for(reg, hub), refresh_metadata=settings())
    assert first.refresh.failed == [] and first.model_problems == []
    assert joined(reg)["Org/Locked"].meta.card_markdown.startswith("---\nlicense: llama3")

    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    hub.remove_repo("Org/Alpha")
    hub.repo("Org/Locked").likes = 99
    assert cli.main(["build", "--registry", str(reg), "--out", str(tmp_path / "site"), "--refresh-metadata",
                     "--max-age", "0"]) == 1  # failed fetches fail the command, like refresh; HF_ENDPOINT decides
    out = capsys.readouterr()
    assert "failed 2" in out.err  # summary goes to stderr when something failed
    models = joined(reg)
    alpha, locked = models["Org/Alpha"], models["Org/Locked"]
    assert alpha.meta.license == "mit" and locked.meta.likes == 99
    assert locked.meta.card_markdown.startswith("---\nlicense: llama3")  # same commit: the old card is kept
    assert any("does not exist on the hub" in p for p in alpha.problems)
    assert any("gated" in p and "HF_TOKEN" in p for p in locked.problems)
    assert "Org/Alpha: the last Hugging Face metadata refresh failed" in out.out + out.err
    assert (tmp_path / "site" / "models" / "Org" / "Alpha" / "index.html").is_file()


def test_model_never_fetched_builds_and_says_why(tmp_path, hub):
    reg = tmp_path / "registry"
    publish(hub, reg, "Org/Alpha", WEIGHTS)
    hub.remove_repo("Org/Alpha")
    report = build_site(config_for(reg, hub), refresh_metadata=settings())
    assert report.models == 1 and [e.reason for e in report.refresh.failed] == ["not-found"]
    assert report.model_problems == [("Org/Alpha", "no Hugging Face metadata: the repository does not exist "
                                                   "on the hub (or is private)")]
    assert "Org/Alpha: no Hugging Face metadata" in report.summary()


def test_stale_torrent_is_reported(tmp_path, hub):
    reg = tmp_path / "registry"
    files = {**WEIGHTS, "tokenizer.json": b"{}"}
    stale = {"config.json": WEIGHTS["config.json"], "model.safetensors": b"w" * 4000, "extra.bin": b"x"}
    publish(hub, reg, "Org/Alpha", files, torrent_files=stale)
    report = build_site(config_for(reg, hub), refresh_metadata=settings())
    problems = dict(report.model_problems) and [p for _, p in report.model_problems]
    sha = hub.repo("Org/Alpha").sha[:12]
    assert problems == [
        f"1 torrent file not in the Hugging Face repository at {sha}: extra.bin",
        f"1 file with a different size on Hugging Face at {sha}: model.safetensors (4000 bytes in the torrent, "
        "5000 on HF)",
        "note: 2 files of the Hugging Face repository not in the torrent: README.md, tokenizer.json",
    ]
    assert "model.safetensors (4000 bytes in the torrent" in report.summary()


def test_unpinned_model_uses_main_and_says_so(tmp_path, hub):
    reg = tmp_path / "registry"
    publish(hub, reg, "Org/Alpha", WEIGHTS, pin=False)
    build_site(config_for(reg, hub), refresh_metadata=settings())
    assert (reg / ".metadata" / "Org" / "Alpha" / "main.json").is_file()
    model = joined(reg)["Org/Alpha"]
    assert model.meta.commit == hub.repo("Org/Alpha").sha and model.meta.revision is None
    assert [p for p in model.problems if "main branch" in p]


def test_many_models_refresh_with_bounded_concurrency(tmp_path, hub):
    reg = tmp_path / "registry"
    for i in range(40):
        publish(hub, reg, f"Org/M{i:02d}", {"w.bin": bytes([i]) * 100})
    hub.inject("any", delay=0.03, times=None)  # slow answers, so that requests overlap
    report = refresh(load_catalog(reg).models, MetaCache.for_registry(reg), HubClient(hub.endpoint, retry=FAST),
                     settings(jobs=4))
    assert len(report.fetched) == 40 and report.failed == []
    assert 2 <= hub.max_in_flight["hub"] <= 4


def test_refresh_command_only_and_progress_on_stderr(registry, hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    assert cli.main(["refresh", "--registry", str(registry), "--only", "org/alpha", "--jobs", "2"]) == 0
    out = capsys.readouterr()
    assert "fetched 1, fresh 0, failed 0" in out.out
    assert [r.path for r in hub.find_requests(path="^/api/")] == [f"/api/models/Org/Alpha/revision/"
                                                                  f"{hub.repo('Org/Alpha').sha}"]
    assert cli.main(["refresh", "--registry", str(registry), "--only", "Org/Nope"]) == 1
    assert "not in the registry: Org/Nope" in capsys.readouterr().err
    assert cli.main(["refresh", "--registry", str(registry), "--max-age", "soon"]) == 1


def test_damaged_cache_file_is_reported_then_replaced(registry, hub):
    sha = hub.repo("Org/Alpha").sha
    path = registry / ".metadata" / "Org" / "Alpha" / f"{sha}.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    offline = build_site(config_for(registry))
    assert any(repo == "Org/Alpha" and str(path) in p and "modelreg refresh" in p for repo, p in offline.model_problems)
    build_site(config_for(registry, hub), refresh_metadata=settings())
    assert joined(registry)["Org/Alpha"].meta.license == "mit"


def test_progress_bar_is_drawn_on_stderr(registry, hub, capsys):
    refresh(load_catalog(registry).models, MetaCache.for_registry(registry), HubClient(hub.endpoint, retry=FAST),
            settings(progress=True))
    out = capsys.readouterr()
    assert "metadata: 100%" in out.err and "2/2" in out.err and out.out == ""


def test_an_unexpected_error_stops_the_refresh_and_cancels_the_rest(tmp_path, hub):
    reg = tmp_path / "registry"
    for i in range(6):
        publish(hub, reg, f"Org/M{i}", {"w.bin": b"w"})
    cache = MetaCache.for_registry(reg)
    cache.root.mkdir()
    (cache.root / "Org").write_text("a file where a folder must go")  # every write fails with an OSError
    hub.inject("any", delay=0.05, times=None)
    with pytest.raises(MetadataCacheError, match="cannot write the cache file"):
        refresh(load_catalog(reg).models, cache, HubClient(hub.endpoint, retry=FAST), settings(jobs=1))
    assert len(hub.find_requests(path="^/api/")) < 6


def test_bundled_examples_build_offline_from_their_committed_metadata(tmp_path):
    registry = Path(__file__).resolve().parents[1] / "registry"
    report = build_site(Config(registry=str(registry), out=str(tmp_path / "site"), root=tmp_path))
    assert report.models >= 4 and report.model_problems == []
    assert all(m.meta and m.meta.license and m.meta.card_markdown for m in joined(registry).values())


def test_bundled_examples_metadata_is_what_examples_hub_serves(tmp_path):
    registry = Path(__file__).resolve().parents[1] / "registry"
    committed = joined(registry)
    copy = tmp_path / "registry"
    shutil.copytree(registry, copy, ignore=shutil.ignore_patterns(".metadata"))
    with FakeHub() as hub:
        serve_examples(hub)
        refresh(load_catalog(copy).models, MetaCache.for_registry(copy), HubClient(hub.endpoint, retry=FAST),
                settings())
    fresh = joined(copy)
    assert sorted(fresh) == sorted(committed)
    for repo_id, model in fresh.items():  # regenerate with: python tests/examples_hub.py
        assert replace(model.meta, fetched_at=None) == replace(committed[repo_id].meta, fetched_at=None), repo_id


def test_a_hub_answer_the_cache_cannot_hold_is_that_models_failure(registry, hub):
    # The cache writes only what its reader accepts (issue 15): a negative like count from the hub is
    # refused at the write, recorded as this model's failure, and the other models are still fetched.
    publish(hub, registry, "Org/Odd", WEIGHTS, likes=-3)
    client = HubClient(hub.endpoint, None, FAST)
    report = refresh(load_catalog(registry).models, MetaCache.for_registry(registry), client, settings())
    assert [e.repo_id for e in report.failed] == ["Org/Odd"] and report.failed[0].reason == "bad-response"
    assert "likes" in str(report.failed[0])
    assert len(report.fetched) == 2
    entry = MetaCache.for_registry(registry).load("Org/Odd", hub.repo("Org/Odd").sha)
    assert entry.meta is None and entry.failure.reason == "bad-response"
