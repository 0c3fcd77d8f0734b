"""The catalog: each torrent's repository and revision, and the problems a registry can have."""

from __future__ import annotations

import json
import shutil

import pytest
from ltutil import make_torrent

from modelreg.errors import CatalogError
from modelreg.registry.catalog import load_catalog, repo_from_webseeds

REV = "0123456789abcdef0123456789abcdef01234567"


def add(registry, rel, files, **kw):
    path = registry / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(make_torrent(registry.parent / "src" / rel, files, **kw))
    return path


def test_repo_from_webseeds():
    assert repo_from_webseeds([f"https://seed.modelregistry.io/v1/AliesTaha/fable-traces/{REV}/"]) == (
        "AliesTaha/fable-traces", REV)
    assert repo_from_webseeds([f"https://huggingface.co/Qwen/Qwen3-8B/resolve/{REV}/"]) == ("Qwen/Qwen3-8B", REV)
    assert repo_from_webseeds(["http://mirror.internal/files/"]) is None
    assert repo_from_webseeds(["https://seed.example/v1/a/b/main/"]) is None  # the gateway pins commits only


def test_corpus_keeps_hf_case(corpus_dir):
    catalog = load_catalog(corpus_dir)
    assert not catalog.errors
    model = catalog.by_id()["AliesTaha/fable-traces"]
    assert model.revision == "7f9339b6e9e3b9cb8259963029d271e4905233bc" and model.pinned
    assert model.revision_source == "web seed"
    assert model.rel_path == "models/aliestaha/fable-traces/fable-traces.torrent"


def test_sources_in_order(tmp_path):
    reg = tmp_path / "registry"
    side = add(reg, "x/y/Side.torrent", {"Side/a": b"a"}, webseeds=(f"https://huggingface.co/W/S/resolve/{REV}/",))
    (side.with_suffix(".json")).write_text(json.dumps({"repo_id": "Org/From-Sidecar", "revision": REV}))
    add(reg, "x/y/Seed.torrent", {"Seed/a": b"b"}, webseeds=(f"https://huggingface.co/Web/Seeded/resolve/{REV}/",))
    add(reg, "SomeOrg/folder-model/F.torrent", {"F/a": b"c"})
    catalog = load_catalog(reg)
    assert not catalog.errors
    got = {m.repo_id: (m.revision, m.revision_source) for m in catalog.models}
    assert got == {
        "Org/From-Sidecar": (REV, "sidecar"),
        "Web/Seeded": (REV, "web seed"),
        "SomeOrg/folder-model": (None, "default branch"),
    }


def test_bad_entries_are_reported_and_good_ones_kept(tmp_path):
    reg = tmp_path / "registry"
    add(reg, "good/one/G.torrent", {"G/a": b"g"})
    (reg / "bad" / "trunc").mkdir(parents=True)
    (reg / "bad" / "trunc" / "T.torrent").write_bytes(b"d4:infod4:name")
    loose = add(reg, "Loose.torrent", {"Loose/a": b"l"})
    dup = reg / "later" / "copy" / "G2.torrent"  # path order decides which one is kept
    dup.parent.mkdir(parents=True)
    shutil.copy(reg / "good/one/G.torrent", dup)
    side = add(reg, "s/s/S.torrent", {"S/a": b"s"})
    side.with_suffix(".json").write_text("{not json")
    catalog = load_catalog(reg)
    assert [m.repo_id for m in catalog.models] == ["good/one"]
    messages = sorted(str(e) for e in catalog.errors)
    assert len(messages) == 4
    assert any(str(loose) in m and "cannot tell which Hugging Face repository" in m for m in messages)
    assert any(str(dup) in m and "the same infohash" in m and "good/one" in m for m in messages)
    assert any("T.torrent" in m and "truncated" in m for m in messages)
    assert any("S.json" in m and "not valid JSON" in m for m in messages)


def test_missing_registry(tmp_path):
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog(tmp_path / "nope")
