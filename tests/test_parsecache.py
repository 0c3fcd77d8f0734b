"""The build's parse cache gives back what the site renders from: files and the layout with pad files."""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import pickle
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from modelreg.errors import TorrentError
from modelreg.registry import catalog as catalog_module
from modelreg.registry.catalog import Catalog, Listing, load_catalog, scan_registry, sidecar_of
from modelreg.site.parsecache import _COLUMN_NAMES, ParseCache
from modelreg.torrent import bencode
from modelreg.torrent.create import create_torrent, write_torrent
from modelreg.torrent.metainfo import Torrent
from modelreg.torrent.source import LocalSource

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synth import generate  # noqa: E402


def test_a_cached_torrent_keeps_its_pad_files(tmp_path):
    # aria2c's --select-file index counts pad files (issue 9): a torrent read back from the cache must
    # still have them in its layout, in order, or every per-file command on a rebuilt page is lost.
    folder = tmp_path / "Model"
    folder.mkdir()
    for name, size in (("a.bin", 40_000), ("b.json", 300), ("c.bin", 70_001)):
        (folder / name).write_bytes(bytes([len(name)]) * size)
    path = tmp_path / "Model.torrent"
    write_torrent(create_torrent(LocalSource.open(folder), piece_length=16384), path)
    fresh = Torrent.read(path)
    assert any(f.is_pad for f in fresh.layout)

    first = ParseCache(tmp_path / "parse.cache")
    first.read(path)
    first.save()
    cached = ParseCache(tmp_path / "parse.cache").read(path)
    assert not cached.raw  # it did come from the cache
    shape = lambda fs: [(f.path, f.size, f.offset, f.is_pad) for f in fs]  # noqa: E731
    assert shape(cached.layout) == shape(fresh.layout)
    assert shape(cached.files) == shape(fresh.files)


# The catalog's entries kept in the parse cache: a rebuild reads only the torrents whose files changed,
# and notices every change of a file an entry is made from.

def _registry(tmp_path: Path, count: int = 6) -> Path:
    generate(tmp_path / "registry", count, corpus=None, seed=7)
    return tmp_path / "registry"


def _load(registry: Path, file: Path) -> tuple[Catalog, list[str]]:
    """The catalog as a build loads it, through a parse cache kept in ``file``; and the torrents it read."""
    cache, reads = ParseCache(file), []

    def read(path):
        reads.append(os.path.basename(path))
        return cache.read_light(path)

    catalog = load_catalog(registry, read=read, store=cache)
    cache.save()
    cache.db.close()
    return catalog, reads


def _plain(registry: Path) -> Catalog:
    """The same catalog without a store (light torrents, as the store gives them back)."""
    return load_catalog(registry, read=ParseCache(None).read_light)


def _same(catalog: Catalog, registry: Path) -> None:
    plain = _plain(registry)
    assert catalog.models == plain.models
    assert [str(e) for e in catalog.errors] == [str(e) for e in plain.errors]


