"""kill -9 at any moment of a build (issue 15, items 9 and 10).

A reader of the site folder must see the previous build or the new one, never a mix, whenever the
build dies; and the parse workers of a killed build must not outlive it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from hostile import PYTHON, REV, add_model, subprocess_env

from tests.procs import children, kill_outlived

# A build of modelreg.toml's site. It says when it starts, and when the switch begins; the switch is
# slowed a little (a sleep after the new link is made and before it replaces the old one) so that kills
# land inside it too.
BUILD = r"""
import os, sys, time
from modelreg import fsutil
from modelreg.config import load_config
from modelreg.site.build import build_site

def say(*words):  # one write per line: lines of the zygote and its builds never interleave
    os.write(1, (" ".join(map(str, words)) + "\n").encode())
real_symlink, real_replace = os.symlink, os.replace
def symlink(*args, **kwargs):
    say("switch")
    real_symlink(*args, **kwargs)
    time.sleep(0.02)
def replace(src, dst, **kwargs):  # renames into place take a little longer, the switch itself more
    time.sleep(0.01 if "-link-" in str(src) else 0.002)
    real_replace(src, dst, **kwargs)
fsutil.os.symlink, fsutil.os.replace = symlink, replace
def build(config):
    say("start")
    build_site(load_config(config))
    say("done")
"""
CHILD = BUILD + "build(sys.argv[1])\n"
# The same, in processes forked from one that imported modelreg once (a Python start costs a second
# on a loaded machine): one config path per line in, "pid N", the build's lines, "exit N" out.
ZYGOTE = BUILD + r"""
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        try:
            build(line.strip())
        finally:
            os._exit(0)
    say("pid", pid)
    say("exit", os.waitpid(pid, 0)[1])
"""

MODELS = 40


def _tree(root: Path) -> dict[str, str]:
    """The site as a reader sees it: every file through the link, by content."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            out[os.path.relpath(path, root)] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
    return out


def _set_state(registry: Path, config: Path, state: int) -> None:
    """State 0-3 of the registry and config: each differs from the one before in a different way."""
    title = "Registry B" if state in (1, 2) else "Registry A"  # every page changes
    config.write_text(f'title = "{title}"\nregistry = "registry"\nout = "site"\n')
    for i in range(MODELS):
        repo = f"Org{i % 7}/Model-{i}"
        if state == 3 and i == 5:  # one model gone
            shutil.rmtree(registry / repo, ignore_errors=True)
            continue
        date = 1_700_000_000 + i + (1000 if state == 2 and i == 9 else 0)  # one torrent changed
        path = registry / repo / f"Model-{i}.torrent"
        if not path.exists() or i == 9:
            add_model(registry, repo, sidecar={"repo_id": repo, "revision": REV}, creation_date=date,
                      size=1000 + i)


@pytest.fixture(scope="module")
def states(tmp_path_factory) -> tuple[Path, dict[int, dict[str, str]]]:
    """A project folder, and the site of each state built whole into a folder of its own."""
    project = tmp_path_factory.mktemp("kill")
    expected = {}
    zygote = Zygote()
    for state in range(4):
        ref = tmp_path_factory.mktemp(f"ref{state}")
        _set_state(ref / "registry", ref / "modelreg.toml", state)
        zygote.build(ref / "modelreg.toml")
        expected[state] = _tree(ref / "site")
    zygote.close()
    assert len({tuple(sorted(t.items())) for t in expected.values()}) == 4
    return project, expected


class Zygote:
    """The process builds are forked from; its output is the builds' lines and its own, interleaved."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([PYTHON, "-c", ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=subprocess_env())
        self.lines: list[str] = []

    def _next(self) -> str:
        if self.lines:
            return self.lines.pop(0)
        line = self.process.stdout.readline()
        assert line, "the zygote died"
        return line.strip()

    def start(self, config: Path) -> int:
        self.process.stdin.write(f"{config}\n")
        self.process.stdin.flush()
        seen = []
        while not (line := self._next()).startswith("pid "):
            seen.append(line)  # the build's first lines can come before its pid
        self.lines = seen + self.lines
        return int(line.split()[1])

    def wait_for(self, word: str) -> bool:
        """Read the build's lines up to ``word`` (True) or its end (False, the end line kept)."""
        while (line := self._next()) != word:
            if line.startswith("exit"):
                self.lines.insert(0, line)
                return False
        return True

    def finish(self) -> str:
        """Wait for the build's end; its wait status line."""
        while not (line := self._next()).startswith("exit"):
            pass
        return line

    def build(self, config: Path) -> None:
        self.start(config)
        assert self.finish() == "exit 0"

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


def test_a_killed_build_leaves_the_previous_or_the_new_site(states):
    project, expected = states
    site = project / "site"
    rng = random.Random(15)
    state = 0
    _set_state(project / "registry", project / "modelreg.toml", state)
    zygote = Zygote()
    start = time.perf_counter()
    zygote.build(project / "modelreg.toml")  # how long a build of every page takes, for the kill times
    full = time.perf_counter() - start
    outcomes = []
    for trial in range(20):
        if trial in (0, 10) and site.is_symlink():  # a site folder of the old layout: a real folder
            live = site.resolve()
            site.unlink()
            shutil.copytree(live, site)
        target = (state + 1) % 4
        _set_state(project / "registry", project / "modelreg.toml", target)
        pid = zygote.start(project / "modelreg.toml")
        if zygote.wait_for("switch" if trial % 2 else "start"):
            time.sleep(rng.uniform(0, 0.04) if trial % 2 else rng.uniform(0, full))
            with contextlib.suppress(ProcessLookupError):  # it may have finished already
                os.kill(pid, signal.SIGKILL)
        zygote.finish()
        seen = _tree(site)
        assert seen in (expected[state], expected[target]), f"trial {trial}: a mix of {state} and {target}"
        outcomes.append("new" if seen == expected[target] else "previous")
        state = target if seen == expected[target] else state
        _set_state(project / "registry", project / "modelreg.toml", state)
    zygote.build(project / "modelreg.toml")  # and the next build completes whatever was left
    zygote.close()
    assert _tree(site) == expected[state]
    versions = [p for p in (project / ".site-versions").iterdir() if not p.name.startswith(".")]
    assert len(versions) == 2  # the current and the previous; the rest was collected
    print("outcomes:", outcomes)


@pytest.mark.skipif(not Path("/proc").is_dir() or (os.cpu_count() or 1) < 2, reason="needs /proc and 2 cores")
def test_parse_workers_die_with_a_killed_build(tmp_path: Path):
    registry = tmp_path / "registry"
    for i in range(1200):  # enough new torrents for worker processes (200 per worker)
        add_model(registry, f"Org{i % 13}/M-{i}", size=400 * 16384)
    (tmp_path / "modelreg.toml").write_text('registry = "registry"\nout = "site"\n')
    child = subprocess.Popen([PYTHON, "-c", CHILD, str(tmp_path / "modelreg.toml")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=subprocess_env())
    workers: set[int] = set()
    deadline = time.monotonic() + 60
    while not workers and child.poll() is None and time.monotonic() < deadline:
        workers = children(child.pid)
        time.sleep(0.005)
    assert workers, "the build never started its parse workers"
    left = kill_outlived(child, workers)
    assert not left, f"parse workers {left} outlived their killed build"
