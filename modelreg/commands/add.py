"""``modelreg add``: make a model's torrent straight from its Hugging Face repository, streaming.

The files are hashed while they download and never written to disk, so a model larger than the machine's
disk can be published. The torrent and its sidecar (repository and commit) go into the registry at
``<registry>/<org>/<name>/<Name>.torrent``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from modelreg.commands.create import add_torrent_options
from modelreg.config import load_config
from modelreg.errors import ConfigError, DownloadError, ModelregError
from modelreg.fsutil import atomic_write_bytes
from modelreg.hf.client import hub_endpoint, hub_token
from modelreg.hf.retry import RetryPolicy
from modelreg.hf.source import (
    CHUNK_SIZE,
    DEFAULT_JOBS,
    HfSource,
    Snapshot,
    fetch_snapshot,
    hf_webseed_url,
    webseed_url,
)
from modelreg.progress import byte_progress
from modelreg.registry.catalog import load_catalog
from modelreg.torrent.create import create_torrent, write_torrent
from modelreg.torrent.layout import Mode
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
    hash it and write the torrent and its sidecar into ``registry``. Nothing is written on failure."""
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise DownloadError(f"{repo_id!r} is not a repository id: use <org>/<name>")
    if hf_webseed and file is None:
        raise DownloadError("--hf-webseed needs --file: HF's resolve layout only serves single-file torrents")
    if webseed_prefix and urlsplit(webseed_prefix).scheme not in ("http", "https"):
        raise ConfigError(f"the web seed prefix must be an http(s) URL, not {webseed_prefix!r}")
    snapshot = fetch_snapshot(repo_id, revision, endpoint=endpoint, token=token, retry=retry)
    source = HfSource(snapshot, endpoint=endpoint, token=token, paths=[file] if file else None,
                      single_file=file is not None, check_lfs=check_lfs, jobs=jobs, chunk_size=chunk_size,
                      retry=retry)
    target = torrent_path(registry, snapshot, source.name)
    if target.exists() and not replace:
        raise DownloadError(f"{target}: already in the registry; pass --force to replace it")
    if hf_webseed:
        webseeds = [hf_webseed_url(endpoint, snapshot, file)]
    else:
        webseeds = [webseed_url(webseed_prefix, snapshot)] if webseed_prefix else []
    total = sum(f.size for f in source.files)
    started = time.perf_counter()
    with source, byte_progress(total, f"streaming {snapshot.repo_id}", quiet=quiet) as progress:
        data = create_torrent(source, piece_length=piece_length, mode=mode, webseeds=webseeds,
                              trackers=trackers, progress=progress)
    seconds = time.perf_counter() - started
    sidecar = target.with_suffix(".json")
    write_torrent(data, target)
    try:
        body = json.dumps({"repo_id": snapshot.repo_id, "revision": snapshot.commit}, indent=2) + "\n"
        atomic_write_bytes(sidecar, body.encode())
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise DownloadError(f"{sidecar}: cannot write: {exc.strerror or exc}") from exc
    torrent = Torrent.from_bytes(data, source=str(target))
    return Added(target, sidecar, snapshot, len(source.files), total, torrent.infohash_v1, torrent.infohash_v2,
                 seconds)