def _renamed_over(path: Path, data: bytes, like: Path | None = None) -> None:
    """``data`` written to a new file renamed over ``path`` (a new inode); with ``like``, that file's size
    and times, so that only the inode tells."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    if like is not None:
        st = like.stat()
        os.utime(fresh, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(fresh, path)


def test_an_unchanged_registry_is_not_read_again(tmp_path):
    registry = _registry(tmp_path)
    first, reads = _load(registry, tmp_path / "cache")
    assert len(reads) == 6 and not first.errors
    again, reads = _load(registry, tmp_path / "cache")
    assert reads == [] and again.models == first.models
    _same(again, registry)


def test_a_torrent_rewritten_in_place_or_renamed_over_is_read_again(tmp_path):
    registry = _registry(tmp_path)
    _load(registry, tmp_path / "cache")
    paths = sorted(registry.rglob("*.torrent"))
    # in place: same inode, a new modification time
    top = bencode.decode(paths[0].read_bytes())
    before = paths[0].stat()
    paths[0].write_bytes(bencode.encode({**top, b"comment": b"in place"}))
    os.utime(paths[0], ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    # renamed over, with the same size and times as the old file: only its inode and change time differ
    top = bencode.decode(paths[1].read_bytes())
    saved = tmp_path / "old"
    os.link(paths[1], saved)
    _renamed_over(paths[1], bencode.encode({**top, b"created by": top[b"created by"][::-1]}), like=saved)
    assert paths[1].stat().st_size == saved.stat().st_size  # (the size kept by reversing a field)
    catalog, reads = _load(registry, tmp_path / "cache")
    assert sorted(reads) == sorted([paths[0].name, paths[1].name])
    _same(catalog, registry)
    assert {m.torrent.comment for m in catalog.models} >= {"in place"}


def test_a_sidecar_added_changed_or_removed_is_noticed(tmp_path):
    registry = _registry(tmp_path)
    _load(registry, tmp_path / "cache")
    path = sorted(registry.rglob("*.torrent"))[2]
    side = path.with_suffix(".json")
    side.write_text(json.dumps({"repo_id": "Side/Car-One", "revision": "a" * 40}))
    catalog, reads = _load(registry, tmp_path / "cache")
    assert reads == [path.name] and "Side/Car-One" in catalog.by_id()
    _same(catalog, registry)
    # changed in place to the same size and a new modification time
    before = side.stat()
    side.write_text(json.dumps({"repo_id": "Side/Car-Two", "revision": "b" * 40}))
    os.utime(side, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
    catalog, reads = _load(registry, tmp_path / "cache")
    assert reads == [path.name] and "Side/Car-Two" in catalog.by_id()
    _same(catalog, registry)
    # renamed over with the same size and times
    saved = tmp_path / "old.json"
    os.link(side, saved)
    _renamed_over(side, json.dumps({"repo_id": "Side/Car-Six", "revision": "c" * 40}).encode(), like=saved)
    catalog, reads = _load(registry, tmp_path / "cache")
    assert reads == [path.name] and "Side/Car-Six" in catalog.by_id()
    side.unlink()
    catalog, reads = _load(registry, tmp_path / "cache")
    assert reads == [path.name] and not any(m.repo_id.startswith("Side/") for m in catalog.models)
    _same(catalog, registry)
    # a sidecar that turns bad is the torrent's error, and its old entry is not used again
    side.write_text("{not json")
    catalog, reads = _load(registry, tmp_path / "cache")
    assert reads == [path.name] and len(catalog.errors) == 1 and "not valid JSON" in str(catalog.errors[0])
    _same(catalog, registry)
    catalog, reads = _load(registry, tmp_path / "cache")
    assert reads == [path.name] and len(catalog.errors) == 1


def test_a_sidecar_named_in_another_case_is_looked_for(tmp_path):
    # a case-insensitive file system opens Model.JSON for Model.json: the listing must not rule it out
    registry = _registry(tmp_path)
    path = sorted(registry.rglob("*.torrent"))[0]
    upper = path.with_name(path.stem + ".JSON")
    upper.write_text(json.dumps({"repo_id": "Upper/Case"}))
    listing = scan_registry(registry)
    assert sidecar_of(str(path)).casefold() in listing.jsons
    _same(_load(registry, tmp_path / "cache")[0], registry)


def test_the_sidecar_name_is_the_one_path_gives():
    for name in ("a.torrent", "a.b.torrent", ".torrent", "..torrent", " .torrent", "x.json.torrent"):
        assert sidecar_of(f"/r/x/{name}") == str(Path(f"/r/x/{name}").with_suffix(".json"))


def test_a_new_registry_root_or_a_moved_torrent_is_read_again(tmp_path):
    registry = _registry(tmp_path)
    _load(registry, tmp_path / "cache")
    path = sorted(registry.rglob("*.torrent"))[0]
    moved = registry / "Moved" / "Here" / path.name
    moved.parent.mkdir(parents=True)
    path.rename(moved)
    catalog, reads = _load(registry, tmp_path / "cache")
    assert reads == [path.name] and any(m.rel_path == f"Moved/Here/{path.name}" for m in catalog.models)
    _same(catalog, registry)
    # the same files seen from a folder above: other relative paths, so other entries
    catalog, reads = _load(registry.parent, tmp_path / "cache")
    assert len(reads) == 6 and all(m.rel_path.startswith("registry/") for m in catalog.models)
    _same(catalog, registry.parent)


def _stored(file: Path) -> tuple[dict[str, tuple], dict[str, object]]:
    """The catalog's entries in the parse cache ``file``: those of its base (path -> entry), and its journal."""
    kept = ParseCache(file)
    base, journal = kept.entries._read()
    kept.db.close()
    return ({path: tuple(fields) for path, *fields in zip(*base, strict=True)} if base is not None else {}), journal


def _rows(file: Path) -> dict[str, bytes]:
    with sqlite3.connect(file) as db:
        return dict(db.execute("SELECT name, value FROM catalog").fetchall())


