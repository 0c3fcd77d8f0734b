"""The mirror answers Hugging Face's own URLs: the real huggingface_hub client, HF_ENDPOINT set to the gateway.

huggingface_hub reads HF_ENDPOINT when it is imported, so every client call runs in a subprocess
(:func:`run_client`) with its own environment; the fake hub is the upstream and the oracle.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fakehub import fake_hub
from webseed_harness import FAST_RETRY, GatewayProcess, GatewayThread, fetch, make_files, make_model

from modelreg.cli import main
from modelreg.errors import ConfigError
from modelreg.hf.client import HubClient
from modelreg.registry.metacache import MetaCache
from modelreg.registry.refresh import fetch_into
from modelreg.webseed import Gateway, GatewaySettings, ServeSet
from modelreg.webseed.hfapi import HfApi
from modelreg.webseed.tokens import TokenFile

REPO = "TestOrg/Hf-Model"
FILES = {
    "config.json": 1_000,
    "model.safetensors": 300_007,
    "nested/deep/weights.bin": 200_003,
    "tokenizer/vocab.txt": 5_000,
}
LFS = ("model.safetensors", "nested/deep/weights.bin")

CLIENT = textwrap.dedent("""
    import json, sys, traceback
    from huggingface_hub import HfApi, hf_hub_download, scan_cache_dir, snapshot_download

    def info(repo, endpoint=None, **kw):
        i = HfApi(endpoint=endpoint).model_info(repo, **kw)
        sib = sorted([s.rfilename, s.size, s.blob_id, s.lfs.sha256 if s.lfs else None] for s in i.siblings)
        return {"id": i.id, "sha": i.sha, "siblings": sib, "tags": i.tags, "pipeline_tag": i.pipeline_tag,
                "library_name": i.library_name, "license": i.card_data.license if i.card_data else None,
                "gated": i.gated, "last_modified": i.last_modified.isoformat() if i.last_modified else None}

    def scan(path):
        c = scan_cache_dir(path)
        return {"warnings": [str(w) for w in c.warnings],
                "repos": {r.repo_id: sorted(f.file_path.relative_to(next(iter(r.revisions)).snapshot_path).as_posix()
                                            for rev in r.revisions for f in rev.files) for r in c.repos}}

    def cli(*args):  # the `hf` command, as a user runs it
        from huggingface_hub.cli.hf import main
        sys.argv = ["hf", *args]
        try:
            return main()
        except SystemExit as exc:
            return exc.code

    OPS = {"cli": cli, "snapshot": snapshot_download, "download": hf_hub_download, "info": info, "scan": scan,
           "files": lambda repo, **kw: sorted(HfApi().list_repo_files(repo, **kw))}
    out = []
    for op, args, kwargs in json.loads(sys.argv[1]):
        try:
            out.append({"ok": OPS[op](*args, **kwargs)})
        except Exception as exc:
            out.append({"error": [c.__name__ for c in type(exc).__mro__], "message": str(exc)[:500]})
    print(json.dumps(out))
""")


def run_client(endpoint: str, cache: Path, *ops) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HUB_CACHE=str(cache), HF_HUB_DISABLE_TELEMETRY="1",
               HF_HUB_DISABLE_IMPLICIT_TOKEN="1", HF_HUB_DISABLE_PROGRESS_BARS="1", HF_HUB_ETAG_TIMEOUT="30")
    ops = [(op[0], list(op[1:-1]) if isinstance(op[-1], dict) else list(op[1:]),
            op[-1] if isinstance(op[-1], dict) else {}) for op in ops]
    done = subprocess.run([sys.executable, "-c", CLIENT, json.dumps(ops)], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def hub():
    yield from fake_hub()


@pytest.fixture
def model(hub, tmp_path):
    files = make_files(FILES, seed=11)
    m = make_model(hub, tmp_path, REPO, files, piece_length=64 * 1024)
    hub.repo(REPO).license = "apache-2.0"
    hub.repo(REPO).pipeline_tag = "text-generation"
    hub.repo(REPO).library_name = "transformers"
    return m


@pytest.fixture
def metadata(hub, model, tmp_path) -> MetaCache:
    """The registry's metadata cache, filled the way ``modelreg refresh`` does."""
    cache = MetaCache.for_registry(tmp_path / "registry")
    client = HubClient(hub.endpoint)
    for revision in (model.revision, None):
        assert fetch_into(cache, client, REPO, revision, "2026-01-01T00:00:00Z") is None
    return cache


def hf_gateway(model, hub, cache: Path, metadata: MetaCache | None, tokens: TokenFile | None = None):
    settings = GatewaySettings(mode="mirror", hf_endpoint=hub.endpoint, redirect_hosts=(hub.cdn_endpoint[7:],),
                               cache_dir=cache, retry=FAST_RETRY, upstream_timeout=10)
    gateway = Gateway(settings, ServeSet([model.served]))
    HfApi(gateway, metadata, tokens)
    return GatewayThread(gateway)


