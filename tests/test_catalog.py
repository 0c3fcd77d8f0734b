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


def test_a_model_made_without_its_constructor_is_the_one_it_makes(tmp_path):
    # _made fills a Model's fields without calling __init__ (a rebuild makes 100,000 of them): that holds
    # only while __init__ does nothing but set them
    import dataclasses

    from modelreg.registry.catalog import Model, _made

    assert not hasattr(Model, "__post_init__") and not hasattr(Model, "__slots__")
    torrent = load_catalog(_one(tmp_path)).models[0].torrent
    values = ("Org/Name", REV, "sidecar", torrent, "/r/Org/Name/N.torrent", "Org/Name/N.torrent", {"a": 1}, None,
              ("p",), 7, None)
    assert len(values) == len(dataclasses.fields(Model))
    made, built = _made(*values), Model(*values)
    assert made == built and repr(made) == repr(built) and made.torrent_path == built.torrent_path


def _one(tmp_path):
    reg = tmp_path / "registry"
    add(reg, "Org/Name/N.torrent", {"N/a": b"n"})
    return reg


def test_duplicates_by_infohash_or_by_id_in_another_case_are_reported(tmp_path):
    reg = tmp_path / "registry"
    add(reg, "Org/Model/A.torrent", {"A/a": b"a"})
    add(reg, "org/MODEL/B.torrent", {"B/a": b"b"})
    (reg / "c/Other").mkdir(parents=True)
    shutil.copy(reg / "Org/Model/A.torrent", reg / "c/Other/C.torrent")
    add(reg, "d/Fine/D.torrent", {"D/a": b"d"})
    catalog = load_catalog(reg)
    assert [m.repo_id for m in catalog.models] == ["d/Fine", "Org/Model"]
    messages = sorted(str(e) for e in catalog.errors)
    assert len(messages) == 2
    assert any("B.torrent" in m and "the same repository" in m for m in messages)
    assert any("C.torrent" in m and "the same infohash" in m for m in messages)


def test_links_that_loop_or_reach_a_folder_twice_list_each_torrent_once(tmp_path):
    reg = tmp_path / "registry"
    add(reg, "Org/Name/N.torrent", {"N/a": b"n"})
    (reg / "Org" / "Name" / "up").symlink_to(reg)  # a loop
    (reg / "Again").symlink_to(reg / "Org")  # the same folder by a second way
    catalog = load_catalog(reg)
    assert [m.rel_path for m in catalog.models] == ["Org/Name/N.torrent"] and not catalog.errors


def test_the_sidecar_of_a_torrent_named_dot_torrent_is_read(tmp_path):
    reg = tmp_path / "registry"
    path = add(reg, "x/y/.torrent", {"Z/a": b"z"})
    (path.parent / ".torrent.json").write_text(json.dumps({"repo_id": "Dot/Named", "revision": REV}))
    catalog = load_catalog(reg)
    assert [(m.repo_id, m.revision_source) for m in catalog.models] == [("Dot/Named", "sidecar")]


def test_a_level_of_many_folders_is_listed_from_threads_as_one_thread_lists_it(tmp_path, monkeypatch):
    import os
    import threading

    from modelreg.registry import catalog

    for org in range(3):
        for model in range(150):  # 450 folders on the second level: lots of 100 from threads
            folder = tmp_path / f"Org{org}" / f"model-{model:03}"
            folder.mkdir(parents=True)
            (folder / f"model-{model:03}.torrent").write_bytes(b"d4:infod4:name1:xee")
            if model % 7 == 0:
                (folder / f"model-{model:03}.JSON").write_text("{}")
            if model % 11 == 0:
                (folder / "not-a-torrent.txt").write_text("")
    os.symlink(tmp_path / "Org0", tmp_path / "Org1" / "model-000" / "again")  # a folder reached twice
    callers = set()
    before = threading.active_count()
    listed = catalog._read_folder

    def spy(folder):
        callers.add(threading.current_thread().name)
        return listed(folder)

    monkeypatch.setattr(catalog, "_read_folder", spy)
    monkeypatch.setattr(catalog, "READ_IN_THREADS", 100)
    monkeypatch.setattr(catalog, "SLOW_LISTING", 0)  # every lot after the first from threads
    threaded = catalog.scan_registry(tmp_path)
    assert len(callers) > 1  # listed from threads
    callers.clear()
    monkeypatch.setattr(catalog, "SLOW_LISTING", 1)  # never slow enough
    serial = catalog.scan_registry(tmp_path)
    assert callers == {threading.current_thread().name}
    assert threaded == serial
    assert len(threaded.torrents) == 450 and len(threaded.jsons) == 66
    assert threading.active_count() == before  # the threads ended with the walk