def test_removed_torrents_leave_the_store(tmp_path):
    registry = _registry(tmp_path)
    _load(registry, tmp_path / "cache")
    gone = sorted(registry.rglob("*.torrent"))[:2]
    for path in gone:
        path.unlink()
    catalog, reads = _load(registry, tmp_path / "cache")
    assert reads == [] and len(catalog.models) == 4
    base, journal = _stored(tmp_path / "cache")
    # the base keeps them until the journal is folded in; the journal tells them gone
    assert journal == dict.fromkeys(map(str, gone)) and set(base) - set(journal) == {m.path for m in catalog.models}
    catalog_module.load_catalog(registry, store=(cache := ParseCache(tmp_path / "cache")))
    cache.entries._base = None  # as if no base were sound: written again, with the entries asked for alone
    cache.save()
    cache.db.close()
    base, journal = _stored(tmp_path / "cache")
    assert set(base) == {m.path for m in catalog.models} and journal == {}


def test_a_change_writes_the_journal_and_many_fold_it_into_the_base(tmp_path, monkeypatch):
    import modelreg.site.parsecache as parsecache

    registry = _registry(tmp_path, count=12)
    first, _ = _load(registry, tmp_path / "cache")
    rows = _rows(tmp_path / "cache")
    assert marshal.loads(rows["journal"]) == {} and len(marshal.loads(rows["path"])) == 12
    before, _ = _stored(tmp_path / "cache")
    _load(registry, tmp_path / "cache")
    assert _rows(tmp_path / "cache") == rows  # nothing changed: nothing written
    paths = sorted(registry.rglob("*.torrent"))
    for k, path in enumerate(paths[:3]):
        os.utime(path, ns=(1_000_000_000 * (k + 1),) * 2)
    catalog, reads = _load(registry, tmp_path / "cache")
    assert len(reads) == 3 and catalog.models == first.models
    after = _rows(tmp_path / "cache")
    assert {name: value for name, value in after.items() if name != "journal"} == \
        {name: value for name, value in rows.items() if name != "journal"}  # the base is as it was
    base, journal = _stored(tmp_path / "cache")
    assert set(journal) == set(map(str, paths[:3])) and all(journal[p][0] != base[p][0] for p in journal)
    again, reads = _load(registry, tmp_path / "cache")
    assert reads == [] and again.models == first.models and _rows(tmp_path / "cache") == after
    # past the journal's limit, the base is written again and the journal emptied
    monkeypatch.setattr(parsecache, "_JOURNAL_MAX", 3)
    os.utime(paths[3], ns=(5_000_000_000,) * 2)
    again, reads = _load(registry, tmp_path / "cache")
    assert reads == [paths[3].name] and again.models == first.models
    base, journal = _stored(tmp_path / "cache")
    assert journal == {} and base.keys() == before.keys()
    assert [str(p) for p in paths if base[str(p)] != before[str(p)]] == [str(p) for p in paths[:4]]
    assert _load(registry, tmp_path / "cache")[1] == []
    _same(again, registry)


def test_damaged_or_foreign_entries_are_misses(tmp_path):
    registry = _registry(tmp_path, count=16)
    first, _ = _load(registry, tmp_path / "cache")
    rows = _rows(tmp_path / "cache")
    paths = marshal.loads(rows["path"])

    def spoiled(change: dict[str, object]) -> list[str]:
        """The torrents read again once the catalog's rows are changed so (name -> value, marshalled)."""
        with sqlite3.connect(tmp_path / "cache") as db:
            db.executemany("INSERT OR REPLACE INTO catalog VALUES (?, ?)",
                           [(name, marshal.dumps(value)) for name, value in change.items()])
        catalog, reads = _load(registry, tmp_path / "cache")
        assert catalog.models == first.models
        _same(catalog, registry)
        assert _load(registry, tmp_path / "cache")[1] == []  # and the rows are sound again
        return sorted(reads)

    column = lambda name: marshal.loads(_rows(tmp_path / "cache")[name])  # noqa: E731
    everything = sorted(os.path.basename(p) for p in paths)
    # the base unreadable or of another shape: every torrent is read again
    for change in ({"path": [1, 2]}, {"digest": column("digest")[:-1]}, {"infohash_v1": "text"}, {"path": paths[:-1]}):
        assert spoiled(change) == everything
    with sqlite3.connect(tmp_path / "cache") as db:
        db.execute("UPDATE catalog SET value = x'00ff' WHERE name = 'sidecar'")
    assert sorted(_load(registry, tmp_path / "cache")[1]) == everything
    # well-formed columns holding a field of the wrong shape, or a repository that leaves the site: only
    # the entries with one are read again
    bad = {"digest": "0" * 63, "repo_id": "../../outside", "revision": "bad..ref", "source": 7, "sidecar": [],
           "problems": ("text", 3), "infohash_v1": "0" * 39, "infohash_v2": 5}
    # an id or a commit with a line break: two lines of the right shape, but not one id or revision
    repo_ids = column("repo_id")
    bad_lines = {"repo_id": f"{repo_ids[0]}\n{repo_ids[1]}", "revision": "a" * 40 + "\n" + "b" * 40}
    for k, (name, value) in enumerate([*bad.items(), *bad_lines.items()]):
        values = column(name)
        order = column("path")
        values[k] = value
        assert spoiled({name: values}) == [os.path.basename(order[k])], name
    # hostile journal entries: each is a miss (the others, which stand for the spoiled base's, stay)
    journal = column("journal")
    order = [path for path in column("path") if path not in journal]
    entry = tuple(column(name)[0] for name in _COLUMN_NAMES[1:])
    journal.update({order[0]: entry[:7], order[1]: (*entry[:2], "../../outside", *entry[3:]), order[2]: "text",
                    order[3]: None, order[4]: (*entry[:-1], ("short",))})
    assert spoiled({"journal": journal}) == sorted(os.path.basename(p) for p in order[:5])
    # a journal of another shape: the base alone, whose spoiled entries are read again
    assert len(spoiled({"journal": ["not", "a", "dict"]})) == len(bad) + len(bad_lines)