def expected_etag(hub, path: str) -> str:
    entry = hub.repo(REPO).entry(path)
    return entry.sha256() if entry.lfs else entry.blob_id()


def test_snapshot_download_through_the_mirror_then_with_the_hub_down(hub, model, metadata, tmp_path):
    with hf_gateway(model, hub, tmp_path / "mirror", metadata) as gw:
        first = run_client(gw.url, tmp_path / "hf1", ("snapshot", REPO, {}), ("scan", str(tmp_path / "hf1")),
                           ("info", REPO, {"files_metadata": True}),
                           ("info", REPO, {"endpoint": hub.endpoint, "files_metadata": True}))
        snapshot = Path(first[0]["ok"])
        assert {p: (snapshot / p).read_bytes() for p in FILES} == model.files
        assert snapshot.parent.name == "snapshots" and snapshot.name == model.revision
        # Blobs are named as HF names them: LFS files by SHA-256, the others by git blob id.
        blobs = {p: os.path.basename(os.readlink(snapshot / p)) for p in FILES}
        assert blobs == {p: expected_etag(hub, p) for p in FILES}
        assert first[1]["ok"] == {"warnings": [], "repos": {REPO: sorted(FILES)}}
        ours, theirs = first[2]["ok"], first[3]["ok"]
        assert ours == theirs, "the mirror's model info differs from the hub's"

        with hub.offline():
            second = run_client(
                gw.url, tmp_path / "hf2",
                ("snapshot", REPO, {}),
                ("download", REPO, "nested/deep/weights.bin", {"revision": "main"}),
                ("info", REPO, {}),
                ("files", REPO, {}),
                ("files", REPO, {"revision": model.revision}),
                ("snapshot", "TestOrg/Not-Mirrored", {}),
                ("download", REPO, "not-there.txt", {}),
                ("download", REPO, "config.json", {"revision": "no-such-branch"}),
                ("scan", str(tmp_path / "hf2")),
                ("cli", "download", REPO, "--local-dir", str(tmp_path / "local"), {}),
            )
        snapshot = Path(second[0]["ok"])
        assert {p: (snapshot / p).read_bytes() for p in FILES} == model.files
        assert Path(second[1]["ok"]).read_bytes() == model.files["nested/deep/weights.bin"]
        assert second[2]["ok"]["sha"] == model.revision and second[2]["ok"]["license"] == "apache-2.0"
        assert second[2]["ok"]["pipeline_tag"] == "text-generation" == theirs["pipeline_tag"]
        assert second[3]["ok"] == second[4]["ok"] == sorted(FILES)
        assert "RepositoryNotFoundError" in second[5]["error"]
        assert "EntryNotFoundError" in second[6]["error"]
        assert "RevisionNotFoundError" in second[7]["error"]
        assert second[8]["ok"] == {"warnings": [], "repos": {REPO: sorted(FILES)}}
        assert second[9]["ok"] in (0, None), second[9]
        assert {p: (tmp_path / "local" / p).read_bytes() for p in FILES} == model.files
        status, _, body = fetch(gw, "/metrics")
    assert status == 200
    counts = {line.split()[0]: float(line.split()[1]) for line in body.decode().splitlines()
              if line.startswith("modelreg_webseed_hf_api_requests_total")}
    assert counts['modelreg_webseed_hf_api_requests_total{endpoint="resolve"}'] >= 2 * len(FILES)
    assert counts['modelreg_webseed_hf_api_requests_total{endpoint="api"}'] >= 4


