"""What a visitor gets from a model's page and record: downloads that start, one file at a time, honest
notes, the metadata people choose by, formats, and the same site from every copy of a registry."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from ltutil import make_torrent

from modelreg.config import Config
from modelreg.hf.metadata import ModelMeta, RepoFile
from modelreg.registry.catalog import Catalog, load_catalog
from modelreg.site import render_site
from modelreg.site.build import build_site
from modelreg.site.formats import detect_formats

REV = "0123456789abcdef0123456789abcdef01234567"
TRACKER = "udp://tracker.example.org:6969/announce"
FILES = {"Tiny/a.bin": b"a" * 20_000, "Tiny/sub/c.safetensors": b"c" * 30_000, "Tiny/d.json": b"{}" * 5}


def registry_with(tmp: Path, torrents: dict[str, dict[str, bytes]], **kw) -> Path:
    """A registry of libtorrent-made torrents, each with a sidecar pinning ``Org/<name>`` at REV."""
    reg = tmp / "registry"
    for name, files in torrents.items():
        path = reg / "Org" / name / f"{name}.torrent"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(undated(make_torrent(tmp / "src" / name, files, **kw)))
        path.with_suffix(".json").write_text(json.dumps({"repo_id": f"Org/{name}", "revision": REV}))
    return reg


def undated(data: bytes) -> bytes:
    """The torrent without libtorrent's 'creation date', like the public registry's torrents."""
    import libtorrent as lt

    top = lt.bdecode(data)
    top.pop(b"creation date", None)
    return lt.bencode(top)


def render(tmp: Path, models, **config) -> Path:
    out = tmp / "site"
    out.mkdir()
    render_site(Catalog(list(models), []), Config(**config), out)
    return out


def page(out: Path, repo_id: str) -> str:
    return (out / "models" / repo_id / "index.html").read_text()


def detail(out: Path, repo_id: str) -> dict:
    return json.loads((out / "api" / "models" / f"{repo_id}.json").read_text())


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


@pytest.fixture
def tiny(tmp_path):
    return load_catalog(registry_with(tmp_path, {"Tiny": FILES})).models[0]


def test_the_torrent_is_the_primary_download_and_the_magnet_says_it_needs_peers(tmp_path, tiny):
    out = render(tmp_path, [tiny], site_url="https://models.example.org", trackers=(TRACKER,))
    html = page(out, "Org/Tiny")
    assert re.search(r'<a class="btn primary" id="torrent" href="[^"]*Tiny\.torrent" download>', html)
    assert 'class="btn primary" id="magnet"' not in html
    words = text_of(html)
    assert "works even with no other peer" not in words
    assert "A magnet link needs another peer online first" in words
    record = detail(out, "Org/Tiny")
    url = "https://models.example.org/models/Org/Tiny/Tiny.torrent"
    assert record["torrent_url"] == url
    query = parse_qs(urlsplit(record["magnet"]).query)
    assert query["xs"] == [url] and TRACKER in query["tr"]
    # Every client snippet names the .torrent (its URL here), none the magnet.
    snippets = re.findall(r'<div class="snippet"><pre><code>(.*?)</code>', html, re.S)
    assert len(snippets) >= 4 and all(url in s for s in snippets) and not any("magnet:" in s for s in snippets)
    # The index row: .torrent first and primary, the magnet second.
    index = (out / "index.html").read_text()
    row = re.search(r'<div class="r-act">(.*?)</div>', index).group(1)
    assert row.index('class="btn primary" href="models/Org/Tiny/Tiny.torrent"') < row.index('href="magnet:')


def test_without_site_url_the_magnet_has_no_source_and_snippets_name_the_file(tmp_path, tiny):
    out = render(tmp_path, [tiny])
    record = detail(out, "Org/Tiny")
    assert record["torrent_url"] is None and "xs=" not in record["magnet"]
    html = page(out, "Org/Tiny")
    assert "aria2c --seed-time=0 Tiny.torrent" in html and "in the current folder" in html


def test_per_file_select_indexes_are_aria2cs_own(tmp_path, tiny):
    """aria2c is the oracle: its --show-files numbers every file of the v1 list, pad files included."""
    if shutil.which("aria2c") is None:
        pytest.skip("aria2c is not installed")
    shown = subprocess.run(["aria2c", "--show-files", str(tiny.torrent_path)], capture_output=True, text=True,
                           check=True).stdout
    aria = {m[2]: int(m[1]) for m in re.finditer(r"^\s*(\d+)\|\./Tiny/(.*)$", shown, re.M)}
    assert any(".pad/" in p for p in aria), "libtorrent's hybrid torrent has pad files"
    out = render(tmp_path, [tiny])
    files = detail(out, "Org/Tiny")["files"]
    assert {f["path"]: f["select_file"] for f in files} == {p: n for p, n in aria.items() if ".pad/" not in p}
    html = page(out, "Org/Tiny")
    for f in files:
        assert f"aria2c --seed-time=0 --select-file={f['select_file']} Tiny.torrent" in html
        assert f["url"] == f"https://huggingface.co/Org/Tiny/resolve/{REV}/{f['path']}"
        assert f'href="{f["url"]}"' in html


def test_v2_only_torrents_offer_no_aria2c_file_selection(tmp_path):
    model = load_catalog(registry_with(tmp_path, {"Tiny": FILES}, mode="v2")).models[0]
    out = render(tmp_path, [model])
    assert {f["select_file"] for f in detail(out, "Org/Tiny")["files"]} == {None}
    assert "--select-file" not in page(out, "Org/Tiny")


def test_sha256_and_metadata_people_choose_by_are_shown(tmp_path, tiny):
    meta = ModelMeta(
        repo_id="Org/Tiny", revision=REV, commit=REV, license="mit", library_name="mlx", base_model=("Base/Big",),
        downloads=12_345, likes=67, trending_score=8.5, gated="manual",
        files=(RepoFile("a.bin", 20_000, "ab" * 32), RepoFile("sub/c.safetensors", 30_000, "cd" * 32),
               RepoFile("d.json", 10, None)),
    )
    out = render(tmp_path, [dataclasses.replace(tiny, meta=meta)])
    record = detail(out, "Org/Tiny")
    assert {k: record[k] for k in ("library", "base_model", "downloads", "likes", "trending_score", "gated")} == {
        "library": "mlx", "base_model": ["Base/Big"], "downloads": 12_345, "likes": 67, "trending_score": 8.5,
        "gated": "manual"}
    assert {f["path"]: f["sha256"] for f in record["files"]} == {
        "a.bin": "ab" * 32, "sub/c.safetensors": "cd" * 32, "d.json": None}
    assert "MLX" in record["formats"]
    html = page(out, "Org/Tiny")
    words = text_of(html)
    for shown in ("ab" * 32, "cd" * 32, "Library mlx", "Base/Big", "12,345", "Likes 67", "Trending score 8.5"):
        assert shown in words, shown
    assert 'id="gated"' in html and "gated on Hugging Face" in words
    index = (out / "index.html").read_text()
    assert '<span class="chip warn"' in index and ">gated</span>" in index


def test_pages_tell_visitors_what_affects_them_not_what_operators_should_run(tmp_path, tiny):
    stale = ModelMeta(repo_id="Org/Tiny", commit=REV, files=(RepoFile("a.bin", 1, None),))
    models = [dataclasses.replace(tiny, meta=stale, problems=(
        "no Hugging Face metadata cached: run 'modelreg refresh' (or build --refresh-metadata)",))]
    out = render(tmp_path, models)
    words = text_of(page(out, "Org/Tiny"))
    assert "modelreg refresh" not in words and "--refresh-metadata" not in words
    assert "The file list differs from Hugging Face at this revision" in words
    assert detail(out, "Org/Tiny")["problems"] == list(models[0].problems)  # operators still get them


def test_a_single_file_torrent_has_no_folder_named_after_its_file(tmp_path):
    model = load_catalog(registry_with(tmp_path, {"One": {"w.gguf": b"g" * 5000}})).models[0]
    assert model.torrent.single_file
    html = page(render(tmp_path, [model]), "Org/One")
    files = html[html.index('id="files"'):html.index('id="h-card"')]
    assert "w.gguf/" not in files and "root-name" not in files
    assert "1 files" not in html and "1 file ·" in text_of(html)


@pytest.mark.parametrize("paths, tags, names, want", [
    (["model.safetensors", "config.json"], ["mlx"], [], "MLX"),
    (["model.safetensors"], [], ["mlx-community/Qwen3-8B-4bit"], "MLX"),
    (["q.gguf"], [], [], "GGUF"),
    (["model.safetensors"], [], ["Org/Qwen3-8B-AWQ"], "AWQ"),
    (["model.safetensors", "quantize_config.json"], [], ["Org/x"], "GPTQ"),
    (["model.safetensors"], ["gptq", "4-bit"], [], "GPTQ"),
    (["output.safetensors", "measurement.json"], [], ["Org/x"], "EXL2"),
    (["model.safetensors"], [], ["Org/Llama-3-8B-exl2"], "EXL2"),
    (["onnx/model.onnx"], [], [], "ONNX"),
    (["Model.mlpackage/Data/weights/weight.bin"], [], [], "Core ML"),
    (["model.safetensors"], [], ["Org/Qwen3-32B-FP8"], "FP8"),
    (["model-fp8.safetensors"], [], [], "FP8"),
])
def test_formats_from_tags_names_and_layout(paths, tags, names, want):
    assert want in detect_formats(paths, tags, names)


def test_formats_are_not_guessed_from_substrings():
    assert detect_formats(["model.safetensors"], [], ["Org/squawk-7b", "Org/dawkins"]) == ["safetensors"]


def test_api_page_example_shows_the_magnet_without_json_escapes(tmp_path, tiny):
    api = (render(tmp_path, [tiny], trackers=(TRACKER,)) / "api" / "index.html").read_text()
    example = api[api.index("Example record"):]
    assert "\\u0026" not in example and "&amp;dn=Tiny" in example


def _git(cwd: Path, *args: str, when: str | None = None) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org")
    if when:
        env.update(GIT_AUTHOR_DATE=when, GIT_COMMITTER_DATE=when)
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_copies_of_one_registry_made_at_different_times_build_the_same_site(tmp_path):
    """Dates: HF's, else the torrent's creation date, else the registry's git history, else unknown."""
    origin = tmp_path / "origin"
    reg = registry_with(origin, {"Old": {"Old/w.bin": b"o" * 3000}, "New": {"New/w.bin": b"n" * 3000}})
    _git(origin, "init", "-q")
    _git(origin, "add", "registry/Org/Old")
    _git(origin, "commit", "-qm", "old", when="2024-01-02T03:04:05Z")
    _git(origin, "add", "registry")
    _git(origin, "commit", "-qm", "new", when="2025-06-07T08:09:10Z")
    sites = []
    for n, stamp in enumerate((1_000_000_000, 1_700_000_000)):
        copy = tmp_path / f"copy{n}"
        _git(tmp_path, "clone", "-q", str(origin), str(copy))
        for path in (copy / "registry").rglob("*"):
            os.utime(path, (stamp, stamp))  # copied at different times
        out = copy / "site"
        build_site(Config(root=copy).replace(registry="registry", out=str(out)), incremental=False)
        sites.append(out)
    first, second = ({p.relative_to(s).as_posix(): p.read_bytes() for p in s.rglob("*") if p.is_file()}
                     for s in sites)
    assert first == second
    records = {r["id"]: r for r in json.loads(first["api/models.json"])}
    assert records["Org/Old"]["last_modified"] == "2024-01-02T03:04:05Z"
    assert records["Org/New"]["last_modified"] == "2025-06-07T08:09:10Z"
    # Not a git checkout, no creation date, no metadata: unknown, and last in the feed.
    plain = tmp_path / "plain"
    shutil.copytree(reg, plain / "registry")
    out = plain / "site"
    build_site(Config(root=plain).replace(registry="registry", out=str(out)), incremental=False)
    records = json.loads((out / "api" / "models.json").read_text())
    assert [r["last_modified"] for r in records] == [None, None]
    assert "date unknown" in (out / "index.html").read_text()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_dates_from_git_history_one_log_for_all_files_and_none_from_a_shallow_clones_boundary(tmp_path):
    from modelreg.registry import history

    origin = tmp_path / "origin"
    (origin / "a").mkdir(parents=True)
    (origin / "a" / "old.torrent").write_bytes(b"1")
    (origin / "2024").write_bytes(b"a file named like a timestamp")
    _git(origin, "init", "-q")
    _git(origin, "add", ".")
    _git(origin, "commit", "-qm", "one", when="2024-01-02T03:04:05Z")
    (origin / "a" / "new name.torrent").write_bytes(b"2")
    _git(origin, "add", ".")
    _git(origin, "commit", "-qm", "two", when="2025-06-07T08:09:10Z")
    one, two = 1704164645, 1749283750
    assert history.commit_dates(origin) == {"a/old.torrent": one, "2024": one, "a/new name.torrent": two}
    assert history.commit_dates(origin / "a") == {"old.torrent": one, "new name.torrent": two}
    assert history.commit_dates(tmp_path) == {}  # not a git checkout

    calls = []
    real_run = subprocess.run
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(history.subprocess, "run", lambda argv, **kw: calls.append(argv) or real_run(argv, **kw))
        history.commit_dates(origin)
    assert [argv[3] for argv in calls].count("log") == 1

    shallow = tmp_path / "shallow"
    _git(tmp_path, "clone", "-q", "--depth", "1", origin.as_uri(), str(shallow))
    # The only commit fetched shows every file as added: that is no date of change.
    assert history.commit_dates(shallow) == {}