def test_damaged_torrent_fields_are_read_from_the_file_where_asked_for(tmp_path, monkeypatch):
    # the torrents' fields of the catalog's entries are loaded only where one is asked for (a rebuild
    # renders a few models): there they are checked, and a damaged one is read from its file instead
    # and leaves the store, so that the next build reads that torrent again
    import modelreg.site.parsecache as parsecache

    registry, file = _registry(tmp_path, count=16), tmp_path / "cache"
    first, _ = _load(registry, file)
    rows = _rows(file)
    order, lights = marshal.loads(rows["path"]), marshal.loads(rows["light"])
    pristine = file.read_bytes()
    fallback: list[str] = []
    real = parsecache.read_torrent
    monkeypatch.setattr(parsecache, "read_torrent", lambda path: fallback.append(os.path.basename(path)) or real(path))

    def spoiled(value: object) -> tuple[list[str], list[str]]:
        """The torrents whose fields came from their files once the column is ``value``, and those the
        next build read again."""
        file.write_bytes(pristine)  # each case from the first build's store
        with sqlite3.connect(file) as db:
            db.execute("INSERT OR REPLACE INTO catalog VALUES ('light', ?)", (marshal.dumps(value),))
        cache = ParseCache(file)
        catalog = load_catalog(registry, read=lambda path: pytest.fail(f"{path} read by the catalog"), store=cache)
        assert catalog.models == first.models  # every field asked for
        cache.save()
        cache.db.close()
        found = sorted(fallback)
        fallback.clear()
        again, reads = _load(registry, file)
        assert again.models == first.models and fallback == []
        assert _load(registry, file)[1] == []  # and the entries are sound again
        return found, sorted(reads)

    everything = sorted(os.path.basename(p) for p in order)
    assert spoiled("text") == (everything, everything)
    assert spoiled(lights[:-1]) == (everything, everything)  # not one value per path
    for k, value in enumerate([("short",), [*lights[2]], None]):
        changed = list(lights)
        changed[k] = value
        assert spoiled(changed) == ([os.path.basename(order[k])],) * 2, value
    # damaged, and the file gone since the catalog was made: the field asked for is an error, each time
    file.write_bytes(pristine)
    with sqlite3.connect(file) as db:
        db.execute("INSERT OR REPLACE INTO catalog VALUES ('light', ?)", (marshal.dumps("text"),))
    cache = ParseCache(file)
    model = load_catalog(registry, read=cache.read_light, store=cache).models[0]
    cache.db.close()
    torrent = model.torrent
    moved = Path(model.path).rename(tmp_path / "away.torrent")
    for _ in range(2):
        with pytest.raises(TorrentError):
            torrent.name  # noqa: B018
    moved.rename(model.path)
    assert torrent == first.models[0].torrent


