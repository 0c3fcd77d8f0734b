"""When each torrent of a registry was last committed, from the registry's git history (if it is a checkout).

File modification times say when a file was copied, not when it changed: two copies of one registry
made a minute apart would give two sites. A commit date is the same in every clone. One ``git log`` call
reads the dates of every file (not one call per file: a registry holds thousands).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

#: Seconds a ``git log`` may take before the dates are given up (then they are unknown, not wrong).
GIT_TIMEOUT = 60


def commit_dates(registry: Path) -> dict[str, int]:
    """``{path relative to registry (posix): Unix time of the newest commit that touched it}``.

    Empty when ``registry`` is not inside a git work tree, git is missing or fails: dates are then
    unknown, never guessed. In a shallow clone the oldest commits fetched show every file as added
    then, which says nothing about when it changed: files whose newest commit is one of them get no date
    (clone with the history, e.g. ``fetch-depth: 0`` in GitHub Actions, to have them).
    """
    git = shutil.which("git")
    if git is None:
        return {}
    try:
        done = subprocess.run(
            [git, "-C", str(registry), "log", "--format=%x00%ct %H", "--name-only", "--relative", "--no-renames",
             "-z", "--", "."],
            capture_output=True, timeout=GIT_TIMEOUT, check=False,
        )
        if done.returncode != 0:
            return {}
        shallow = subprocess.run([git, "-C", str(registry), "rev-parse", "--git-path", "shallow"],
                                 capture_output=True, timeout=GIT_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return {}
    boundary: set[str] = set()
    if shallow.returncode == 0 and shallow.stdout.strip():
        path = registry / os.fsdecode(shallow.stdout.strip())
        try:
            boundary = set(path.read_text(encoding="ascii").split())
        except (OSError, UnicodeDecodeError):
            boundary = set()
    return parse_log(done.stdout, boundary)


def parse_log(output: bytes, boundary: set[str] | frozenset[str] = frozenset()) -> dict[str, int]:
    """Parse ``git log --format=%x00%ct %H --name-only -z``: ``\\0<time> <hash>\\0\\n<path>\\0<path>\\0...``
    per commit.

    A header is the field after an empty one (a path is never empty, so a file named ``2024`` is not taken
    for one). Newest commits come first, so each path's first date is its last change; a path first met in
    a ``boundary`` commit (a shallow clone's) is left out.
    """
    dates: dict[str, int] = {}
    seen: set[bytes] = set()
    when: int | None = None
    header = False
    for field in output.split(b"\0"):
        if not field:
            header = True
            continue
        if header:
            header = False
            stamp, _, commit = field.partition(b" ")
            when = int(stamp) if stamp.isdigit() else None
            if commit.decode("ascii", "replace") in boundary:
                when = None
            continue
        path = field.removeprefix(b"\n")
        if path and path not in seen:
            seen.add(path)
            if when is not None:
                dates[path.decode("utf-8", "surrogateescape")] = when
    return dates
