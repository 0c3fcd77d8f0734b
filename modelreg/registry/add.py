"""Add a model to the registry straight from its Hugging Face repository: stream, hash, check, then write.

The files are hashed while they download and never written to disk. The torrent and its sidecar
(repository and commit) go to ``<registry>/<org>/<name>/<Name>.torrent`` only once the torrent has been
made, read back and checked: a failed ``add`` writes nothing.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from modelreg.config import WEBSEED_SCHEMES, check_url
from modelreg.errors import DownloadError
from modelreg.fsutil import atomic_write_bytes
from modelreg.hf.retry import RetryPolicy
from modelreg.hf.snapshot import Snapshot, fetch_snapshot, hf_webseed_url, webseed_url
from modelreg.hf.source import CHUNK_SIZE, DEFAULT_JOBS, HfSource
from modelreg.progress import byte_progress
from modelreg.registry.catalog import COMMIT, REPO_ID
from modelreg.torrent.create import create_torrent, write_torrent
from modelreg.torrent.layout import Mode, plan_layout
from modelreg.torrent.metainfo import Torrent

#: The web seed gateway of the public registry (``<prefix>/v1/<org>/<name>/<commit>/``).
DEFAULT_WEBSEED_PREFIX = "https://seed.modelregistry.io/"


@dataclass(frozen=True)
class Added:
    """What one ``add`` wrote."""

    torrent: Path
    sidecar: Path
    snapshot: Snapshot
    files: int
    size: int
    infohash_v1: str | None
    infohash_v2: str | None
    seconds: float


def torrent_path(registry: Path, snapshot: Snapshot, name: str) -> Path:
    """``<registry>/<org>/<name>/<torrent name>.torrent``, folders in lower case like the public registry."""
    return registry / snapshot.org.lower() / snapshot.name.lower() / f"{name}.torrent"


def followed_branch(revision: str | None) -> str | None:
    """The branch a requested revision names: ``main`` when none was asked for, None for a commit hash."""
    if revision is None:
        return "main"
    return None if COMMIT.fullmatch(revision) else revision


def add_model(
    repo_id: str,
    registry: Path,
    *,
    revision: str | None = None,
    file: str | None = None,
    endpoint: str,
    token: str | None = None,
    piece_length: int | None = None,
    mode: Mode = "hybrid",
    webseed_prefix: str | None = DEFAULT_WEBSEED_PREFIX,
    hf_webseed: bool = False,
    trackers: tuple[str, ...] = (),
    check_lfs: bool = True,
    jobs: int = DEFAULT_JOBS,
    chunk_size: int = CHUNK_SIZE,
    retry: RetryPolicy = RetryPolicy(),
    replace: bool = False,
    quiet: bool = True,
) -> Added:
    """Stream ``repo_id`` at ``revision`` (or only its ``file``, as a single-file torrent) from the hub,
    hash it and write the torrent and its sidecar into ``registry``.

    Everything that can be checked is checked before anything is written: the repository id, the options,
    the hub's answer, every file path (:mod:`modelreg.paths`) and the torrent itself, read back.

    Raises:
        DownloadError: the repository cannot be listed or streamed, or its torrent is already there.
        ConfigError: a bad option (web seed prefix).
        CreateError: a file cannot be part of a torrent (a bad name, a hash mismatch).
        TorrentError: the torrent made does not read back (never expected; nothing is written).
    """
    if not REPO_ID.fullmatch(repo_id):
        raise DownloadError(f"{repo_id!r} is not a repository id: use <org>/<name>")
    if hf_webseed and file is None:
        raise DownloadError("--hf-webseed needs --file: HF's resolve layout only serves single-file torrents")
    if webseed_prefix:
        check_url(webseed_prefix, "the web seed prefix", WEBSEED_SCHEMES)
    snapshot = fetch_snapshot(repo_id, revision, endpoint=endpoint, token=token, retry=retry)
    if snapshot.repo_id.lower() != repo_id.lower() or not REPO_ID.fullmatch(snapshot.repo_id):
        raise DownloadError(f"{repo_id}: the hub answered for another repository, {snapshot.repo_id!r}")
    source = HfSource(snapshot, endpoint=endpoint, token=token, paths=[file] if file else None,
                      single_file=file is not None, check_lfs=check_lfs, jobs=jobs, chunk_size=chunk_size,
                      retry=retry)
    if hf_webseed:
        webseeds = [hf_webseed_url(endpoint, snapshot, file)]
    else:
        webseeds = [webseed_url(webseed_prefix, snapshot)] if webseed_prefix else []
    total = sum(f.size for f in source.files)
    started = time.perf_counter()
    with source:
        plan_layout(source, piece_length=piece_length, mode=mode)  # refuses bad names before any download
        target = torrent_path(registry, snapshot, source.name)
        if target.exists() and not replace:
            raise DownloadError(f"{target}: already in the registry; pass --force to replace it")
        with byte_progress(total, f"streaming {snapshot.repo_id}", quiet=quiet) as progress:
            data = create_torrent(source, piece_length=piece_length, mode=mode, webseeds=webseeds,
                                  trackers=trackers, progress=progress)
    seconds = time.perf_counter() - started
    torrent = Torrent.from_bytes(data, source=str(target))
    sidecar = target.with_suffix(".json")
    fields = {"repo_id": snapshot.repo_id, "revision": snapshot.commit}
    branch = followed_branch(revision)
    if branch:  # get places refs/<branch> from it (a pinned commit asked for names no branch)
        fields["branch"] = branch
    body = json.dumps(fields, indent=2) + "\n"
    write_torrent(data, target)
    try:
        atomic_write_bytes(sidecar, body.encode())
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise DownloadError(f"{sidecar}: cannot write: {exc.strerror or exc}") from exc
    return Added(target, sidecar, snapshot, len(source.files), total, torrent.infohash_v1, torrent.infohash_v2,
                 seconds)


def trending(count: int, *, endpoint: str, token: str | None = None) -> list[str]:
    """The ids of the ``count`` models trending on the hub now.

    Raises:
        DownloadError: the hub could not be reached or refused the listing.
    """
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        models = HfApi(endpoint=endpoint, token=token or False).list_models(sort="trending_score", limit=count)
        return [m.id for m in models]
    except (HfHubHTTPError, httpx2.TransportError, OSError) as exc:
        raise DownloadError(f"cannot list trending models on {endpoint}: {exc}") from None