def test_a_rebuild_loads_no_torrent_fields_it_does_not_show(tmp_path, monkeypatch):
    import modelreg.site.parsecache as parsecache

    registry, file = _registry(tmp_path, count=8), tmp_path / "cache"
    first, _ = _load(registry, file)
    loads = []
    real = parsecache._Stored.load
    monkeypatch.setattr(parsecache._Stored, "load",
                        lambda self: (loads.append(self) if self.values is None else None) or real(self))
    cache = ParseCache(file)
    catalog = load_catalog(registry, read=cache.read_light, store=cache)
    assert loads == [] and len(catalog.models) == 8
    model = catalog.models[3]
    assert type(model.torrent) is not Torrent and model.torrent.infohash_v1 == first.models[3].torrent.infohash_v1
    assert loads == []  # the catalog tells duplicates by the infohashes, which come without the rest
    assert model.torrent.name == first.models[3].torrent.name and len(loads) == 1
    assert type(model.torrent) is Torrent and model.torrent == first.models[3].torrent
    # what reads every field without asking for one by name fills the torrent first
    for k, check in enumerate((lambda t: t == first.models[4].torrent, lambda t: repr(t) == repr(first.models[5].torrent),
                               lambda t: pickle.loads(pickle.dumps(t)) == first.models[6].torrent), 4):
        torrent = catalog.models[k].torrent
        assert type(torrent) is not Torrent and check(torrent) and type(torrent) is Torrent
    assert not hasattr(catalog.models[0].torrent, "no_such_field")
    assert len(loads) == 1  # one load of the column serves every torrent
    cache.db.close()
    # whichever field is asked for first (those with a default too: the class has them)
    for field in dataclasses.fields(Torrent):
        cache = ParseCache(file)
        torrent = load_catalog(registry, read=cache.read_light, store=cache).models[0].torrent
        cache.db.close()
        assert type(torrent) is not Torrent and getattr(torrent, field.name) == getattr(first.models[0].torrent, field.name)
        assert torrent == first.models[0].torrent, field.name


def test_an_unpacked_torrent_is_the_one_its_constructor_makes(tmp_path):
    # _unpack fills a Torrent's fields without calling __init__ (a rebuild makes 100,000 of them): that
    # holds only while __init__ does nothing but set them
    import dataclasses

    from modelreg.site.parsecache import _KEPT, _pack, _unpack

    assert not hasattr(Torrent, "__post_init__") and not hasattr(Torrent, "__slots__")
    path = _registry(tmp_path, count=1).rglob("*.torrent").__next__()
    fresh = Torrent.read(path)
    values, layout = _pack(fresh)
    light = {f.name: getattr(fresh, f.name) for f in dataclasses.fields(Torrent)}
    light.update(pieces=b"", piece_layers={}, info_bytes=b"", raw=b"")
    for name in ("files", "layout"):  # the cache keeps no v2 pieces roots
        light[name] = tuple(f._replace(pieces_root=None) for f in light[name])
    assert _unpack((values, layout)) == Torrent(**light)
    light.update(files=(), layout=())
    assert _unpack((values, None), files=False) == Torrent(**light)
    assert _unpack((values, None), files=False).piece_layers is not _unpack((values, None), files=False).piece_layers
    assert len(values) == len(_KEPT)


def test_a_recalled_entry_holds_the_torrent_unpack_makes(tmp_path):
    # _entries and _checked (a field at a time) make each recalled torrent as _unpack(..., files=False)
    # does: they stay equal
    from modelreg.site.parsecache import _LIGHT, _checked, _entries, _Lights, _pack, _unpack

    path = _registry(tmp_path, count=1).rglob("*.torrent").__next__()
    torrent = Torrent.read(path)
    values, _ = _pack(torrent)
    stamp = ("Org/Name/x.torrent", 1, 2, 3, 4, 5, None)
    raw = (stamp, "0" * 64, "Org/Name", None, "folder", {}, (), torrent.infohash_v1, torrent.infohash_v2)
    light = marshal.dumps([tuple(getattr(torrent, name) for name in _LIGHT)])
    (entry,) = _entries([str(path)], [*([value] for value in raw), _Lights(light, 1)], [stamp])
    (checked,), hits = _checked([str(path)], [*([value] for value in raw), _Lights(light, 1)], [stamp])
    assert hits == [True] and checked[:5] == entry[:5] == raw[2:7]
    for torrent in (entry[5], checked[5]):
        assert torrent == _unpack((values, None), files=False)
        assert torrent.piece_layers is not _unpack((values, None), files=False).piece_layers


# The folders' names kept in the parse cache: a rebuild lists only the folders that changed.

def _scan(registry: Path, file: Path) -> tuple[list[str], set[str], list[str]]:
    """The walk as a build makes it, through a parse cache kept in ``file``: torrents, .json names, and
    the folders it listed."""
    cache, listed = ParseCache(file), []
    real = catalog_module._read_folder

    def read(folder):
        listed.append(folder)
        return real(folder)

    catalog_module._read_folder = read
    try:
        listing = scan_registry(registry, cache)
    finally:
        catalog_module._read_folder = real
    cache.save()
    cache.db.close()
    return listing.torrents, listing.jsons, listed


