"""Staged updates of the site folder: a link switched to a complete new version; nothing changes on failure,
the previous version is kept, older ones are deleted."""

from __future__ import annotations

import marshal
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from modelreg import fsutil
from modelreg.errors import SiteSwitchError
from modelreg.fsutil import atomic_write_bytes, staged_update, switch_path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def write(root: Path, rel: str, data: bytes) -> None:
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(data)


def record(state: Path, version: Path) -> fsutil._Record:
    found = fsutil._read_record(state, version.name)
    assert found is not None
    return found


def versions(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in (tmp_path / ".site-versions").iterdir() if not p.name.startswith("."))


@pytest.fixture
def site(tmp_path):
    out = tmp_path / "site"
    with staged_update(out, tmp_path / "state") as stage:  # first build: the staging folder becomes the version
        assert stage.target is None
        write(stage.dir, "index.html", b"v1")
        write(stage.dir, "models/a/one/index.html", b"a1")
        write(stage.dir, "models/b/two/index.html", b"b1")
        write(stage.dir, "old/gone.txt", b"x")
    assert out.is_symlink() and len(versions(tmp_path)) == 1
    return out


def test_update_keeps_replaces_and_deletes(site, tmp_path):
    inode = (site / "models/a/one/index.html").stat().st_ino
    for step in range(3):  # a fresh version, then recycled ones
        before = site.resolve()
        with staged_update(site, tmp_path / "state") as stage:
            assert stage.target == before
            stage.keep("models/a/one/index.html")
            write(stage.dir, "index.html", b"v2")
            write(stage.dir, "models/c/three/index.html", b"c%d" % step)
        assert tree(site) == {"index.html": b"v2", "models/a/one/index.html": b"a1",
                              "models/c/three/index.html": b"c%d" % step}
        assert (site / "models/a/one/index.html").stat().st_ino == inode  # kept files are hard links
        assert not (site / "old").exists() and not (site / "models/b").exists()  # emptied folders go too
        assert site.resolve() != before and before.is_dir()  # the previous version is kept
        assert len(versions(tmp_path)) == 2  # and older ones deleted
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site-versions", "site", "state"]
    assert sorted(record(tmp_path / "state", site.resolve()).files()) == sorted(tree(site))


def test_failed_build_changes_nothing(site, tmp_path):
    before, live = tree(site), site.resolve()
    with pytest.raises(RuntimeError):
        with staged_update(site, tmp_path / "state") as stage:
            write(stage.dir, "index.html", b"half")
            raise RuntimeError("template error")
    assert tree(site) == before and site.resolve() == live
    assert versions(tmp_path) == [live.name]
    assert [p.name for p in (tmp_path / ".site-versions").iterdir() if p.name.startswith(".new")] == []


def test_an_interrupted_switch_leaves_the_live_version_and_is_cleaned_up(site, tmp_path, monkeypatch):
    with staged_update(site, tmp_path / "state") as stage:  # two versions: the next build recycles one
        stage.keep("index.html")
    before, live = tree(site), site.resolve()

    def killed(*args):
        raise KeyboardInterrupt  # killed just before the switch, with the new version assembled

    monkeypatch.setattr(fsutil, "_switch", killed)
    with pytest.raises(KeyboardInterrupt):
        with staged_update(site, tmp_path / "state") as stage:
            write(stage.dir, "index.html", b"v3")
    assert tree(site) == before and site.resolve() == live
    monkeypatch.undo()
    with staged_update(site, tmp_path / "state") as stage:
        write(stage.dir, "models/b/two/index.html", b"b2")
        stage.keep("index.html")
    assert tree(site) == {"index.html": b"v1", "models/b/two/index.html": b"b2"}
    assert len(versions(tmp_path)) == 2


