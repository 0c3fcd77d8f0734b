"""Benchmark the staged update of a large site after one model changed: the code of a git ref (``main``)
against the working tree's, interleaved in the same run.

    python bench/bench_versions.py [--files 400000] [--work DIR] [--ref main] [--rounds 5]

Makes a fake site of ``--files`` files laid out as the site's (``models/Org/Name/{index.html,row.json,
x.torrent}`` and ``api/models/Org/Name.json`` per model, a few shared files), builds it twice with each
implementation (the first version, then one of links), then times rebuilds in which one model's files and
the shared listing files are staged and every other file is kept, as a one-torrent rebuild does: the
time of ``staged_update`` from the end of the build's writes (the kept set made, as the site build does)
to the switch, best and median of the rounds. ``--files 400000`` is a site of 100,000 models.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SHARED = ["index.html", "api/models.json", "search/index.json"]


def layout(files: int) -> list[str]:
    """The paths of a fake site of about ``files`` files (4 per model, plus the shared files)."""
    paths = list(SHARED)
    for i in range(max(1, (files - len(SHARED)) // 4)):
        org, name = f"org{i % 997}", f"model-{i}"
        paths += [f"models/{org}/{name}/{leaf}" for leaf in ("index.html", "row.json", "x.torrent")]
        paths.append(f"api/models/{org}/{name}.json")
    return paths


def write(root: Path, rel: str, data: bytes) -> None:
    path = root / rel
    try:
        path.write_bytes(data)
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def load(ref: str, work: Path):
    """The ``modelreg.fsutil`` of git ``ref`` (its own module: records of both layouts never mix)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:modelreg/fsutil.py"], check=True,
                            capture_output=True).stdout
    file = work / f"fsutil_{ref.replace('/', '_')}.py"
    file.write_bytes(source)
    spec = importlib.util.spec_from_file_location(f"fsutil_{ref}", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def setup(fsutil, root: Path, template: Path, paths: list[str]) -> tuple[Path, Path]:
    site, state = root / "site", root / "state"
    with fsutil.staged_update(site, state) as stage:
        stage.dir.rmdir()
        subprocess.run(["cp", "-al", str(template), str(stage.dir)], check=True)
    with fsutil.staged_update(site, state) as stage:  # a version of links: the next build recycles the first
        stage.kept.update(paths)
    return site, state


def rebuild(fsutil, site: Path, state: Path, paths: list[str], step: int) -> float:
    """Seconds from the end of a one-model rebuild's writes to its switch."""
    model = 4 * (step % ((len(paths) - len(SHARED)) // 4)) + len(SHARED)
    changed = SHARED + paths[model:model + 4]
    with fsutil.staged_update(site, state) as stage:
        for rel in changed:
            write(stage.dir, rel, b"step %d" % step)
        skip = set(changed)
        kept = [rel for rel in paths if rel not in skip]  # as Reuse.kept: a list the build extends
        start = time.perf_counter()
        stage.kept.update(kept)
    seconds = time.perf_counter() - start
    for rel in changed:
        assert (site / rel).read_bytes() == b"step %d" % step
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400_000)
    parser.add_argument("--work", type=Path, default=ROOT / ".bench" / "versions")
    parser.add_argument("--ref", default="main", help="the git ref of the implementation to compare with")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    from modelreg import fsutil as new

    impls = {args.ref: load(args.ref, args.work), "working tree": new}
    paths = layout(args.files)
    template = args.work / "template"
    start = time.perf_counter()
    for rel in paths:
        write(template, rel, b"x")
    print(f"{len(paths):,} files written in {time.perf_counter() - start:.1f} s; load {os.getloadavg()[0]:.1f}")
    sites = {}
    for name, module in impls.items():
        start = time.perf_counter()
        sites[name] = setup(module, args.work / name.replace(" ", "-"), template, paths)
        print(f"{name}: two first versions in {time.perf_counter() - start:.1f} s")
    times: dict[str, list[float]] = {name: [] for name in impls}
    for step in range(args.rounds):
        for name, module in impls.items():
            times[name].append(rebuild(module, *sites[name], paths, step))
    load_avg = os.getloadavg()[0]
    print(f"one model changed, {len(paths):,} files, {args.rounds} rounds (load {load_avg:.1f}):")
    for name, seconds in times.items():
        print(f"  {name:>14}: best {min(seconds) * 1000:7.1f} ms, median {statistics.median(seconds) * 1000:7.1f} ms")
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