def _aged(registry: Path) -> None:
    """Every folder's modification time a minute back, so that a change now is seen even within one tick of
    the file system's clock (what RECENT_NS guards against outside tests)."""
    when = time.time_ns() - 60_000_000_000
    for folder in [registry, *(p for p in registry.rglob("*") if p.is_dir() and not p.is_symlink())]:
        os.utime(folder, ns=(when, when))


def test_unchanged_folders_are_not_listed_again_and_changed_ones_are(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_module, "RECENT_NS", 0)
    registry = _registry(tmp_path)
    _aged(registry)
    plain = scan_registry(registry)
    torrents, jsons, listed = _scan(registry, tmp_path / "cache")
    assert (torrents, jsons) == (plain.torrents, plain.jsons) and len(listed) > 6
    torrents, jsons, listed = _scan(registry, tmp_path / "cache")
    assert (torrents, jsons, listed) == (plain.torrents, plain.jsons, [])
    # a torrent and a sidecar added to a folder, a new folder, a torrent removed from another
    one = Path(plain.torrents[0])
    (one.parent / "Extra.torrent").write_bytes(one.read_bytes())
    (one.parent / "Extra.json").write_text("{}")
    (registry / "New" / "Folder").mkdir(parents=True)
    (registry / "New" / "Folder" / "N.torrent").write_bytes(one.read_bytes())
    Path(plain.torrents[1]).unlink()
    torrents, jsons, listed = _scan(registry, tmp_path / "cache")
    again = scan_registry(registry)
    assert (torrents, jsons) == (again.torrents, again.jsons)
    assert str(one.parent / "Extra.torrent") in torrents and str(registry / "New/Folder/N.torrent") in torrents
    assert str(one.parent / "Extra.json").casefold() in jsons and plain.torrents[1] not in torrents
    assert sorted(listed) == sorted(map(str, [registry, one.parent, Path(plain.torrents[1]).parent,
                                              registry / "New", registry / "New/Folder"]))


def test_recent_folders_and_folders_with_links_are_always_listed(tmp_path, monkeypatch):
    registry = _registry(tmp_path)
    # just made: may change again within the same tick of the clock, so not kept
    assert len(_scan(registry, tmp_path / "cache")[2]) == len(_scan(registry, tmp_path / "cache")[2]) > 6
    monkeypatch.setattr(catalog_module, "RECENT_NS", 0)
    target = tmp_path / "elsewhere"
    target.mkdir()
    (registry / "Linked").symlink_to(target)
    _aged(registry)
    _scan(registry, tmp_path / "cache")
    listed = _scan(registry, tmp_path / "cache")[2]
    assert listed == [str(registry)]  # the folder holding the link; the linked one is unchanged
    # the link's target gets a torrent, and is a folder of its own: listed again as it changed
    source = sorted(registry.rglob("*.torrent"))[0]
    (target / "T.torrent").write_bytes(source.read_bytes())
    torrents, _, listed = _scan(registry, tmp_path / "cache")
    assert str(registry / "Linked" / "T.torrent") in torrents and torrents == scan_registry(registry).torrents


def _scanned(tmp_path: Path, monkeypatch) -> tuple[Path, Listing]:
    """A registry of 12 models in folders a minute old, its walk (without a cache), and a walk of it kept
    in the parse cache ``tmp_path / "cache"``."""
    monkeypatch.setattr(catalog_module, "RECENT_NS", 0)
    registry = _registry(tmp_path, count=12)
    _aged(registry)
    plain = scan_registry(registry)
    _scan(registry, tmp_path / "cache")
    return registry, plain