def test_a_half_updated_version_without_a_record_is_walked(site, tmp_path):
    with staged_update(site, tmp_path / "state") as stage:
        stage.keep("index.html")
    inactive = next(p for p in (tmp_path / ".site-versions").iterdir() if p.name in versions(tmp_path)
                    and p != site.resolve())
    (tmp_path / "state" / f"{inactive.name}.files").unlink()
    write(inactive, "stray.txt", b"left by a killed build")
    (inactive / "index.html").unlink()  # a new file, as builds make them: never written into a shared inode
    write(inactive, "index.html", b"half-written")
    with staged_update(site, tmp_path / "state") as stage:
        stage.keep("index.html")
        write(stage.dir, "new.html", b"n")
    assert tree(site) == {"index.html": b"v1", "new.html": b"n"}


def test_damaged_records_are_walked_and_never_name_a_path_out_of_the_version(site, tmp_path):
    with staged_update(site, tmp_path / "state") as stage:  # two versions, each with a record
        stage.keep("index.html")
        stage.keep("models/a/one/index.html")
    state = tmp_path / "state"
    inactive = next(p for p in (tmp_path / ".site-versions").iterdir() if p.name in versions(tmp_path)
                    and p != site.resolve())
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not the site's")
    held = record(state, inactive)
    # a record that names files out of the version (to be deleted as not kept): they stay
    fsutil._write_record(state, inactive.name, replace(held, blob=fsutil._join([*held.files(), "../../outside.txt",
                                                                              str(outside)]), count=held.count + 2))
    (state / f"{site.resolve().name}.files").write_bytes(b"\x00not marshal")  # the live one: unreadable
    with staged_update(site, state) as stage:
        stage.keep("models/a/one/index.html")
        write(stage.dir, "index.html", b"v3")
    assert outside.read_bytes() == b"not the site's"
    assert tree(site) == {"index.html": b"v3", "models/a/one/index.html": b"a1"}
    # the records written are whole again: the next update needs no walk and is right
    with staged_update(site, state) as stage:
        stage.keep("index.html")
    assert tree(site) == {"index.html": b"v3"}


def test_records_keep_their_order_and_a_file_changed_two_updates_ago_is_linked(site, tmp_path):
    state = tmp_path / "state"
    expected = {"index.html": b"v1", "models/a/one/index.html": b"a1", "old/gone.txt": b"x"}
    orders = []
    for step in range(4):
        first = next(rel for rel in record(state, site.resolve()).files() if rel in expected)
        with staged_update(site, state) as stage:
            stage.kept.update(expected)
            if step % 2 == 0:  # rewritten in one update, kept in the next: the recycled version is behind
                stage.kept.discard(first)
                expected[first] = b"new%d" % step
                write(stage.dir, first, expected[first])
        orders.append(record(state, site.resolve()).files())
        assert tree(site) == expected
    assert orders[0] == orders[1] == orders[2] == orders[3]  # a rewritten file keeps its place


def test_a_file_becomes_a_folder_and_back(site, tmp_path):
    for _ in range(2):
        with staged_update(site, tmp_path / "state") as stage:
            write(stage.dir, "index.html/inner", b"now a folder")
            write(stage.dir, "models", b"now a file")
        assert tree(site) == {"index.html/inner": b"now a folder", "models": b"now a file"}
        with staged_update(site, tmp_path / "state") as stage:
            write(stage.dir, "index.html", b"a file again")
            write(stage.dir, "models/x", b"a folder again")
        assert tree(site) == {"index.html": b"a file again", "models/x": b"a folder again"}


def test_without_state_the_versions_are_walked(site, tmp_path):
    for step in range(3):
        with staged_update(site) as stage:
            write(stage.dir, "only.html", b"%d" % step)
        assert tree(site) == {"only.html": b"%d" % step}


