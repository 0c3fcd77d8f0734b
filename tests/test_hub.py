"""The hub client: the real huggingface_hub against the fake hub over HTTP, retries counted on the server."""

from __future__ import annotations

import time

import pytest
from fakehub import FakeHub, Generated

from modelreg.config import Config
from modelreg.errors import HubError
from modelreg.hf.client import HubClient, hub_endpoint
from modelreg.hf.retry import RetryPolicy, retry_after

FAST = RetryPolicy(retries=3, base_delay=0.01, max_delay=0.05)
TOKEN = "hf_test_token"




@pytest.fixture
def hub():
    with FakeHub(tokens={TOKEN}) as hub:
        hub.add_repo(
            "Org/Llama-Tiny",
            {"config.json": b'{"hidden_size": 8}', "model.safetensors": Generated(3_000_000, seed=1)},
            card="# Llama Tiny\n\nWeights.\n",
            gitattributes=True,
            license="apache-2.0", pipeline_tag="text-generation", library_name="transformers",
            tags=["llama"], downloads=1234, likes=56, trending_score=7, base_model="Org/Llama-Base",
            safetensors={"F16": 1_500_000}, created_at="2025-01-02T03:04:05.000Z",
            last_modified="2025-02-03T04:05:06.000Z",
        )
        hub.add_repo("Org/Tiny-GGUF", {"tiny.Q4.gguf": b"GGUF" + bytes(100)},
                     gguf={"total": 999, "architecture": "llama"})
        hub.add_repo("Org/Gated", {"w.safetensors": b"x" * 10}, card="# Gated\n", gated="manual")
        yield hub


def api_requests(hub: FakeHub, repo: str = "") -> int:
    return len(hub.find_requests(origin="hub", path=f"^/api/models/{repo}"))


def test_fetch_reads_what_people_choose_a_model_by(hub):
    fetched = HubClient(hub.endpoint, retry=FAST).fetch("Org/Llama-Tiny", None)
    meta, repo = fetched.meta, hub.repo("Org/Llama-Tiny")
    assert fetched.card_error is None
    assert (meta.license, meta.pipeline_tag, meta.library_name) == ("apache-2.0", "text-generation", "transformers")
    assert "llama" in meta.tags and "license:apache-2.0" in meta.tags
    assert (meta.parameters, meta.base_model) == (1_500_000, ("Org/Llama-Base",))
    assert (meta.downloads, meta.likes, meta.trending_score, meta.gated) == (1234, 56, 7, False)
    assert (meta.created_at, meta.last_modified) == ("2025-01-02T03:04:05Z", "2025-02-03T04:05:06Z")
    assert meta.commit == repo.sha and meta.revision is None
    assert meta.card_markdown.endswith("# Llama Tiny\n\nWeights.\n") and "license: apache-2.0" in meta.card_markdown
    files = {f.path: f for f in meta.files}
    assert sorted(files) == [".gitattributes", "README.md", "config.json", "model.safetensors"]
    weights = files["model.safetensors"]
    assert (weights.size, weights.lfs_sha256) == (3_000_000, Generated(3_000_000, seed=1).sha256())
    assert files["config.json"].lfs_sha256 is None


def test_fetch_at_a_pinned_revision_reads_that_commit(hub):
    repo = hub.repo("Org/Llama-Tiny")
    old = repo.sha
    repo.commit({"model.safetensors": Generated(10, seed=2)})
    meta = HubClient(hub.endpoint, retry=FAST).fetch("Org/Llama-Tiny", old).meta
    assert meta.commit == old and meta.revision == old
    assert {f.path: f.size for f in meta.files}["model.safetensors"] == 3_000_000
    card_requests = hub.find_requests(path="README.md")
    assert card_requests and all(f"/resolve/{old}/" in r.path for r in card_requests)


def test_gguf_parameter_count(hub):
    assert HubClient(hub.endpoint, retry=FAST).fetch("Org/Tiny-GGUF", None).meta.parameters == 999


