"""Rendering in worker processes (modelreg.site.workers): the same site as one process makes, the same
one-line errors, the previous site kept when a worker fails, and no process left behind."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from modelreg.config import Config
from modelreg.errors import BuildError, ModelregError
from modelreg.site import build as build_module
from modelreg.site import parsecache, render
from modelreg.site.build import build_site
from modelreg.site.cachedb import CacheDB
from modelreg.site.parsecache import identity
from modelreg.torrent import bencode
from tests.procs import children, kill_outlived

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from synth import generate  # noqa: E402

COUNT = 60


@pytest.fixture
def registry(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("MODELREG_CACHE_DIR", str(tmp_path / "cache"))
    generate(tmp_path / "registry", COUNT, corpus=None, seed=5)
    return tmp_path / "registry"


def _config(tmp_path: Path, registry: Path, out: str) -> Config:
    return Config(root=tmp_path).replace(registry=str(registry), out=out)


def _tree(site: Path) -> dict[str, bytes]:
    return {p.relative_to(site).as_posix(): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def _replace(path: Path, data: bytes) -> None:
    """A torrent re-made: new bytes renamed over the old file (a new inode, as git and editors do)."""
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(data)
    os.replace(fresh, path)


def _torrents(registry: Path) -> list[Path]:
    return sorted(registry.rglob("*.torrent"))


def test_workers_make_the_site_one_process_makes(registry: Path, tmp_path: Path):
    serial = build_site(_config(tmp_path, registry, "serial"), jobs=1)
    parallel = build_site(_config(tmp_path, registry, "parallel"), jobs=2)
    assert serial.rendered == parallel.rendered == COUNT
    assert _tree(tmp_path / "serial") == _tree(tmp_path / "parallel")
    assert multiprocessing.active_children() == []  # the workers ended with the build
    # a rebuild renders only the changed model, in a worker, and still matches
    path = _torrents(registry)[COUNT // 2]
    top = bencode.decode(path.read_bytes())
    top[b"creation date"] = top.get(b"creation date", 0) + 1
    _replace(path, bencode.encode(top))
    serial = build_site(_config(tmp_path, registry, "serial"), jobs=1)
    parallel = build_site(_config(tmp_path, registry, "parallel"), jobs=2)
    assert (serial.rendered, serial.reused) == (parallel.rendered, parallel.reused) == (1, COUNT - 1)
    assert _tree(tmp_path / "serial") == _tree(tmp_path / "parallel")


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_re_render_loads_no_catalog_torrents_fields(registry: Path, tmp_path: Path, monkeypatch, jobs: int):
    """Every model rendered again (a new title), each from the torrent and file list the parse cache
    keeps: the catalog's torrents, recalled without their fields, stay so (none is filled, in this process
    nor by pickling one for a worker), and a creation date out of range is still dropped with a problem."""
    path = _torrents(registry)[COUNT // 3]
    top = bencode.decode(path.read_bytes())
    top[b"creation date"] = -5
    _replace(path, bencode.encode(top))
    build_site(_config(tmp_path, registry, "site"), jobs=jobs)
    filled = []
    fill = parsecache._Recalled._fill
    monkeypatch.setattr(parsecache._Recalled, "_fill", lambda torrent: filled.append(torrent) or fill(torrent))
    config = _config(tmp_path, registry, "site").replace(title="Renamed")
    report = build_site(config, jobs=jobs)
    assert (report.rendered, report.reused) == (COUNT, 0)
    assert filled == []
    assert [p for _, p in report.model_problems if "creation date -5" in p]
    build_site(config.replace(out="fresh"), jobs=jobs, incremental=False)  # the same site, without caches
    assert _tree(tmp_path / "site") == _tree(tmp_path / "fresh")


def test_a_worker_makes_the_search_index_and_the_unchanged_files_of_it_stay(registry: Path, tmp_path: Path):
    site = tmp_path / "parallel"
    build_site(_config(tmp_path, registry, "parallel"), jobs=2)
    ids, column = (site / "search" / "ids" / "0.json").stat().st_mtime_ns, (site / "search" / "k" / "d.json").read_text()
    path = _torrents(registry)[COUNT // 2]  # made again later: its date changes, its id not
    top = bencode.decode(path.read_bytes())
    top[b"creation date"] = top.get(b"creation date", 0) + 86400 * 400
    _replace(path, bencode.encode(top))
    serial = build_site(_config(tmp_path, registry, "serial"), jobs=1)
    parallel = build_site(_config(tmp_path, registry, "parallel"), jobs=2)
    assert serial.models == parallel.models == COUNT
    assert _tree(tmp_path / "serial") == _tree(site)
    assert (site / "search" / "k" / "d.json").read_text() != column  # the index was made again
    assert (site / "search" / "ids" / "0.json").stat().st_mtime_ns == ids  # but this file was kept as it was


def test_workers_serve_the_torrents_of_a_build_without_a_cache(registry: Path, tmp_path: Path):
    """Without the parse cache's file the workers parse the torrents themselves, and serve those bytes."""
    build_site(_config(tmp_path, registry, "serial"), jobs=1, incremental=False)
    build_site(_config(tmp_path, registry, "parallel"), jobs=2, incremental=False)
    assert _tree(tmp_path / "serial") == _tree(tmp_path / "parallel")


