"""Hostile registries: metadata caches, sidecars, torrents and folders made to break the build (issue 15, 1-6).

Each bad file must become a problem of its own model (or a skipped entry naming the file), never a
traceback, a hang, a read outside the registry or an exhausted memory.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hostile import PYTHON, REV, add_model, build, good_meta, meta_file, subprocess_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelreg.errors import CatalogError, FileProblem, MetadataCacheError
from modelreg.hf.metadata import ModelMeta
from modelreg.registry.catalog import COMMIT, REPO_ID, find_torrents, is_revision, load_catalog, repo_from_webseeds
from modelreg.registry.metacache import MetaCache

REPO = "Org/Model"


def _one_model(tmp_path: Path, meta: object, **top: object) -> tuple[Path, Path]:
    registry = tmp_path / "registry"
    add_model(registry, REPO, sidecar={"repo_id": REPO, "revision": REV}, **top)
    path = meta_file(registry, REPO)
    path.write_text(meta if isinstance(meta, str) else json.dumps(meta))
    return registry, path


def _with(change) -> object:
    data = good_meta(REPO)
    result = change(data)
    return data if result is None else result


# The shapes the review found crashing the build (16 of 30), and a few more of the same kind.
BAD_META = {
    "license 123": (lambda d: d["meta"].update(license=123), "meta.license"),
    "integer pipeline_tag": (lambda d: d["meta"].update(pipeline_tag=5), "meta.pipeline_tag"),
    "null tag": (lambda d: d["meta"].update(tags=[None]), "meta.tags[0]"),
    "tags a string": (lambda d: d["meta"].update(tags="abc"), "meta.tags"),
    "string downloads": (lambda d: d["meta"].update(downloads="12"), "meta.downloads"),
    "bool likes": (lambda d: d["meta"].update(likes=True), "meta.likes"),
    "integer last_modified": (lambda d: d["meta"].update(last_modified=1700000000), "meta.last_modified"),
    "year 1 last_modified": (lambda d: d["meta"].update(last_modified="0001-01-01T00:00:00"), "meta.last_modified"),
    "year 9999 minus an hour": (lambda d: d["meta"].update(last_modified="9999-12-31T23:30:00-01:00"),
                                "meta.last_modified"),
    "a list as meta": (lambda d: d.update(meta=[1, 2]), "meta must be an object"),
    "a top-level list": (lambda d: [d], "the file must be an object"),
    "files of strings": (lambda d: d["meta"].update(files=["x.bin"]), "meta.files[0]"),
    "file size a string": (lambda d: d["meta"]["files"][0].update(size="1"), "meta.files[0].size"),
    "card a number": (lambda d: d["meta"].update(card_markdown=1), "meta.card_markdown"),
    "trending NaN": (lambda d: d["meta"].update(trending_score=float("nan")), "meta.trending_score"),
    "failure a string": (lambda d: d.update(failure="boom"), "failure"),
    "failure without detail": (lambda d: d.update(failure={"reason": "x"}), "failure"),
    "no repo_id": (lambda d: d.pop("repo_id") and None, "repo_id"),
    "format 2": (lambda d: d.update(format=2), "format"),
    "gated a number": (lambda d: d["meta"].update(gated=3), "meta.gated"),
}


@pytest.mark.parametrize("case", sorted(BAD_META))
def test_a_wrongly_typed_metadata_cache_file_is_that_models_problem(tmp_path: Path, case: str):
    change, field = BAD_META[case]
    registry, path = _one_model(tmp_path, _with(change))
    report = build(registry, tmp_path / "site")
    assert report.models == 1 and not report.errors
    [problem] = [p for _, p in report.model_problems if str(path) in p]
    assert field in problem
    assert (tmp_path / "site" / "models" / REPO / "index.html").is_file()


def test_a_lone_surrogate_in_the_cache_is_refused_not_written(tmp_path: Path):
    registry, path = _one_model(tmp_path, json.dumps(good_meta(REPO)).replace('"mit"', '"\\ud800"'))
    report = build(registry, tmp_path / "site")
    assert any(str(path) in p and "meta.license" in p for _, p in report.model_problems)


def test_a_good_metadata_cache_file_is_shown(tmp_path: Path):
    registry, _ = _one_model(tmp_path, good_meta(REPO))
    report = build(registry, tmp_path / "site")
    record = json.loads((tmp_path / "site" / "api" / "models" / f"{REPO}.json").read_text())
    assert (record["license"], record["downloads"], record["last_modified"]) == ("mit", 12, "2025-05-01T10:00:00Z")
    assert not [p for _, p in report.model_problems if "metadata" in p]


def test_a_cache_file_for_another_repository_is_refused(tmp_path: Path):
    registry, path = _one_model(tmp_path, good_meta("Other/Model"))
    report = build(registry, tmp_path / "site")
    assert any(str(path) in p and "Other/Model" in p for _, p in report.model_problems)


@pytest.mark.parametrize("date", [10**12, 2**63, -1])
def test_a_creation_date_out_of_range_is_ignored_with_a_problem(tmp_path: Path, date: int):
    registry = tmp_path / "registry"
    torrent = add_model(registry, REPO, creation_date=date)
    os.utime(torrent, (1_700_000_000, 1_700_000_000))
    report = build(registry, tmp_path / "site")
    assert report.models == 1 and not report.errors
    assert any(str(date) in p and "creation date" in p for _, p in report.model_problems)
    record = json.loads((tmp_path / "site" / "api" / "models" / f"{REPO}.json").read_text())
    assert record["last_modified"] is None  # unknown: never the file's modification time (issue 9)


@pytest.mark.parametrize("revision", ["/x", "/tmp/x", "../../../x", "a/../b", "a..b", ".hidden", "x.lock", "x/",
                                      "-x", "a//b", "a b", "a\nb", "a~1", "a^", "a:b", "a?", "a*", "a[", "a\\b",
                                      "@", "a@{1}", "x.", "", 5, ["main"], "main\n", REV + "\n"])
def test_a_sidecar_revision_must_be_a_commit_or_a_branch_git_allows(tmp_path: Path, revision: object):
    registry = tmp_path / "registry"
    add_model(registry, REPO, sidecar={"repo_id": REPO, "revision": revision})
    catalog = load_catalog(registry)
    assert not catalog.models
    [error] = catalog.errors
    assert isinstance(error, CatalogError) and error.path.endswith("Model.json") and "'revision'" in error.problem


@pytest.mark.parametrize("revision", [REV, "main", "refs/pr/1", "v1.0", "feature/x-y_z", "dev@2"])
def test_commits_and_branch_names_are_revisions(tmp_path: Path, revision: str):
    registry = tmp_path / "registry"
    add_model(registry, REPO, sidecar={"repo_id": REPO, "revision": revision})
    [model] = load_catalog(registry).models
    assert model.revision == revision and model.pinned == (revision == REV)
    assert MetaCache.for_registry(registry).path(REPO, revision).is_relative_to(registry / ".metadata" / REPO)


@pytest.mark.parametrize("revision", ["/x", "../../x", "a/../../../b", "..", "."])
def test_the_metadata_cache_never_names_a_file_outside_itself(tmp_path: Path, revision: str):
    cache = MetaCache(tmp_path / "registry" / ".metadata")
    with pytest.raises(MetadataCacheError, match="outside"):
        cache.path(REPO, revision)


def test_a_metadata_cache_link_out_of_the_registry_is_not_followed(tmp_path: Path):
    (tmp_path / "elsewhere").mkdir()
    cache = MetaCache(tmp_path / "registry" / ".metadata")
    (cache.root / "Org").mkdir(parents=True)
    (cache.root / "Org" / "Model").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(MetadataCacheError, match="outside"):
        cache.path(REPO, "main")


def test_webseed_revisions_follow_the_same_rules():
    assert repo_from_webseeds(["https://huggingface.co/Org/Model/resolve/main/"]) == (REPO, "main")
    assert repo_from_webseeds(["https://huggingface.co/Org/Model/resolve/%2Fx/"]) is None
    assert repo_from_webseeds(["https://huggingface.co/Org/Model/resolve/..%2F..%2Fx/"]) is None
    assert repo_from_webseeds(["https://huggingface.co/Org/Model/resolve/main%0A/"]) is None


@pytest.mark.parametrize("text", ["Org/S15\n", "Org/S15\n\n"])
def test_a_trailing_newline_is_no_repository_id(tmp_path: Path, text: str):
    assert not REPO_ID.match(text) and not COMMIT.match(REV + "\n")
    registry = tmp_path / "registry"
    add_model(registry, REPO, sidecar={"repo_id": text, "revision": REV})
    folder = registry / "Org" / "S15\n"
    folder.mkdir(parents=True)
    (folder / "x.torrent").write_bytes((registry / REPO / "Model.torrent").read_bytes())
    report = build(registry, tmp_path / "site")
    assert report.models == 0 and len(report.errors) == 2
    assert not any("\n" in p.name for p in (tmp_path / "site").rglob("*"))


def _run_build(registry: Path, out: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """``modelreg build`` in a child, so that a hang fails the test instead of blocking it."""
    return subprocess.run([PYTHON, "-m", "modelreg", "build", "--registry", str(registry), "--out", str(out)],
                          capture_output=True, text=True, timeout=timeout, env=subprocess_env())


def test_symlink_loops_are_walked_once(tmp_path: Path):
    registry = tmp_path / "registry"
    add_model(registry, REPO)
    for name in ("loop1", "loop2"):  # two loops: following links, the walk would be exponential
        (registry / "Org" / name).symlink_to("..")
    (registry / "again").symlink_to(registry / "Org")  # one folder by two ways
    (registry / "dangling").symlink_to(tmp_path / "nowhere")
    result = _run_build(registry, tmp_path / "site")  # first in a child: the old walk never ended
    assert result.returncode == 0, result.stderr
    assert "built 1 models" in result.stdout
    assert find_torrents(registry) == [registry / REPO / "Model.torrent"]


def test_special_files_are_refused_without_blocking(tmp_path: Path):
    registry = tmp_path / "registry"
    add_model(registry, "Org/Fifo")
    os.mkfifo(registry / "Org" / "Fifo" / "Fifo.json")  # a FIFO sidecar: reading it would block forever
    add_model(registry, "Org/Zero")
    (registry / "Org" / "Zero" / "Zero.json").symlink_to("/dev/zero")  # endless bytes
    add_model(registry, "Org/Big", sidecar={"repo_id": "Org/Big", "pad": "x" * (2 << 20)})
    add_model(registry, "Org/Meta", sidecar={"repo_id": "Org/Meta", "revision": REV})
    meta_file(registry, "Org/Meta").symlink_to("/dev/zero")
    add_model(registry, "Org/Pipe", sidecar={"repo_id": "Org/Pipe", "revision": REV})
    os.mkfifo(meta_file(registry, "Org/Pipe"))
    (registry / "Org" / "Dev").mkdir()
    (registry / "Org" / "Dev" / "Dev.torrent").symlink_to("/dev/zero")  # not a regular file: not a torrent
    result = _run_build(registry, tmp_path / "site")
    assert result.returncode == 0, result.stderr
    out = result.stdout + result.stderr
    assert "built 2 models" in out
    assert "Fifo.json: cannot read the sidecar: the sidecar is not a regular file but a FIFO" in out
    assert "Zero.json: cannot read the sidecar: the sidecar is not a regular file but a device" in out
    assert "Big.json: cannot read the sidecar: the sidecar is larger than 1 MiB" in out
    assert f"Meta/{REV}.json: Org/Meta@{REV} would be cached outside" in out  # the link leads out of it
    assert f"Pipe/{REV}.json: cannot read the cached metadata: the metadata cache file is not a regular" in out


def test_torrents_and_cache_files_over_their_caps_are_named(tmp_path: Path, monkeypatch):
    from modelreg.registry import metacache
    from modelreg.torrent import metainfo

    registry, path = _one_model(tmp_path, good_meta(REPO))
    monkeypatch.setattr(metainfo, "TORRENT_MAX_BYTES", 10)
    [error] = load_catalog(registry).errors
    assert "Model.torrent: cannot read the file: the torrent is larger than 10 bytes" in str(error)
    monkeypatch.setattr(metacache, "MAX_BYTES", 100)
    with pytest.raises(MetadataCacheError, match="the metadata cache file is larger than 100 bytes"):
        MetaCache.for_registry(registry).load(REPO, REV)


# -- the property: metadata cache files and sidecars of any JSON shape ------------------------------------

_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=30)
_json = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                     | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=20)


def _mutated(document: dict) -> st.SearchStrategy:
    """``document`` with one field (at any depth) replaced by any JSON value, or removed."""
    paths: list[tuple] = []

    def walk(value: object, at: tuple) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                paths.append((*at, k))
                walk(v, (*at, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                paths.append((*at, i))
                walk(v, (*at, i))

    walk(document, ())

    def apply(path: tuple, value: object, remove: bool) -> object:
        doc = json.loads(json.dumps(document))
        node = doc
        for key in path[:-1]:
            node = node[key]
        if remove and isinstance(node, dict):
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return doc

    return st.builds(apply, st.sampled_from(paths), _json, st.booleans())


_SIDECAR = {"repo_id": REPO, "revision": REV, "note": {"a": [1]}}


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(sidecar=st.one_of(_json, _mutated(_SIDECAR), st.just(_SIDECAR)),
       meta=st.one_of(_json, _mutated(good_meta(REPO))))
def test_no_json_in_a_sidecar_or_cache_file_breaks_the_build(tmp_path_factory, sidecar: object, meta: object):
    tmp = tmp_path_factory.mktemp("prop")
    registry = tmp / "registry"
    add_model(registry, REPO, sidecar=sidecar)
    meta_file(registry, REPO).write_text(json.dumps(meta))
    report = build(registry, tmp / "site")  # must not raise
    if report.models == 0:
        [error] = report.errors
        assert isinstance(error, FileProblem) and error.path.endswith("Model.json")
    else:
        assert not report.errors
        page = tmp / "site" / "models" / REPO / "index.html"
        assert page.is_file()


def test_is_revision_has_git_ref_rules():
    assert is_revision(REV) and is_revision("refs/pr/1") and not is_revision("x.lock/y")
    assert not is_revision("a/.b") and not is_revision("HEAD") and not is_revision("\ud800")


def test_the_cache_stores_nothing_its_reader_would_refuse(tmp_path: Path):
    # One schema for both directions: a value that load() refuses is refused by the writer too.
    cache = MetaCache.for_registry(tmp_path / "registry")
    meta = ModelMeta(REPO, None)
    with pytest.raises(MetadataCacheError, match="fetched_at"):
        cache.store_meta(meta, "now")
    assert not cache.path(REPO, None).exists()
    cache.store_meta(meta, "2026-11-29T00:00:00Z")
    assert cache.load(REPO, None).meta.fetched_at == "2026-11-29T00:00:00Z"