def test_a_real_site_folder_becomes_the_previous_version(tmp_path):
    out = tmp_path / "site"
    write(out, "index.html", b"old")
    write(out, "models/a/index.html", b"a")
    inode = (out / "models/a/index.html").stat().st_ino
    with staged_update(out, tmp_path / "state") as stage:
        assert stage.target == out
        stage.keep("models/a/index.html")
        write(stage.dir, "index.html", b"new")
    assert out.is_symlink() and tree(out) == {"index.html": b"new", "models/a/index.html": b"a"}
    assert (out / "models/a/index.html").stat().st_ino == inode
    assert len(versions(tmp_path)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site-versions", "site", "state"]


def test_one_build_at_a_time(site, tmp_path):
    with staged_update(site, tmp_path / "state"):
        with pytest.raises(SiteSwitchError, match="another build"):
            with staged_update(site, tmp_path / "state"):
                pass


def test_a_link_elsewhere_is_followed(tmp_path):
    real = tmp_path / "www" / "html"
    write(real, "index.html", b"old")
    (tmp_path / "site").symlink_to(real)
    assert switch_path(tmp_path / "site") == real
    with staged_update(tmp_path / "site") as stage:
        write(stage.dir, "index.html", b"new")
    assert real.is_symlink() and tree(real) == {"index.html": b"new"}


def test_atomic_write_leaves_no_temporary_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "x.torrent"
    atomic_write_bytes(target, b"old")
    monkeypatch.setattr(fsutil.os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert [p.name for p in tmp_path.iterdir()] == ["x.torrent"] and target.read_bytes() == b"old"


def build(site: Path, state: Path | None, expected: dict[str, bytes], changes: dict[str, bytes | None]) -> None:
    """One build of ``site`` from ``expected`` (updated in place): ``changes`` maps a path to its new bytes
    (staged) or None (dropped); every other file is kept. Then the site is checked file by file, and the
    kept files are the previous version's very files (hard links, not copies)."""
    before = site.resolve()
    inodes = {rel: (before / rel).stat().st_ino for rel in expected if rel not in changes}
    with staged_update(site, state) as stage:
        for rel, data in changes.items():
            if data is not None:
                write(stage.dir, rel, data)
        stage.kept.update(rel for rel in expected if rel not in changes)
    for rel, data in changes.items():
        if data is None:
            expected.pop(rel, None)
        else:
            expected[rel] = data
    assert tree(site) == expected
    assert {rel: (site / rel).stat().st_ino for rel in inodes} == inodes
    if state is not None:
        assert sorted(record(state, site.resolve()).files()) == sorted(expected)


def test_a_chain_of_small_builds_equals_full_builds(site, tmp_path):
    state = tmp_path / "state"
    expected = tree(site)
    steps: list[dict[str, bytes | None]] = [
        {"index.html": b"v2"},  # a version of links: the first one recycled next
        {"models/a/one/index.html": b"a2", "models/c/three/index.html": b"c1"},  # changed and added
        {"old/gone.txt": None, "index.html": b"v3"},  # dropped
        {"models/a/one/index.html": None, "models/a/one/row.json": b"r"},  # a file changed two builds ago goes
        {"index.html": b"v4"},
        {"models/b/two/index.html": b"b2", "models/c/three/index.html": None, "new/deep/file.txt": b"d"},
        {},  # nothing changed: the live version's list is the new one's
        {"new/deep/file.txt": b"d2", "models": None},
        {"old/gone.txt": b"back"},  # dropped, then back
    ]
    for step, changes in enumerate(steps):
        before = site.resolve().name
        build(site, state, expected, changes)
        if not changes or changes == {"index.html": b"v4"}:  # the same files: the list is shared, not written
            assert (state / f"{site.resolve().name}.list").stat().st_ino == (state / f"{before}.list").stat().st_ino
        assert sorted(p.name for p in state.iterdir()) == sorted(f"{name}.{kind}" for name in versions(tmp_path)
                                                                 for kind in ("files", "list"))
        full = tmp_path / f"full{step}"  # the same files built from nothing
        with staged_update(full, tmp_path / f"full-state{step}") as stage:
            for rel, data in expected.items():
                write(stage.dir, rel, data)
        assert tree(full) == tree(site)


def test_updates_touch_only_the_paths_two_builds_changed(site, tmp_path, monkeypatch):
    state = tmp_path / "state"
    expected = tree(site)
    for changes in ({"index.html": b"v2"}, {"models/a/one/index.html": b"a2"}):
        build(site, state, expected, changes)
    linked: list[str] = []
    monkeypatch.setattr(fsutil, "_files", lambda root: (_ for _ in ()).throw(AssertionError("no walk")) if
                        root.name != "stage" and not root.name.startswith(".new-") else iter_files(root))
    real_link = fsutil._link_kept
    monkeypatch.setattr(fsutil, "_link_kept", lambda current, new, kept, fresh:
                        (linked.extend(sorted(kept)), real_link(current, new, kept, fresh)))
    build(site, state, expected, {"models/b/two/index.html": b"b2"})
    # the recycled version lacks the last build's change, which this one keeps: only it is linked
    assert linked == ["models/a/one/index.html"]


def iter_files(root: Path):
    return (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("damage", ["missing", "garbage", "older layout", "count", "types", "live missing",
                                    "live garbage", "unlinked", "live short", "live duplicates",
                                    "size", "list missing", "live list missing"])
def test_a_damaged_or_missing_record_only_costs_a_walk(site, tmp_path, damage):
    state = tmp_path / "state"
    expected = tree(site)
    for changes in ({"index.html": b"v2"}, {"models/a/one/index.html": b"a2", "new.txt": b"n"}):
        build(site, state, expected, changes)
    live = site.resolve()
    inactive = next(p for p in (tmp_path / ".site-versions").iterdir() if p.name in versions(tmp_path)
                    and p != live)
    victim = live if damage.startswith("live") or damage == "unlinked" else inactive
    held = record(state, victim)
    path = state / f"{victim.name}.files"
    if damage in ("missing", "live missing"):
        path.unlink()
    elif damage in ("garbage", "live garbage"):
        path.write_bytes(b"\x00not marshal")
    elif damage == "older layout":
        path.write_bytes(marshal.dumps({rel: 1 for rel in held.files()}))
    elif damage == "count":
        path.write_bytes(marshal.dumps((fsutil._RECORD_LAYOUT, held.base, held.count + 1, len(held.blob), b"")))
    elif damage == "size":  # its list is not the one the record was written with
        path.write_bytes(marshal.dumps((fsutil._RECORD_LAYOUT, held.base, held.count, len(held.blob) - 1, b"")))
    elif damage == "types":
        path.write_bytes(marshal.dumps((fsutil._RECORD_LAYOUT, held.base, held.count, len(held.blob),
                                        held.changed)))
    elif damage in ("list missing", "live list missing"):
        path.with_suffix(".list").unlink()
    elif damage == "live short":  # it lacks files the build keeps
        files = [rel for rel in held.files() if rel not in ("index.html", "models/b/two/index.html")]
        fsutil._write_record(state, victim.name, replace(held, blob=fsutil._join(files), count=len(files)))
    elif damage == "live duplicates":  # counted once each: the files it lacks are not hidden
        files = [rel for rel in held.files() if rel != "index.html"] * 2
        fsutil._write_record(state, victim.name, replace(held, blob=fsutil._join(files), count=len(files)))
    else:  # a well-formed record made from another version: the two versions are compared file by file
        fsutil._write_record(state, victim.name, replace(held, base="another"))
    build(site, state, expected, {"models/b/two/index.html": b"b2", "new.txt": None})
    build(site, state, expected, {"index.html": b"v5"})  # and the records are whole again


def test_a_version_made_from_the_live_one_is_recycled_by_its_own_record(site, tmp_path, monkeypatch):
    state = tmp_path / "state"
    expected = tree(site)
    build(site, state, expected, {"index.html": b"v2"})
    monkeypatch.setattr(fsutil, "_switch", lambda *args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):  # killed before its switch: assembled, recorded, not live
        with staged_update(site, state) as stage:
            write(stage.dir, "models/a/one/index.html", b"never live")
            write(stage.dir, "killed.txt", b"k")
            stage.kept.update(rel for rel in expected if rel != "models/a/one/index.html")
    monkeypatch.undo()
    assert tree(site) == expected
    killed = max(versions(tmp_path))
    assert record(state, tmp_path / ".site-versions" / killed).base == site.resolve().name
    build(site, state, expected, {"models/b/two/index.html": b"b2"})  # it is the one recycled
    build(site, state, expected, {"index.html": b"v3"})


@pytest.mark.parametrize("where", ["_remove", "_place", "_link_kept", "_write_record"])
def test_a_build_killed_while_assembling_leaves_the_live_version(site, tmp_path, monkeypatch, where):
    state = tmp_path / "state"
    expected = tree(site)
    for changes in ({"index.html": b"v2"}, {"models/a/one/index.html": b"a2"}):
        build(site, state, expected, changes)
    live, before = site.resolve(), tree(site)
    real, calls = getattr(fsutil, where), []

    def killed(*args, **kwargs):
        calls.append(args)
        if len(calls) > 1 or where in ("_link_kept", "_write_record", "_remove"):
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(fsutil, where, killed)
    with pytest.raises(KeyboardInterrupt):
        with staged_update(site, state) as stage:
            write(stage.dir, "index.html", b"half")
            write(stage.dir, "models/c/three/index.html", b"c")
            stage.kept.update(rel for rel in expected if rel not in ("index.html", "old/gone.txt"))
    monkeypatch.undo()
    assert calls and site.resolve() == live and tree(site) == before
    build(site, state, expected, {"models/b/two/index.html": b"b2", "old/gone.txt": None})
    build(site, state, expected, {"index.html": b"v3"})


def test_a_version_that_would_be_mostly_replaced_is_made_afresh_and_the_old_one_deleted_aside(site, tmp_path,
                                                                                              monkeypatch):
    monkeypatch.setattr(fsutil, "FRESH_FROM", 0)
    state = tmp_path / "state"
    expected = tree(site)
    build(site, state, expected, {"index.html": b"v2", **{f"models/x/{i}/index.html": b"x" for i in range(12)}})
    placed: list[str] = []
    place = fsutil._place
    monkeypatch.setattr(fsutil, "_place", lambda src, root, rel, link=False: placed.append(rel)
                        or place(src, root, rel, link))
    # every file made again: the staging folder becomes the version, nothing placed into an old one
    previous = set(versions(tmp_path))
    build(site, state, expected, {rel: data + b"!" for rel, data in expected.items()})
    assert placed == [] and site.resolve().name not in previous
    # the next one would replace those files in the version before: it links the live ones afresh
    build(site, state, expected, {"index.html": b"v3"})
    assert sorted(placed) == sorted(rel for rel in expected if rel != "index.html")
    assert len(versions(tmp_path)) == 2
    # and the one after is made from the version before again, its few changes placed
    placed.clear()
    build(site, state, expected, {"models/a/one/index.html": b"a3", "old/gone.txt": None})
    assert sorted(placed) == ["index.html", "models/a/one/index.html"]
    # the versions left behind are renamed aside and deleted by a process of their own
    trash = tmp_path / ".site-versions"
    deadline = time.monotonic() + 20
    while any(p.name.startswith(".trash-") for p in trash.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(p.name for p in trash.iterdir() if p.name != ".lock") == versions(tmp_path)


def test_a_folder_another_process_deletes_is_left_to_it(tmp_path):
    # a build while the last one's deletion still runs starts another: it leaves that folder alone
    import fcntl

    folders = []
    for name in ("busy", "free"):
        (tmp_path / name / "deep").mkdir(parents=True)
        (tmp_path / name / "deep" / "file").write_bytes(b"x")
        folders.append(tmp_path / name)
    fd = os.open(folders[0], os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what the deleting process holds
        assert fsutil._delete_in_background(folders).wait(timeout=20) == 0
        assert (folders[0] / "deep" / "file").is_file() and not folders[1].exists()
    finally:
        os.close(fd)
    assert fsutil._delete_in_background(folders[:1]).wait(timeout=20) == 0
    assert not folders[0].exists()
    assert fsutil._delete_in_background([]) is None


def test_a_record_naming_changed_paths_out_of_the_version_touches_nothing_there(site, tmp_path):
    state = tmp_path / "state"
    expected = tree(site)
    build(site, state, expected, {"index.html": b"v2"})
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not the site's")
    live = record(state, site.resolve())
    fsutil._write_record(state, site.resolve().name,
                         replace(live, changed=[*live.changed, "../../outside.txt", str(outside), "", "a/../.."]))
    build(site, state, expected, {"models/a/one/index.html": b"a2"})
    assert outside.read_bytes() == b"not the site's"


needs_fadvise = pytest.mark.skipif(not hasattr(os, "posix_fadvise") or not os.path.isdir("/proc/self/fd"),
                                   reason="needs posix_fadvise and /proc")


def _advised(monkeypatch) -> list[str]:
    """The files ``posix_fadvise(WILLNEED)`` is called for, by name, in the order of the calls."""
    import threading

    seen: list[str] = []
    lock = threading.Lock()
    real = os.posix_fadvise

    def record(fd: int, offset: int, length: int, advice: int) -> None:
        assert advice == os.POSIX_FADV_WILLNEED and (offset, length) == (0, 0)
        with lock:
            seen.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real(fd, offset, length, advice)

    monkeypatch.setattr(os, "posix_fadvise", record)
    return seen


def _settle(check, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the read-ahead threads did not get there"
        time.sleep(0.01)


@needs_fadvise
def test_read_ahead_advises_regular_files_at_most_lead_ahead_of_their_use(tmp_path, monkeypatch):
    import threading

    names = [f"{i:02}.torrent" for i in range(12)]
    for name in names:
        (tmp_path / name).write_bytes(b"d4:infod4:name1:xee")
    os.mkfifo(tmp_path / "fifo")  # never opened: a FIFO without a writer, opened blocking, would hang
    (tmp_path / "folder").mkdir()
    paths = [str(tmp_path / n) for n in names[:3]] + [str(tmp_path / "fifo"), str(tmp_path / "missing"),
                                                     str(tmp_path / "folder")] + [str(tmp_path / n) for n in names[3:]]
    seen = _advised(monkeypatch)
    before = threading.active_count()
    with fsutil.ReadAhead(paths, lead=8, threads=3) as ahead:
        _settle(lambda: len(seen) == 5)  # the first 8 paths: 5 regular files, a FIFO, a missing path, a folder
        time.sleep(0.1)
        assert sorted(seen) == names[:5]  # and no further while nothing is used
        ahead.used(8)
        _settle(lambda: len(seen) == 12)
    assert sorted(seen) == names
    assert threading.active_count() == before


@needs_fadvise
def test_read_ahead_takes_paths_added_later_and_stops_while_waiting(tmp_path, monkeypatch):
    import threading

    for i in range(6):
        (tmp_path / f"{i}.torrent").write_bytes(b"x")
    seen = _advised(monkeypatch)
    before = threading.active_count()
    with fsutil.ReadAhead(more=True, lead=100) as ahead:
        ahead.add(str(tmp_path / f"{i}.torrent") for i in range(3))
        _settle(lambda: len(seen) == 3)
        ahead.add(str(tmp_path / f"{i}.torrent") for i in range(3, 6))
        _settle(lambda: len(seen) == 6)
        started = time.monotonic()
    assert time.monotonic() - started < 2  # the threads waiting for more paths end with the block
    assert sorted(seen) == [f"{i}.torrent" for i in range(6)]
    assert threading.active_count() == before
