"""The one rule for the components of a torrent's name and file paths.

The reader (:mod:`modelreg.torrent.metainfo`), the creator (:mod:`modelreg.torrent.layout`, so every
source: a local folder or a hub repository) and the gateway's route matching all ask :func:`component_problem`,
so that a torrent ``create`` writes is one the reader accepts and a URL the gateway serves names a file the
torrent has; the site's caches and the staged update check the paths they read back from disk with it
too. It sits below every layer (as ``errors`` and ``fsutil`` do): it imports nothing of modelreg's.

A component is refused when it is empty, ``.`` or ``..``, or holds ``/`` or ``\\`` (a path separator on one
system or another: ``a\\..\\..\\b`` must not climb out of a folder on Windows), NUL, or another control
character (U+0001-U+001F, U+007F: they rewrite terminals and logs and no model repository needs them).
Anything else, spaces and any printable Unicode included, is a name.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def component_problem(part: str) -> str | None:
    """Why ``part`` cannot be one component of a torrent path (None: it can)."""
    if part in ("", ".", ".."):
        return "empty, '.' or '..'"
    if "/" in part or "\\" in part:
        return "contains a path separator ('/' or '\\')"
    if _CONTROL.search(part):
        return "contains a control character"
    return None


def path_problem(parts: tuple[str, ...] | list[str]) -> str | None:
    """Why the components ``parts`` cannot be a path in a torrent (None: they can), naming the bad component."""
    if not parts:
        return "the path is empty"
    for part in parts:
        problem = component_problem(part)
        if problem:
            return f"component {part!r} is {problem}" if problem.startswith("empty") else f"{part!r} {problem}"
    return None
