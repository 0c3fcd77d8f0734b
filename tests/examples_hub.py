"""Put models on the fake hub and their torrents (with sidecars pinning the revision) in a registry.

Used by the hub and refresh tests, and to regenerate the bundled example registry's metadata cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from fakehub import FakeHub, Repo
from ltutil import make_torrent

CARD = "# {name}\n\nA test model served by the fake hub.\n"


def publish(
    hub: FakeHub,
    registry: Path,
    repo_id: str,
    files: dict[str, bytes],
    *,
    torrent_files: dict[str, bytes] | None = None,
    pin: bool = True,
    single_file: bool = False,
    **meta,
) -> Repo:
    """Add ``repo_id`` with ``files`` (and a card) to ``hub``, and a torrent of the same files to ``registry``.

    ``torrent_files`` makes the torrent from other files (a stale torrent); ``pin`` writes a sidecar with the
    commit, else the revision is unknown (main branch); ``single_file`` makes a torrent of the one file.
    """
    org, name = repo_id.split("/")
    meta.setdefault("card", CARD.format(name=name))
    repo = hub.add_repo(repo_id, files, **meta)
    content = torrent_files
    if content is None:
        content = dict(files) if single_file else {p: e.content for p, e in repo.files.items() if p != ".gitattributes"}
    folder = registry / org / name
    folder.mkdir(parents=True, exist_ok=True)
    src = registry.parent / "src" / org / name
    if single_file:
        (path, data), = content.items()
        torrent = make_torrent(src, {path: data})
    else:
        torrent = make_torrent(src, {f"{name}/{p}": data for p, data in content.items()})
    (folder / f"{name}.torrent").write_bytes(torrent)
    if pin:
        (folder / f"{name}.json").write_text(json.dumps({"repo_id": repo_id, "revision": repo.sha}))
    return repo