def test_429_with_retry_after_is_waited_for_then_succeeds(hub):
    hub.inject("api", 429, retry_after=0.3)
    start = time.monotonic()
    meta = HubClient(hub.endpoint, retry=FAST).fetch("Org/Llama-Tiny", None).meta
    assert time.monotonic() - start >= 0.3
    assert meta.license == "apache-2.0"
    assert api_requests(hub) == 2


def test_5xx_is_retried_once_per_attempt_by_modelreg_alone(hub):
    hub.inject("api", 500, times=2)
    hub.inject("resolve", 502)
    meta = HubClient(hub.endpoint, retry=FAST).fetch("Org/Llama-Tiny", None).meta
    assert meta.card_markdown
    assert api_requests(hub) == 3  # two failures + one success: huggingface_hub did not retry on its own
    assert len(hub.find_requests(path="README.md")) == 2


def test_persistent_5xx_gives_up_after_the_configured_retries(hub):
    hub.inject("api", 503, times=None)
    with pytest.raises(HubError) as caught:
        HubClient(hub.endpoint, retry=FAST).fetch("Org/Llama-Tiny", None)
    assert caught.value.reason == "server-error" and "HTTP 503" in str(caught.value)
    assert api_requests(hub) == FAST.retries + 1


def test_retry_after_beyond_the_limit_fails_at_once_saying_when(hub):
    hub.inject("api", 429, retry_after=3600)
    with pytest.raises(HubError) as caught:
        HubClient(hub.endpoint, retry=FAST).fetch("Org/Llama-Tiny", None)
    assert caught.value.reason == "rate-limited" and "3600 s" in str(caught.value)
    assert api_requests(hub) == 1


@pytest.mark.parametrize("repo_id, revision, reason", [
    ("Org/Missing", None, "not-found"),
    ("Org/Llama-Tiny", "f" * 40, "revision-not-found"),
])
def test_missing_repository_or_revision_is_not_retried(hub, repo_id, revision, reason):
    with pytest.raises(HubError) as caught:
        HubClient(hub.endpoint, retry=FAST).fetch(repo_id, revision)
    assert caught.value.reason == reason and repo_id in str(caught.value)
    assert api_requests(hub) == 1


def test_gated_card_needs_a_token(hub):
    fetched = HubClient(hub.endpoint, retry=FAST).fetch("Org/Gated", None)
    assert fetched.meta.gated == "manual" and fetched.meta.card_markdown is None
    assert fetched.card_error.reason == "gated" and "HF_TOKEN" in str(fetched.card_error)
    with_token = HubClient(hub.endpoint, token=TOKEN, retry=FAST).fetch("Org/Gated", None)
    assert with_token.card_error is None and with_token.meta.card_markdown.startswith("# Gated")
    assert hub.find_requests(path="README.md")[-1].authorization


def test_unreachable_hub_is_reported_as_offline(hub):
    client = HubClient(hub.endpoint, retry=FAST)
    with hub.offline():
        with pytest.raises(HubError) as caught:
            client.fetch("Org/Llama-Tiny", None)
    assert caught.value.reason == "offline" and hub.endpoint in str(caught.value)


def test_timeouts_are_retried_then_reported(hub):
    slow = hub.inject("api", delay=2, times=None)
    client = HubClient(hub.endpoint, retry=RetryPolicy(retries=1, base_delay=0.01), timeout=0.2)
    with pytest.raises(HubError) as caught:
        client.fetch("Org/Llama-Tiny", None)
    assert caught.value.reason == "timeout"
    assert slow.hits == 2  # requests are recorded when answered; the fault counts them as they arrive


def test_endpoint_config_wins_over_environment(monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9/")
    assert hub_endpoint(Config()) == "http://127.0.0.1:9"
    assert hub_endpoint(Config(hf_endpoint="http://127.0.0.1:8/")) == "http://127.0.0.1:8"
    monkeypatch.delenv("HF_ENDPOINT")
    assert hub_endpoint(Config()) == "https://huggingface.co"


def test_retry_after_reads_seconds_and_dates():
    assert retry_after({"retry-after": "2.5"}) == 2.5
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None