def test_prefilled_cache_serves_hf_urls_and_never_a_corrupted_byte(hub, model, tmp_path):
    torrent = tmp_path / "model.torrent"
    torrent.write_bytes(model.torrent.raw)
    cache, registry = tmp_path / "mirror", tmp_path / "prefilled-registry"
    # --registry: the metadata the HF API reads (LFS hashes, card) is cached too, so it works offline.
    assert main(["mirror", str(torrent), "--repo", f"{REPO}@{model.revision}", "--cache", str(cache),
                 "--hf-endpoint", hub.endpoint, "--redirect-host", hub.cdn_endpoint[7:],
                 "--registry", str(registry)]) == 0
    metadata = MetaCache.for_registry(registry)
    assert metadata.load(REPO, model.revision).meta.commit == model.revision
    lfs, regular = "model.safetensors", "tokenizer/vocab.txt"
    with hf_gateway(model, hub, cache, metadata) as gw:
        store = gw.gateway.cache.store(model.served)
        on_disk = {p: store.path_of(model.served.files[p]) for p in (lfs, regular)}
        hub.reset_stats()
        for path in (lfs, regular):
            url = f"/{REPO}/resolve/{model.revision}/{path}"
            status, headers, body = fetch(gw, url)
            assert status == 200 and body == model.files[path]
            assert headers["ETag"] == f'"{expected_etag(hub, path)}"' and headers["X-Repo-Commit"] == model.revision
            assert headers["Accept-Ranges"] == "bytes" and int(headers["Content-Length"]) == len(body)
            status, headers, body = fetch(gw, url, headers={"Range": "bytes=100-199"})
            assert status == 206 and body == model.files[path][100:200]
        status, headers, _ = fetch(gw, f"/{REPO}/resolve/main/{lfs}", method="HEAD")
        assert status == 200 and headers["X-Linked-Size"] == str(len(model.files[lfs]))
        assert headers["X-Linked-Etag"] == headers["ETag"] == f'"{expected_etag(hub, lfs)}"'
        assert not hub.find_requests(), "a prefilled cache answers without the hub"

        # Bytes changed on disk behind the cache's back: fetched again and verified, never served.
        for path in (lfs, regular):
            _flip_byte(on_disk[path], 5_000 if path == lfs else 10)
            status, _, body = fetch(gw, f"/{REPO}/resolve/{model.revision}/{path}")
            assert status == 200 and body == model.files[path]
        with hub.offline():
            for path in (lfs, regular):
                _flip_byte(on_disk[path], 70_000 if path == lfs else 20)
                status, headers, body = fetch(gw, f"/{REPO}/resolve/{model.revision}/{path}")
                assert status == 502 and model.files[path] not in body


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def test_require_token_refuses_missing_and_unknown_tokens(hub, model, metadata, tmp_path):
    tokens_path = tmp_path / "tokens.txt"
    tokens_path.write_text("# team tokens\ntok-alpha\n\n")
    tokens = TokenFile(tokens_path, recheck=0)
    with hf_gateway(model, hub, tmp_path / "mirror", metadata, tokens) as gw:
        url = f"/{REPO}/resolve/main/config.json"
        status, headers, _ = fetch(gw, url)
        assert status == 401 and headers["X-Error-Code"] == "GatedRepo"
        assert fetch(gw, f"/api/models/{REPO}")[0] == 401
        assert fetch(gw, url, headers={"Authorization": "Bearer tok-wrong"})[0] == 401
        status, _, body = fetch(gw, url, headers={"Authorization": "Bearer tok-alpha"})
        assert status == 200 and body == model.files["config.json"]

        tokens_path.write_text("tok-beta\n")  # revoked and replaced without a restart
        assert fetch(gw, url, headers={"Authorization": "Bearer tok-alpha"})[0] == 401
        results = run_client(gw.url, tmp_path / "hf", ("download", REPO, "config.json", {}),
                             ("download", REPO, "config.json", {"token": "tok-nope"}),
                             ("download", REPO, "config.json", {"token": "tok-beta"}))
    assert "GatedRepoError" in results[0]["error"]
    assert "HfHubHTTPError" in results[1]["error"] and "401" in results[1]["message"]
    assert Path(results[2]["ok"]).read_bytes() == model.files["config.json"]


def test_tree_paths_pages_and_unknown_names(hub, model, metadata, tmp_path, monkeypatch):
    monkeypatch.setattr("modelreg.webseed.hfapi.PAGE", 2)
    with hf_gateway(model, hub, tmp_path / "mirror", metadata) as gw:
        status, headers, body = fetch(gw, f"/api/models/{REPO}/tree/main/nested%2Fdeep")
        assert status == 200 and [e["path"] for e in json.loads(body)] == ["nested/deep/weights.bin"]
        status, headers, body = fetch(gw, f"/api/models/{REPO}/tree/main?recursive=true")
        assert status == 200 and "Link" in headers and len(json.loads(body)) == 2
        status, headers, _ = fetch(gw, f"/api/models/{REPO}/tree/main/nope")
        assert status == 404 and headers["X-Error-Code"] == "EntryNotFound"
        for path in (f"/api/models/{REPO}/revision/..%2F..%2Fetc", f"/{REPO}/resolve/{'0' * 40}/config.json",
                     f"/api/models/{REPO}/revision/x%09Set-Cookie:%20a=b"):
            status, headers, _ = fetch(gw, path)
            assert status == 404 and headers["X-Error-Code"] == "RevisionNotFound" and "Set-Cookie" not in headers
        status, headers, _ = fetch(gw, f"/api/models/{REPO}/revision/x%0D%0ASet-Cookie:%20a=b")
        assert status == 404 and "Set-Cookie" not in headers
        status, headers, _ = fetch(gw, f"/{REPO}/resolve/main/../config.json")
        assert status == 404