def test_damaged_or_hostile_folder_entries_are_misses(tmp_path, monkeypatch):
    registry, plain = _scanned(tmp_path, monkeypatch)
    with sqlite3.connect(tmp_path / "cache") as db:
        rows = db.execute("SELECT bucket, entries FROM folders ORDER BY bucket").fetchall()
        assert len(rows) > 3
        db.execute("UPDATE folders SET entries = x'00ff' WHERE bucket = ?", (rows[0][0],))
        hostile = {}
        for k, (folder, (identity, folders, torrents, sidecars)) in enumerate(marshal.loads(rows[1][1]).items()):
            hostile[folder] = [(identity, ("..",), torrents, sidecars), (identity, folders, ("../../x.torrent",), sidecars),
                               (identity, folders, ("bad\0.torrent",), sidecars), (identity, folders, torrents),
                               (identity, [], torrents, sidecars), (identity, folders, (7,), sidecars)][k % 6]
        db.execute("UPDATE folders SET entries = ? WHERE bucket = ?", (marshal.dumps(hostile), rows[1][0]))
        db.execute("DELETE FROM walks")  # the walk kept whole set aside: each folder's entry is asked for
    spoiled = len(marshal.loads(rows[0][1])) + len(hostile)
    torrents, jsons, listed = _scan(registry, tmp_path / "cache")
    assert (torrents, jsons) == (plain.torrents, plain.jsons) and len(listed) == spoiled
    assert _scan(registry, tmp_path / "cache")[2] == []  # and the rows are sound again


def test_a_walk_is_kept_whole_and_a_rebuild_lists_only_the_folders_that_changed(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_module, "RECENT_NS", 0)
    registry = _registry(tmp_path)
    _aged(registry)
    plain = scan_registry(registry)
    asked: list[int] = []
    recall = ParseCache.recall_folders
    monkeypatch.setattr(ParseCache, "recall_folders", lambda self, folders, ids: asked.append(len(folders))
                        or recall(self, folders, ids))
    assert _scan(registry, tmp_path / "cache")[:2] == (plain.torrents, plain.jsons) and asked
    asked.clear()
    assert _scan(registry, tmp_path / "cache") == (plain.torrents, plain.jsons, []) and asked == []
    # a torrent re-made (a new file renamed over it): its folder changed, with the same names; of the walk
    # kept, only the stats are written again
    one = Path(plain.torrents[2])
    (one.parent / "fresh").write_bytes(one.read_bytes())
    os.replace(one.parent / "fresh", one)
    def kept() -> tuple:
        db = sqlite3.connect(tmp_path / "cache")
        try:
            return db.execute("SELECT paths, stats FROM walks").fetchone()
        finally:
            db.close()

    before = kept()
    assert _scan(registry, tmp_path / "cache") == (plain.torrents, plain.jsons, [str(one.parent)]) and asked == []
    after = kept()
    assert after[0] == before[0] and after[1] != before[1]
    # a folder added: its parent's names changed, so the registry is walked, each folder's names recalled
    # (kept through the walks taken whole: only the folders that changed are listed)
    (one.parent / "Sub").mkdir()
    (one.parent / "Sub" / "S.torrent").write_bytes(one.read_bytes())
    torrents, jsons, listed = _scan(registry, tmp_path / "cache")
    assert (torrents, jsons) == (scan_registry(registry).torrents, plain.jsons) and asked
    assert sorted(listed) == sorted([str(one.parent), str(one.parent / "Sub")])
    asked.clear()
    assert _scan(registry, tmp_path / "cache")[2] == [] and asked == []


def test_a_damaged_or_hostile_kept_walk_is_not_used(tmp_path, monkeypatch):
    registry, plain = _scanned(tmp_path, monkeypatch)
    with sqlite3.connect(tmp_path / "cache") as db:
        paths, state = db.execute("SELECT paths, stats FROM walks").fetchone()
    (folders, torrents, jsons), (stats, volatile) = marshal.loads(paths), marshal.loads(state)
    top = str(registry)
    hostile = [((folders, [*torrents, "/etc/passwd"], jsons), (stats, volatile)),
               ((folders, [*torrents, top + "/../x.torrent"], jsons), (stats, volatile)),
               ((folders, [*torrents, top + "/./x.torrent"], jsons), (stats, volatile)),
               ((folders, [*torrents, top + "//x.torrent"], jsons), (stats, volatile)),
               ((folders, [*torrents, top + "/"], jsons), (stats, volatile)),
               ((folders, [*torrents, top + "/a\0b.torrent"], jsons), (stats, volatile)),
               ((folders, [*torrents, top + "x/y.torrent"], jsons), (stats, volatile)),
               (([*folders[1:], folders[0]], torrents, jsons), ([*stats[1:], stats[0]], volatile)),
               ((folders, torrents, jsons), (stats[1:], volatile)),
               ((folders, torrents, jsons), (stats, {len(folders): ((), (), ())})),
               ((folders, torrents, jsons), (stats, {0: (("..",), (), ())})),
               ((folders, torrents, [7]), (stats, volatile)), ((folders, torrents), (stats, volatile)),
               b"\x00\xff"]
    for walk in hostile:
        paths, state = (walk, walk) if isinstance(walk, bytes) else map(marshal.dumps, walk)
        with sqlite3.connect(tmp_path / "cache") as db:
            db.execute("UPDATE walks SET paths = ?, stats = ?", (paths, state))
        cache = ParseCache(tmp_path / "cache")
        assert cache.recall_walk(top) is None
        cache.db.close()
        torrents_now, jsons_now, _ = _scan(registry, tmp_path / "cache")
        assert (torrents_now, jsons_now) == (plain.torrents, plain.jsons)


