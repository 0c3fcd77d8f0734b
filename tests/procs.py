"""Processes as ``/proc`` shows them (Linux): the tests that kill a build check its workers die with it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path


def children(pid: int) -> set[int]:
    """The processes whose parent is ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry))
    return found


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, dead but not yet waited for, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kill_outlived(child: subprocess.Popen, workers: set[int], within: float = 10.0) -> list[int]:
    """SIGKILL ``child``, then the ``workers`` still alive ``within`` seconds later (so none leaks into the
    rest of the suite); returns those, which should have died with it."""
    child.send_signal(signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    left = [w for w in workers if alive(w)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    return left
