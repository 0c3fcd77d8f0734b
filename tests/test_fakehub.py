"""The fake hub speaks HF well enough for the real huggingface_hub, and its faults behave as documented."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx2
import pytest
from fakehub import DEFAULT_GITATTRIBUTES, FakeHub, Generated, fake_hub, is_lfs_path
from huggingface_hub import HfApi, get_hf_file_metadata, hf_hub_download, hf_hub_url, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    GatedRepoError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

WEIGHTS = Generated(3 * 1024 * 1024 + 17, seed=11)
CONFIG = b'{"architectures": ["LlamaForCausalLM"], "hidden_size": 64}\n'


@pytest.fixture
def hub():
    yield from fake_hub()


@pytest.fixture
def model(hub):
    return hub.add_repo(
        "TinyOrg/Tiny-Model",
        {
            "config.json": CONFIG,
            "model.safetensors": WEIGHTS,
            "tokenizer/vocab.txt": b"a\nb\nc\n",
            "tokenizer/extra/merges.txt": b"a b\n",
        },
        license="apache-2.0",
        pipeline_tag="text-generation",
        library_name="transformers",
        tags=["llama"],
        downloads=1234,
        likes=56,
        trending_score=78,
        safetensors={"BF16": 1000, "F32": 24},
        gguf=None,
        base_model="Base/Model",
        created_at="2024-03-04T05:06:07.000Z",
        card="# Tiny model\n",
    )


def api(hub: FakeHub) -> HfApi:
    return HfApi(endpoint=hub.endpoint, token=False)


def raw(url: str, *, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One plain HTTP request: (status, headers, body) without following redirects."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.request(method, u.path + (f"?{u.query}" if u.query else ""), headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------- huggingface_hub


def test_model_info_with_files_metadata(hub, model):
    info = api(hub).model_info("TinyOrg/Tiny-Model", revision=model.sha, files_metadata=True)
    assert info.id == "TinyOrg/Tiny-Model" and info.author == "TinyOrg" and info.sha == model.sha
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == {"config.json", "model.safetensors", "tokenizer/vocab.txt",
                             "tokenizer/extra/merges.txt", "README.md"}
    assert siblings["config.json"].size == len(CONFIG)
    assert siblings["config.json"].blob_id == hashlib.sha1(b"blob %d\0" % len(CONFIG) + CONFIG).hexdigest()
    assert siblings["config.json"].lfs is None
    weights = siblings["model.safetensors"]
    assert weights.size == WEIGHTS.size
    assert weights.lfs.sha256 == WEIGHTS.sha256() == hashlib.sha256(WEIGHTS.read()).hexdigest()
    assert weights.lfs.size == WEIGHTS.size and weights.lfs.pointer_size > 100
    assert info.safetensors.parameters == {"BF16": 1000, "F32": 24} and info.safetensors.total == 1024
    assert (info.downloads, info.likes, info.trending_score) == (1234, 56, 78)
    assert (info.pipeline_tag, info.library_name, info.gated, info.private) == (
        "text-generation", "transformers", False, False)
    assert info.card_data.license == "apache-2.0" and info.card_data.base_model == "Base/Model"
    assert {"llama", "transformers", "safetensors", "license:apache-2.0", "base_model:Base/Model"} <= set(info.tags)
    assert info.created_at.isoformat() == "2024-03-04T05:06:07+00:00"
    assert info.used_storage == sum(s.size for s in info.siblings)
    readme = model.entry("README.md").read().decode()
    assert readme.startswith("---\n") and "license: apache-2.0" in readme and readme.endswith("# Tiny model\n")


def test_revisions_stay_served_after_the_repo_changes(hub, model, tmp_path):
    old = model.sha
    new = model.commit({"config.json": b"{}", "tokenizer/vocab.txt": None}, message="Change config")
    assert new != old and model.sha == new and len(new) == 40
    client = api(hub)
    assert client.model_info("TinyOrg/Tiny-Model").sha == new
    old_names = {s.rfilename for s in client.model_info("TinyOrg/Tiny-Model", revision=old).siblings}
    new_names = {s.rfilename for s in client.model_info("TinyOrg/Tiny-Model", revision=new).siblings}
    assert old_names - new_names == {"tokenizer/vocab.txt"}
    path = hf_hub_download("TinyOrg/Tiny-Model", "config.json", revision=old, cache_dir=tmp_path,
                           endpoint=hub.endpoint, token=False)
    assert Path(path).read_bytes() == CONFIG
    commits = client.list_repo_commits("TinyOrg/Tiny-Model")
    assert [c.commit_id for c in commits] == [new, old] and commits[0].title == "Change config"
    assert client.list_repo_refs("TinyOrg/Tiny-Model").branches[0].target_commit == new
    dev = model.commit({"extra.txt": b"x"}, branch="dev")
    model.tag("v1", old)
    assert client.model_info("TinyOrg/Tiny-Model", revision="dev").sha == dev
    assert {s.rfilename for s in client.model_info("TinyOrg/Tiny-Model", revision="dev").siblings} == (
        new_names | {"extra.txt"})
    assert client.model_info("TinyOrg/Tiny-Model", revision="v1").sha == old and model.sha == new


def test_list_repo_tree_paginates_like_hf(model):
    hub = FakeHub(tree_page_size=2)
    with hub:
        hub.add_repo(model.repo_id, {p: e.content for p, e in model.files.items()})
        entries = list(api(hub).list_repo_tree(model.repo_id, recursive=True))
        pages = hub.find_requests(path=r"/tree/")
        top = [e.path for e in api(hub).list_repo_tree(model.repo_id)]
        sub = [e.path for e in api(hub).list_repo_tree(model.repo_id, path_in_repo="tokenizer")]
        expanded = list(api(hub).list_repo_tree(model.repo_id, path_in_repo="tokenizer", expand=True))
    files = {e.path: e for e in entries if hasattr(e, "size")}
    folders = {e.path for e in entries if not hasattr(e, "size")}
    assert set(files) == set(model.files) and folders == {"tokenizer", "tokenizer/extra"}
    assert files["model.safetensors"].lfs.sha256 == WEIGHTS.sha256()
    assert files["config.json"].size == len(CONFIG)
    assert len(pages) == 4 and all("cursor=" in r.query for r in pages[1:])  # 7 entries, 2 per page
    assert top == ["README.md", "config.json", "model.safetensors", "tokenizer"]
    assert sub == ["tokenizer/extra", "tokenizer/vocab.txt"]
    assert expanded[1].last_commit.oid == model.sha and expanded[1].security.safe


def test_hf_hub_download_regular_and_lfs(hub, model, tmp_path):
    kwargs = {"cache_dir": tmp_path, "endpoint": hub.endpoint, "token": False}
    config = hf_hub_download("TinyOrg/Tiny-Model", "config.json", **kwargs)
    weights = hf_hub_download("TinyOrg/Tiny-Model", "model.safetensors", revision=model.sha, **kwargs)
    assert Path(config).read_bytes() == CONFIG
    assert hashlib.sha256(Path(weights).read_bytes()).hexdigest() == WEIGHTS.sha256()
    cdn = hub.find_requests(origin="cdn")
    assert len(cdn) == 1 and cdn[0].status == 200 and cdn[0].bytes_sent == WEIGHTS.size
    assert not cdn[0].authorization


def test_file_metadata_of_an_lfs_file_points_at_the_signed_cdn(hub, model):
    meta = get_hf_file_metadata(hf_hub_url("TinyOrg/Tiny-Model", "model.safetensors", endpoint=hub.endpoint),
                                token=False)
    assert meta.size == WEIGHTS.size and meta.etag == WEIGHTS.sha256() and meta.commit_hash == model.sha
    assert meta.location.startswith(f"{hub.cdn_endpoint}/repos/") and "Signature=" in meta.location
    regular = get_hf_file_metadata(hub.url("TinyOrg/Tiny-Model", "config.json"), token=False)
    assert regular.location == hub.url("TinyOrg/Tiny-Model", "config.json")
    assert regular.etag == model.entry("config.json").blob_id() and regular.size == len(CONFIG)


def test_gated_repo_needs_an_accepted_token(hub, tmp_path):
    hub.tokens.add("hf_good")
    hub.add_repo("Meta/Gated", {"model.bin": Generated(1000, seed=2)}, gated="manual")
    assert api(hub).model_info("Meta/Gated").gated == "manual"  # metadata stays public, like HF
    kwargs = {"cache_dir": tmp_path, "endpoint": hub.endpoint}
    with pytest.raises(GatedRepoError):
        hf_hub_download("Meta/Gated", "model.bin", token=False, **kwargs)
    with pytest.raises(GatedRepoError):
        hf_hub_download("Meta/Gated", "model.bin", token="hf_wrong", **kwargs)
    status, headers, body = raw(hub.url("Meta/Gated", "model.bin"))
    assert status == 401 and headers["X-Error-Code"] == "GatedRepo"
    assert "restricted" in json.loads(body)["error"]
    path = hf_hub_download("Meta/Gated", "model.bin", token="hf_good", **kwargs)
    assert Path(path).read_bytes() == Generated(1000, seed=2).read()
    hub_side = hub.find_requests(origin="hub", path="resolve")[-1]
    assert hub_side.authorization and hub_side.status == 302
    assert not hub.find_requests(origin="cdn")[-1].authorization  # the token never leaves the hub


def test_missing_repo_revision_and_entry_raise_hf_errors(hub, model, tmp_path):
    client = api(hub)
    kwargs = {"cache_dir": tmp_path, "endpoint": hub.endpoint, "token": False}
    with pytest.raises(RepositoryNotFoundError):
        client.model_info("TinyOrg/Nope")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("TinyOrg/Nope", "config.json", **kwargs)
    with pytest.raises(RevisionNotFoundError):
        client.model_info("TinyOrg/Tiny-Model", revision="0" * 40)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("TinyOrg/Tiny-Model", "config.json", revision="no-such-brânch", **kwargs)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("TinyOrg/Tiny-Model", "missing.bin", **kwargs)
    hub.add_repo("TinyOrg/Private", {"a.txt": b"a"}, private=True)
    with pytest.raises(RepositoryNotFoundError):
        client.model_info("TinyOrg/Private")
    hub.tokens.add("hf_owner")
    assert HfApi(endpoint=hub.endpoint, token="hf_owner").model_info("TinyOrg/Private").private is True


def test_list_models_sorts_by_trending_and_filters(hub):
    for i, score in enumerate([5, 50, 20]):
        hub.add_repo(f"Org{i % 2}/m{i}", {"a.txt": b"x"}, trending_score=score, pipeline_tag="text-generation")
    hub.add_repo("Org0/hidden", {"a.txt": b"x"}, private=True, trending_score=99)
    client = api(hub)
    assert [m.id for m in client.list_models(sort="trending_score", limit=2)] == ["Org1/m1", "Org0/m2"]
    assert [m.id for m in client.list_models(author="Org0", sort="trending_score")] == ["Org0/m2", "Org0/m0"]
    assert [m.id for m in client.list_models(search="m1")] == ["Org1/m1"]
    assert next(iter(client.list_models(search="m0"))).trending_score == 5
    hub.list_page_size = 2
    hub.reset_stats()
    assert [m.id for m in client.list_models(sort="trending_score")] == ["Org1/m1", "Org0/m2", "Org0/m0"]
    assert len(hub.find_requests(path="^/api/models$")) == 2  # followed the Link header


def test_snapshot_download_and_expand(hub, model, tmp_path):
    folder = Path(snapshot_download(model.repo_id, cache_dir=tmp_path, endpoint=hub.endpoint, token=False))
    assert {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()} == set(model.files)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS.read()
    info = api(hub).model_info(model.repo_id, expand=["downloads", "likes"])
    assert (info.downloads, info.likes, info.sha, info.siblings) == (1234, 56, None, None)


def test_paths_info(hub, model):
    infos = api(hub).get_paths_info(model.repo_id, ["config.json", "tokenizer", "absent"])
    assert [i.path for i in infos] == ["config.json", "tokenizer"] and infos[0].size == len(CONFIG)


def test_subprocess_uses_hf_endpoint(hub, model, tmp_path):
    code = (
        "import huggingface_hub as h; print(h.model_info('TinyOrg/Tiny-Model').sha);"
        "print(open(h.hf_hub_download('TinyOrg/Tiny-Model', 'config.json')).read())"
    )
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **hub.env(tmp_path)},
                         capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.splitlines()[0] == model.sha
    assert out.stdout.split("\n", 1)[1] == CONFIG.decode() + "\n"
    assert list(tmp_path.glob("models--TinyOrg--Tiny-Model/snapshots/*/config.json"))


# ------------------------------------------------------------------------------------------- raw HTTP


def test_ranges_on_hub_and_cdn(hub, model):
    small = hub.url(model.repo_id, "config.json")
    status, headers, body = raw(small, headers={"Range": "bytes=2-9"})
    assert (status, body, headers["Content-Range"]) == (206, CONFIG[2:10], f"bytes 2-9/{len(CONFIG)}")
    status, headers, _ = raw(small, headers={"Range": f"bytes={len(CONFIG)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(CONFIG)}"
    status, headers, body = raw(small, method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) == len(CONFIG)
    assert headers["Accept-Ranges"] == "bytes" and headers["X-Repo-Commit"] == model.sha

    status, _, pointer = raw(f"{hub.endpoint}/{model.repo_id}/raw/main/model.safetensors")
    assert status == 200 and pointer == model.entry("model.safetensors").pointer()
    assert f"oid sha256:{WEIGHTS.sha256()}".encode() in pointer
    status, headers, _ = raw(hub.url(model.repo_id, "model.safetensors"))
    assert status == 302 and headers["X-Linked-Size"] == str(WEIGHTS.size)
    assert headers["X-Linked-Etag"] == f'"{WEIGHTS.sha256()}"' and "ETag" in headers
    cdn = headers["Location"]
    status, headers, body = raw(cdn, headers={"Range": "bytes=1048570-1048600"})
    assert status == 206 and body == WEIGHTS.read(1048570, 31) and headers["ETag"] == f'"{WEIGHTS.sha256()}"'
    status, _, body = raw(cdn, headers={"Range": "bytes=-5"})
    assert status == 206 and body == WEIGHTS.read(WEIGHTS.size - 5)
    status, headers, _ = raw(cdn, headers={"Range": f"bytes={WEIGHTS.size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{WEIGHTS.size}"
    status, headers, _ = raw(cdn, method="HEAD")
    assert status == 200 and int(headers["Content-Length"]) == WEIGHTS.size


def test_cdn_rejects_expired_and_forged_signatures(hub, model):
    expired = hub.cdn_url(model.repo_id, "model.safetensors", expires_in=-5)
    status, _, body = raw(expired)
    assert status == 403 and b"expired" in body
    forged = hub.cdn_url(model.repo_id, "model.safetensors").replace("Signature=", "Signature=0")
    assert raw(forged)[0] == 403
    assert raw(hub.cdn_url(model.repo_id, "model.safetensors"), method="HEAD")[0] == 200


def test_injected_429_with_retry_after_then_recovery(hub, model):
    fault = hub.inject("api", 429, retry_after=3, path=r"/api/models/TinyOrg/")
    url = f"{hub.endpoint}/api/models/{model.repo_id}"
    status, headers, _ = raw(url)
    assert status == 429 and headers["Retry-After"] == "3"
    assert raw(url)[0] == 200 and fault.hits == 1
    assert raw(hub.url(model.repo_id, "config.json"))[0] == 200  # other kinds are not affected


def test_huggingface_hub_retries_injected_server_errors(hub, model):
    hub.inject("api", 503, path="/tree/", times=1)
    entries = list(api(hub).list_repo_tree(model.repo_id, recursive=True))
    assert len([e for e in entries if hasattr(e, "size")]) == len(model.files)
    assert [r.status for r in hub.find_requests(path="/tree/")] == [503, 200]


def test_drop_after_cuts_the_body_and_a_range_resumes_it(hub, model):
    cdn = hub.cdn_url(model.repo_id, "model.safetensors")
    hub.inject("cdn", drop_after=100_000)
    u = urlsplit(cdn)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", f"{u.path}?{u.query}")
    resp = conn.getresponse()
    with pytest.raises(http.client.IncompleteRead) as cut:
        resp.read()
    conn.close()
    got = cut.value.partial
    assert len(got) == 100_000
    status, _, rest = raw(cdn, headers={"Range": f"bytes={len(got)}-"})
    assert status == 206 and hashlib.sha256(got + rest).hexdigest() == WEIGHTS.sha256()


def test_hf_hub_download_resumes_after_a_dropped_connection(hub, tmp_path):
    big = Generated(25 * 1024 * 1024, seed=4)
    hub.add_repo("Org/Big", {"model.safetensors": big})
    hub.inject("cdn", drop_after=12 * 1024 * 1024)
    path = hf_hub_download("Org/Big", "model.safetensors", cache_dir=tmp_path, endpoint=hub.endpoint, token=False)
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == big.sha256()
    # huggingface_hub writes 10 MiB chunks, so it resumes from the last whole chunk it received
    assert [r.range for r in hub.find_requests(origin="cdn")] == [None, f"bytes={10 * 1024 * 1024}-"]


def test_corrupt_flips_exactly_one_byte(hub, model):
    hub.inject("cdn", corrupt=True)
    cdn = hub.cdn_url(model.repo_id, "model.safetensors")
    status, _, body = raw(cdn, headers={"Range": "bytes=0-999"})
    good = WEIGHTS.read(0, 1000)
    assert status == 206 and len(body) == 1000
    assert [i for i in range(1000) if body[i] != good[i]] == [500]
    assert raw(cdn, headers={"Range": "bytes=0-999"})[2] == good


def test_libtorrent_web_seeds_from_the_hub_through_the_cdn(hub, model, tmp_path):
    import libtorrent as lt
    from ltutil import make_torrent

    data = make_torrent(tmp_path / "src", {"model.safetensors": WEIGHTS.read()}, piece_length=262144,
                        webseeds=(hub.url(model.repo_id, "model.safetensors", model.sha),))
    # the CDN is on loopback and its URLs carry a query: libtorrent's SSRF guard would refuse the redirect
    session = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                          "enable_upnp": False, "enable_natpmp": False, "ssrf_mitigation": False})
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(data)
    params.save_path = str(tmp_path / "dst")
    handle = session.add_torrent(params)
    deadline = time.monotonic() + 30
    while not handle.status().is_seeding and time.monotonic() < deadline:
        time.sleep(0.05)
    assert handle.status().is_seeding
    session.remove_torrent(handle)
    del session
    assert (tmp_path / "dst" / "model.safetensors").read_bytes() == WEIGHTS.read()
    assert [r.status for r in hub.find_requests(origin="hub")] == [302]
    assert sum(r.bytes_sent for r in hub.find_requests(origin="cdn")) == WEIGHTS.size


def test_delay_and_in_flight_peak(hub, model):
    hub.inject("api", delay=0.3, times=6)
    url = f"{hub.endpoint}/api/models/{model.repo_id}"
    results = []
    threads = [threading.Thread(target=lambda: results.append(raw(url)[0])) for _ in range(6)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [200] * 6 and time.monotonic() - start >= 0.3
    assert hub.max_in_flight["hub"] == 6
    hub.reset_stats()
    assert hub.requests == [] and hub.max_in_flight == {"hub": 0, "cdn": 0}


def test_rate_limits_the_body_and_many_connections_are_served(hub, model):
    hub.inject("cdn", rate=1_000_000)
    cdn = hub.cdn_url(model.repo_id, "model.safetensors")
    start = time.monotonic()
    status, _, body = raw(cdn, headers={"Range": "bytes=0-299999"})
    assert status == 206 and body == WEIGHTS.read(0, 300_000) and time.monotonic() - start >= 0.25
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(raw(cdn, headers={"Range": f"bytes={i}-{i}"})))
               for i in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r[2] for r in results) == sorted(WEIGHTS.read(i, 1) for i in range(64))


def test_stop_cuts_a_stalled_download(model):
    hub = FakeHub().start()
    hub.add_repo(model.repo_id, {"model.safetensors": Generated(200_000_000, seed=9)})
    u = urlsplit(hub.cdn_url(model.repo_id, "model.safetensors"))
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    conn.request("GET", f"{u.path}?{u.query}")
    resp = conn.getresponse()
    assert len(resp.read(1000)) == 1000  # then stop reading: the server blocks in sendall
    start = time.monotonic()
    hub.stop()
    assert time.monotonic() - start < 2
    conn.close()


def test_offline_refuses_connections_until_online(hub, model):
    url = f"{hub.endpoint}/api/models/{model.repo_id}"
    u = urlsplit(url)
    keepalive = http.client.HTTPConnection(u.hostname, u.port, timeout=5)
    keepalive.request("GET", u.path)
    assert keepalive.getresponse().read()
    with hub.offline():
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((u.hostname, u.port), timeout=2)
        with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):  # open connections are cut
            keepalive.request("GET", u.path)
            keepalive.getresponse().read()
        keepalive.close()
        with pytest.raises(httpx2.ConnectError):
            api(hub).model_info(model.repo_id)
    assert raw(url)[0] == 200 and hub.endpoint == f"http://127.0.0.1:{u.port}"


def test_many_hubs_shut_down_cleanly():
    before = {t.ident for t in threading.enumerate()}
    ports = []
    for i in range(10):
        with FakeHub() as hub:
            hub.add_repo("A/b", {"x.bin": Generated(5_000_000, seed=i)})
            u = urlsplit(hub.cdn_url("A/b", "x.bin"))
            idle = http.client.HTTPConnection(u.hostname, u.port, timeout=5)  # left open across stop()
            idle.request("GET", f"{u.path}?{u.query}", headers={"Range": "bytes=0-9"})
            assert idle.getresponse().read() == Generated(5_000_000, seed=i).read(0, 10)
            ports.append(u.port)
        idle.close()
    leftover = [t for t in threading.enumerate() if t.ident not in before and t.name.startswith(("fakehub", "Thread"))]
    assert leftover == []
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2)


# ------------------------------------------------------------------------------------------- content model


def test_generated_content_is_deterministic_and_sliceable():
    g = Generated(3_000_000, seed=5)
    whole = g.read()
    assert len(whole) == g.size and whole == Generated(3_000_000, seed=5).read()
    assert whole != Generated(3_000_000, seed=6).read()
    assert g.read(1_048_570, 10) == whole[1_048_570:1_048_580]
    assert g.read(2_999_995, 100) == whole[-5:]
    assert b"".join(g.chunks(10, 2_500_000, chunk=4096)) == whole[10:2_500_000]
    assert g.sha256() == hashlib.sha256(whole).hexdigest()
    assert g.git_sha1() == hashlib.sha1(b"blob 3000000\0" + whole).hexdigest()


def test_lfs_rule_follows_hf_defaults(hub):
    assert is_lfs_path("model.safetensors", 10) and is_lfs_path("x/model.gguf", 10)
    assert is_lfs_path("pytorch_model.bin", 10) and is_lfs_path("saved_model/a/b.pb", 10)
    assert not is_lfs_path("config.json", 10) and is_lfs_path("tokenizer.json", 11 * 1024 * 1024)
    repo = hub.add_repo("A/b", {"big.json": b"{}", "w.bin": b"1"}, lfs={"big.json"}, gitattributes=True)
    assert repo.files["big.json"].lfs and not repo.files["w.bin"].lfs
    assert repo.files[".gitattributes"].read() == DEFAULT_GITATTRIBUTES
    assert b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n" in DEFAULT_GITATTRIBUTES