def test_with_the_stats_shared_by_a_forked_child_changes_are_still_seen(tmp_path, monkeypatch):
    import threading

    from modelreg import fsutil

    monkeypatch.setattr(fsutil, "STAT_SPLIT", 2)  # every level of the walk and the torrents' stats fork
    monkeypatch.setattr(threading, "active_count", lambda: 1)
    registry = _registry(tmp_path, count=8)
    first, reads = _load(registry, tmp_path / "cache")
    assert len(reads) == 8
    path = sorted(registry.rglob("*.torrent"))[5]
    saved = tmp_path / "old"
    os.link(path, saved)
    top = bencode.decode(path.read_bytes())
    _renamed_over(path, bencode.encode({**top, b"created by": top[b"created by"][::-1]}), like=saved)
    side = sorted(registry.rglob("*.torrent"))[6].with_suffix(".json")
    side.write_text(json.dumps({"repo_id": "Side/Car-Fork", "revision": "d" * 40}))
    catalog, reads = _load(registry, tmp_path / "cache")
    assert sorted(reads) == sorted([path.name, side.with_suffix(".torrent").name]) and "Side/Car-Fork" in catalog.by_id()
    _same(catalog, registry)
    assert _load(registry, tmp_path / "cache")[1] == []


def test_absolute_is_abspath():
    from modelreg.site.parsecache import absolute

    for path in ("/a/b.torrent", "/a//b", "//a/b", "/a/./b", "/a/../b", "/a/.b/c", "/a/b/", "/a/b/.", "/a/b/..", "a/b",
                 "./a", "", "/", "/.x", "/a/b.torrent/", "/a/b c/ü.torrent"):
        assert absolute(path) == os.path.abspath(path), path


def test_paths_below_a_folder_are_told_as_one_component_at_a_time_would():
    # the kept walk's paths are checked joined, at C speed: the same answer as a check of each path's
    # components, also where the folder's own path holds a component of the shapes looked for
    import itertools
    import random

    from modelreg.site.parsecache import _below

    def reference(top: str, paths: list) -> bool:
        prefix = top if top.endswith("/") else top + "/"
        return all(type(p) is str and p.startswith(prefix) and "\0" not in p
                   and all(part not in ("", ".", "..") for part in p[len(prefix):].split("/")) for p in paths)

    pieces = ["a", "b.c", ".", "..", "", ".x", "..y", "x.", "\0", "a\0b"]
    rng = random.Random(5)
    for top in ("/r", "/r/", "/h/.cache/r", "/a/../r", "/a/./r", "r", "/"):
        for k in range(400):
            paths = ["/".join(rng.choice(pieces) for _ in range(rng.randint(1, 3))) for _ in range(rng.randint(0, 3))]
            prefix = top if top.endswith("/") else top + "/"
            paths = [p if rng.random() < 0.1 else prefix + p for p in paths]
            if k % 50 == 0:
                paths.append(7)
            assert _below(top, paths) == reference(top, paths), (top, paths)
    for top, good in itertools.product(("/r", "/a/../r"), ("x", "x/y.torrent", ".hidden/y")):
        assert _below(top, [f"{top}/{good}"] * 3)


def test_recalled_torrents_filled_from_two_threads_at_once(tmp_path):
    # a render pool's feeder thread pickles (and so fills) the torrents it sends while the build's thread
    # reads others: each is filled once, whole, whichever thread comes first
    import threading

    def read(k: int, models: list, start: threading.Barrier, seen: list) -> None:
        start.wait()
        seen.extend(pickle.loads(pickle.dumps(m.torrent)) if k % 2 else m.torrent.name for m in models)

    registry, file = _registry(tmp_path, count=8), tmp_path / "cache"
    first, _ = _load(registry, file)
    for _ in range(20):
        cache = ParseCache(file)
        models = load_catalog(registry, read=cache.read_light, store=cache).models
        cache.db.close()
        start, seen = threading.Barrier(4), []
        threads = [threading.Thread(target=read, args=(k, models, start, seen)) for k in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert [m.torrent for m in models] == [m.torrent for m in first.models] and len(seen) == 32