def trending(count: int, *, endpoint: str, token: str | None = None) -> list[str]:
    """The ids of the ``count`` models trending on the hub now."""
    import httpx2
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        models = HfApi(endpoint=endpoint, token=token or False).list_models(sort="trending_score", limit=count)
        return [m.id for m in models]
    except (HfHubHTTPError, httpx2.TransportError, OSError) as exc:
        raise DownloadError(f"cannot list trending models on {endpoint}: {exc}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "add", help="make a torrent from a Hugging Face repository, streaming (no download to disk)",
        description=__doc__.replace("`", ""),
        epilog="Web seed: by default the gateway layout <prefix>/v1/<org>/<name>/<commit>/ with the prefix "
        f"{DEFAULT_WEBSEED_PREFIX} (change it with --webseed-prefix). HF_TOKEN, if set, is sent to the hub "
        "(never to its CDN) for gated repositories.")
    parser.add_argument("repo_ids", nargs="*", metavar="ORG/NAME", help="Hugging Face repository id(s)")
    parser.add_argument("--trending", metavar="N", type=int,
                        help="also add the N models trending on the hub now")
    parser.add_argument("--revision", metavar="REV",
                        help="branch, tag or commit (default: main); the torrent pins the commit it resolves to")
    parser.add_argument("--file", metavar="PATH",
                        help="make a single-file torrent of this one file of the repository")
    add_torrent_options(parser)
    parser.add_argument("--registry", metavar="DIR",
                        help="registry folder (default: the config's registry, registry/)")
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: modelreg.toml if present)")
    seed = parser.add_mutually_exclusive_group()
    seed.add_argument("--webseed-prefix", metavar="URL", default=DEFAULT_WEBSEED_PREFIX,
                      help=f"web seed gateway prefix (default: {DEFAULT_WEBSEED_PREFIX})")
    seed.add_argument("--hf-webseed", action="store_true",
                      help="use HF's resolve/<commit>/ URL as the web seed; only meaningful for single-file "
                      "torrents (--file), since clients append the torrent name to the URL")
    seed.add_argument("--no-webseed", dest="webseed_prefix", action="store_const", const=None,
                      help="no web seed")
    parser.add_argument("--no-lfs-check", dest="check_lfs", action="store_false",
                        help="do not check LFS files against the SHA-256 the hub lists for them (saves one "
                        "hash pass, about a third of the CPU time)")
    parser.add_argument("--jobs", metavar="N", type=int, default=DEFAULT_JOBS,
                        help=f"parallel downloads of 16 MiB ranges (default: {DEFAULT_JOBS})")
    parser.add_argument("--hf-endpoint", metavar="URL",
                        help="the hub (default: the config's hf_endpoint, HF_ENDPOINT, https://huggingface.co)")
    parser.add_argument("--skip-existing", action="store_true",
                        help="skip repositories that already have a torrent in the registry")
    parser.add_argument("--force", action="store_true", help="replace a torrent already at the same path")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    endpoint = hub_endpoint(config, args.hf_endpoint)
    token = hub_token()
    registry = Path(args.registry) if args.registry else config.path(config.registry)
    repo_ids = list(args.repo_ids)
    if args.trending:
        repo_ids += trending(args.trending, endpoint=endpoint, token=token)
    repo_ids = list(dict.fromkeys(repo_ids))
    if not repo_ids:
        raise DownloadError("name a repository (ORG/NAME) or pass --trending N")
    if len(repo_ids) > 1 and (args.revision or args.file):
        raise DownloadError("--revision and --file apply to one repository only")
    if args.skip_existing and registry.is_dir():
        present = {m.repo_id.lower() for m in load_catalog(registry).models}
        for repo_id in [r for r in repo_ids if r.lower() in present]:
            print(f"skipped {repo_id}: already in {registry}")
        repo_ids = [r for r in repo_ids if r.lower() not in present]
    failed = 0
    for repo_id in repo_ids:
        try:
            added = add_model(
                repo_id, registry, revision=args.revision, file=args.file, endpoint=endpoint, token=token,
                piece_length=args.piece_length, mode=args.mode, webseed_prefix=args.webseed_prefix,
                hf_webseed=args.hf_webseed, trackers=tuple(args.tracker), check_lfs=args.check_lfs, jobs=args.jobs,
                replace=args.force, quiet=args.quiet,
            )
        except ModelregError as exc:
            if len(repo_ids) == 1:
                raise
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        rate = added.size / added.seconds / 1e6 if added.seconds else 0
        print(f"wrote {added.torrent}")
        print(f"  {added.snapshot.repo_id} at {added.snapshot.commit}: {added.files} file(s), {added.size} bytes "
              f"streamed in {added.seconds:.1f} s ({rate:.0f} MB/s)")
        if added.infohash_v1:
            print(f"  infohash v1 {added.infohash_v1}")
        if added.infohash_v2:
            print(f"  infohash v2 {added.infohash_v2}")
        sys.stdout.flush()
    return 1 if failed else 0
