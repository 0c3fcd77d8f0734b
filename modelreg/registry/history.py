"""When each torrent of a registry was last committed, from the registry's git history (if it is a checkout).

File modification times say when a file was copied, not when it changed: two copies of one registry
made a minute apart would give two sites. A commit date is the same in every clone. One ``git log`` call
reads the dates of every file (not one call per file: a registry holds thousands).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

#: Seconds a ``git log`` may take before the dates are given up (then they are unknown, not wrong).
GIT_TIMEOUT = 60


def commit_dates(registry: Path) -> dict[str, int]:
    """``{path relative to registry (posix): Unix time of the newest commit that touched it}``.

    Empty when ``registry`` is not inside a git work tree, git is missing or fails: dates are then
    unknown, never guessed.
    """
    git = shutil.which("git")
    if git is None:
        return {}
    try:
        done = subprocess.run(
            [git, "-C", str(registry), "log", "--format=%x00%ct", "--name-only", "--relative", "--no-renames",
             "-z", "--", "."],
            capture_output=True, timeout=GIT_TIMEOUT, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if done.returncode != 0:
        return {}
    return parse_log(done.stdout)


def parse_log(output: bytes) -> dict[str, int]:
    """Parse ``git log --format=%x00%ct --name-only -z``: ``\\0<time>\\0\\n<path>\\0<path>\\0...`` per commit.

    A time is the field after an empty one (a path is never empty, so a file named ``2024`` is not taken
    for one). Newest commits come first, so each path's first date is its last change.
    """
    dates: dict[str, int] = {}
    when: int | None = None
    header = False
    for field in output.split(b"\0"):
        if not field:
            header = True
            continue
        if header:
            header = False
            when = int(field) if field.isdigit() else None
            continue
        path = field.removeprefix(b"\n")
        if when is not None and path:
            dates.setdefault(path.decode("utf-8", "surrogateescape"), when)
    return dates