def _after_catalog(monkeypatch, change) -> None:
    """Run ``change()`` once the catalog is read, before any model is rendered."""
    load = build_module.load_catalog

    def loading(*args, **kwargs):
        catalog = load(*args, **kwargs)
        change()
        return catalog

    monkeypatch.setattr(build_module, "load_catalog", loading)


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_torrent_rewritten_during_the_build_fails_it_and_keeps_the_site(registry: Path, tmp_path: Path,
                                                                          monkeypatch, jobs: int):
    config = _config(tmp_path, registry, "site")
    build_site(config, jobs=jobs)
    before = _tree(tmp_path / "site")
    path = _torrents(registry)[7]
    top = bencode.decode(path.read_bytes())
    top[b"comment"] = b"changed"
    _after_catalog(monkeypatch, lambda: _replace(path, bencode.encode(top)))
    (tmp_path / "cache").rename(tmp_path / "old-cache")  # a full build: every model is rendered
    with pytest.raises(BuildError) as failed:
        build_site(config, jobs=jobs)
    assert str(failed.value) == f"{path}: the file changed during the build; build again"
    assert failed.value.__cause__ is None  # no worker's traceback attached
    assert _tree(tmp_path / "site") == before
    assert multiprocessing.active_children() == []


def test_a_torrent_broken_during_the_build_fails_with_one_line(registry: Path, tmp_path: Path, monkeypatch):
    config = _config(tmp_path, registry, "site")
    build_site(config, jobs=2)
    before = _tree(tmp_path / "site")
    path = _torrents(registry)[3]
    _after_catalog(monkeypatch, lambda: _replace(path, b"d4:infoi1ee"))
    (tmp_path / "cache").rename(tmp_path / "old-cache")
    with pytest.raises(ModelregError) as failed:
        build_site(config, jobs=2)
    assert str(path) in str(failed.value) and "\n" not in str(failed.value)
    assert _tree(tmp_path / "site") == before


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_torrent_touched_during_the_build_is_checked_and_served(registry: Path, tmp_path: Path, monkeypatch,
                                                                  jobs: int):
    """Same bytes in a new file with the old modification time (the parse cache's key unchanged, but
    another inode and change time): read and hashed again, not copied unread."""
    build_site(_config(tmp_path, registry, "expected"), jobs=1)
    path = _torrents(registry)[11]
    copied = []
    copy = render._copy_unchanged
    monkeypatch.setattr(render, "_copy_unchanged", lambda *args: copied.append(args) or copy(*args))

    def touch() -> None:
        st = path.stat()
        _replace(path, path.read_bytes())
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    _after_catalog(monkeypatch, touch)
    (tmp_path / "cache").rename(tmp_path / "old-cache")
    build_site(_config(tmp_path, registry, "site"), jobs=jobs)
    assert _tree(tmp_path / "site") == _tree(tmp_path / "expected")
    if jobs == 1:
        # every other torrent copied unread; the touched one is parsed again (the parse cache's key has
        # its inode and change time) and served from those bytes, or, where asked, refused by its identity
        assert sorted(args[0] for args in copied if args[0] != path) == [p for p in _torrents(registry) if p != path]
        assert [copy(*args) for args in copied if args[0] == path] in ([], [False])


def test_copy_unchanged_copies_only_the_file_parsed(tmp_path: Path):
    source, dest = tmp_path / "a.torrent", tmp_path / "out.torrent"
    source.write_bytes(b"x" * 100_000)
    parsed = identity(source.stat())
    assert render._copy_unchanged(source, str(dest), parsed)
    assert dest.read_bytes() == source.read_bytes()
    dest.unlink()
    _replace(source, b"x" * 100_000)  # same size and bytes, another file
    assert not render._copy_unchanged(source, str(dest), parsed) and not dest.exists()
    assert not render._copy_unchanged(tmp_path / "missing", str(dest), parsed) and not dest.exists()


def test_jobs_below_one_is_refused(registry: Path, tmp_path: Path):
    with pytest.raises(BuildError, match="jobs must be at least 1, not 0"):
        build_site(_config(tmp_path, registry, "site"), jobs=0)