def test_the_client_follows_paged_listings(hub, model, metadata, tmp_path, monkeypatch):
    monkeypatch.setattr("modelreg.webseed.hfapi.PAGE", 2)  # 4 files and 3 folders: 4 pages
    with hf_gateway(model, hub, tmp_path / "mirror", metadata) as gw:
        results = run_client(gw.url, tmp_path / "hf", ("files", REPO, {}))
        tree_pages = gw.gateway.metrics.hf_api_requests["api"]
    assert results[0]["ok"] == sorted(FILES) and tree_pages == 4


def test_webseed_command_serves_hf_urls_with_tokens(hub, model, metadata, tmp_path, capsys):
    registry = tmp_path / "registry"  # the metadata fixture filled registry/.metadata
    (registry / "TestOrg" / "Hf-Model").mkdir(parents=True)
    (registry / "TestOrg" / "Hf-Model" / "Hf-Model.torrent").write_bytes(model.torrent.raw)
    (registry / "TestOrg" / "Hf-Model" / "Hf-Model.json").write_text(
        json.dumps({"repo_id": REPO, "revision": model.revision}))
    tokens = tmp_path / "tokens"
    tokens.write_text("tok-cli\n")
    base = ["webseed", "--mode", "mirror", "--registry", str(registry), "--cache", str(tmp_path / "c")]
    assert main([*base, "--require-token"]) == 1
    assert "--tokens-file" in capsys.readouterr().err
    assert main([*base, "--require-token", "--tokens-file", str(tmp_path / "missing")]) == 1
    assert "missing" in capsys.readouterr().err
    args = [*base[1:], "--hf-endpoint", hub.endpoint, "--redirect-host", hub.cdn_endpoint[7:], "--access-log", "",
            "--require-token", "--tokens-file", str(tokens)]
    with GatewayProcess(args, cwd=tmp_path) as gw:
        auth = {"Authorization": "Bearer tok-cli"}
        status, _, body = fetch(gw.port, f"/api/models/{REPO}", headers=auth)
        assert status == 200 and json.loads(body)["cardData"]["license"] == "apache-2.0"
        status, headers, body = fetch(gw.port, f"/{REPO}/resolve/main/config.json", headers=auth)
        assert status == 200 and body == model.files["config.json"]
        assert fetch(gw.port, f"/{REPO}/resolve/main/config.json")[0] == 401
    assert gw.returncode == 0, gw.stderr
    err = gw.stderr
    assert "Hugging Face API" in err and "token required" in err


def test_without_cached_metadata_files_are_named_by_their_git_blob_ids(hub, model, tmp_path):
    with hf_gateway(model, hub, tmp_path / "mirror", None) as gw:
        status, _, body = fetch(gw, f"/api/models/{REPO}?blobs=true")
        info = json.loads(body)
        status_main, headers, data = fetch(gw, f"/{REPO}/resolve/main/model.safetensors")
    assert status == 200 and info["sha"] == model.revision and "cardData" in info
    assert {s["rfilename"]: (s["blobId"], "lfs" in s) for s in info["siblings"]} == {
        p: (hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest(), False) for p, data in model.files.items()}
    assert status_main == 200 and data == model.files["model.safetensors"]
    assert "X-Linked-Etag" not in headers and headers["ETag"].strip('"') == info["siblings"][1]["blobId"]


def test_token_file_is_reread_and_fails_closed(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("one\n# two\n  three  \n")
    tokens = TokenFile(path, recheck=0)
    assert tokens.accepts("one") and tokens.accepts("three")
    assert not tokens.accepts("# two") and not tokens.accepts("") and not tokens.accepts(None)
    path.unlink()
    assert not tokens.accepts("one") and "cannot read" in tokens.error
    path.write_text("four\n")
    assert tokens.accepts("four") and not tokens.accepts("one") and tokens.error is None
    with pytest.raises(ConfigError, match="missing"):
        TokenFile(tmp_path / "missing")


def test_a_crowd_asking_for_a_cold_file_costs_one_upstream_fetch(hub, model, metadata, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with hf_gateway(model, hub, tmp_path / "mirror", metadata) as gw:
        url = f"/{REPO}/resolve/main/tokenizer/vocab.txt"
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda i: fetch(gw, url, "HEAD" if i % 2 else "GET"), range(32)))
    assert {(status, headers["ETag"]) for status, headers, _ in answers} == {(200, f'"{expected_etag(hub, "tokenizer/vocab.txt")}"')}
    assert {body for _, _, body in answers} == {b"", model.files["tokenizer/vocab.txt"]}
    assert len(hub.find_requests(path=r"vocab\.txt")) == 1