def test_a_read_only_cache_never_writes_or_deletes_its_file(tmp_path: Path):
    foreign = tmp_path / "foreign.sqlite"
    foreign.write_bytes(b"not sqlite at all")
    db = CacheDB(foreign, "CREATE TABLE t (k TEXT);", "header", readonly=True)
    assert db.row("SELECT count(*) FROM t") == (0,)  # empty, in memory
    db.commit()
    db.close()
    assert foreign.read_bytes() == b"not sqlite at all"
    good = tmp_path / "good.sqlite"
    writer = CacheDB(good, "CREATE TABLE t (k TEXT);", "header")
    writer.write("INSERT INTO t VALUES (?)", [("a",)])
    writer.commit()
    reader = CacheDB(good, "CREATE TABLE t (k TEXT);", "header", readonly=True)
    writer.write("INSERT INTO t VALUES (?)", [("b",)])  # not committed: not seen
    assert reader.row("SELECT k FROM t ORDER BY k") == ("a",) and reader.count("t") == 1
    reader.write("INSERT INTO t VALUES (?)", [("c",)])
    reader.commit()
    writer.commit()
    assert reader.count("t") == 2
    reader.close()
    writer.close()


KILLED = r"""
import sys
from modelreg.config import Config
from modelreg.site import workers
from modelreg.site.build import build_site
render_batch = workers._render_batch
def slow(batch):  # long enough to be caught rendering
    import time
    time.sleep(0.2)
    return render_batch(batch)
workers._render_batch = slow
build_site(Config().replace(registry=sys.argv[1], out=sys.argv[2]), jobs=2)
"""


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc")
def test_render_workers_die_with_a_killed_build(registry: Path, tmp_path: Path):
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen([sys.executable, "-c", KILLED, str(registry), str(tmp_path / "site")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while len(workers) < 2 and child.poll() is None and time.monotonic() < deadline:
        workers = children(child.pid)
        time.sleep(0.005)
    assert len(workers) == 2, "the build never started its render workers"
    left = kill_outlived(child, workers)
    assert not left, f"render workers {left} outlived their killed build"


def test_a_worker_that_dies_fails_the_build_with_one_line(registry: Path, tmp_path: Path, monkeypatch):
    from modelreg.site import workers

    config = _config(tmp_path, registry, "site")
    build_site(config, jobs=1)
    before = _tree(tmp_path / "site")
    (tmp_path / "cache").rename(tmp_path / "old-cache")
    monkeypatch.setattr(workers, "_render_batch", _die)
    with pytest.raises(BuildError, match="a render worker process ended abruptly") as failed:
        build_site(config, jobs=2)
    assert failed.value.__cause__ is None
    assert _tree(tmp_path / "site") == before
    assert multiprocessing.active_children() == []


def _die(batch: list) -> list:
    os._exit(3)


def test_by_default_workers_start_only_for_many_models(registry: Path, tmp_path: Path, monkeypatch):
    from modelreg.site import workers

    serial = build_site(_config(tmp_path, registry, "serial"), jobs=1)
    started = []
    executor = workers.ProcessPoolExecutor

    def counted(*args, **kwargs):
        started.append(args)
        return executor(*args, **kwargs)

    monkeypatch.setattr(workers, "ProcessPoolExecutor", counted)
    monkeypatch.setattr(workers, "default_jobs", lambda: 2)
    build_site(_config(tmp_path, registry, "few"))  # fewer than START_AFTER: none started
    assert started == [] and _tree(tmp_path / "few") == _tree(tmp_path / "serial")
    monkeypatch.setattr(workers, "START_AFTER", 10)  # the first 10 here, the rest in workers
    report = build_site(_config(tmp_path, registry, "many"))
    assert len(started) == 1 and report.rendered == serial.rendered == COUNT
    assert _tree(tmp_path / "many") == _tree(tmp_path / "serial")


def test_the_heap_is_frozen_while_models_render_and_a_callers_freeze_is_kept(registry: Path, tmp_path: Path,
                                                                             monkeypatch):
    # gc.collect(0) after each model must not walk everything the build made before (the catalog), and
    # forked workers must not write to the pages they share with the build: gc.freeze while rendering
    import gc

    if gc.get_freeze_count():
        pytest.skip("objects are frozen already in this process")
    seen = []
    real = render.render_model

    def spy(*args, **kwargs):
        seen.append(gc.get_freeze_count())
        return real(*args, **kwargs)

    monkeypatch.setattr(render, "render_model", spy)
    build_site(_config(tmp_path, registry, "site"), jobs=1, incremental=False)
    assert len(seen) == COUNT and min(seen) > 0
    assert gc.get_freeze_count() == 0
    gc.freeze()  # a caller's own: the build neither adds to nor unfreezes it
    try:
        frozen = gc.get_freeze_count()
        seen.clear()
        build_site(_config(tmp_path, registry, "again"), jobs=1, incremental=False)
        # frozen objects the build let go of leave the count (refcounting frees them): it never grows
        assert len(seen) == COUNT and max(seen) <= frozen
        assert 0 < gc.get_freeze_count() <= frozen
    finally:
        gc.unfreeze()
