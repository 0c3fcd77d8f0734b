"""``modelreg mirror``: fill the web-seed cache with verified pieces of torrents ahead of time.

Each torrent's files are fetched from Hugging Face piece by piece, every piece checked against the
torrent's hashes. A gateway in mirror mode with the same ``--cache`` then serves these torrents even
while Hugging Face is unreachable. Running it again resumes where it stopped. With ``--registry DIR``
it also caches each model's Hugging Face metadata in ``DIR/.metadata`` when missing: the gateway's
Hugging Face API (``HF_ENDPOINT`` clients) reads it there, offline too.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from modelreg.commands.webseed import add_upstream_options, settings_from
from modelreg.errors import CatalogError, ConfigError, MetadataCacheError, ModelregError
from modelreg.hf.client import HubClient, hub_token
from modelreg.progress import byte_progress
from modelreg.registry.catalog import model_from
from modelreg.registry.metacache import MetaCache
from modelreg.registry.refresh import fetch_into
from modelreg.torrent.metainfo import Torrent
from modelreg.units import utc_timestamp
from modelreg.webseed.app import Gateway
from modelreg.webseed.routes import Served, ServeSet, parse_allow


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("mirror", help="download and verify torrents into the web-seed cache",
                                   description=__doc__.replace("`", ""))
    parser.add_argument("torrents", nargs="+", metavar="TORRENT", help=".torrent files to mirror")
    parser.add_argument("--repo", metavar="ORG/NAME@REV",
                        help="the repository revision (default: from a sidecar .json or the web seed)")
    parser.add_argument("--registry", metavar="DIR",
                        help="also cache the models' HF metadata in DIR/.metadata if missing (for HF_ENDPOINT clients)")
    add_upstream_options(parser)
    parser.set_defaults(func=run)


def served_from(path: Path, repo: str | None) -> Served:
    """The torrent and its repository revision: from --repo, its sidecar or its web seed."""
    torrent = Torrent.read(path)
    if repo:
        repo_id, revision = parse_allow(repo)
        return Served.of(repo_id, revision, torrent)
    try:
        model = model_from(path.resolve(), path.resolve().parent, torrent)
    except CatalogError as exc:
        raise ConfigError(f"{exc.path}: {exc.problem}; or name it with --repo ORG/NAME@REV") from exc
    if not model.pinned:
        raise ConfigError(f"{path}: no commit hash for {model.repo_id} (add a sidecar .json or use --repo)")
    return Served.of(model.repo_id, model.revision, torrent)


def run(args: argparse.Namespace) -> int:
    if not args.cache:
        raise ConfigError("modelreg mirror needs --cache DIR (the folder the gateway's mirror mode serves)")
    if args.repo and len(args.torrents) > 1:
        raise ConfigError("--repo names one repository: give one torrent with it")
    settings = settings_from(args, "mirror")
    items = [served_from(Path(p), args.repo) for p in args.torrents]
    failed = asyncio.run(_mirror(Gateway(settings, ServeSet(items)), items))
    if args.registry:
        failed |= _metadata(MetaCache.for_registry(args.registry), HubClient(settings.hf_endpoint, hub_token()), items)
    return failed


def _metadata(cache: MetaCache, client: HubClient, items: list[Served]) -> int:
    """Fetch the metadata of each mirrored revision that has none cached; 1 if any fetch failed."""
    failed = 0
    for served in items:
        try:
            entry = cache.load(served.repo_id, served.revision)
        except MetadataCacheError:
            entry = None
        if entry is not None and entry.meta is not None:
            continue
        error = fetch_into(cache, client, served.repo_id, served.revision, utc_timestamp())
        if error is not None:
            failed = 1
            print(f"error: {served.repo_id}@{served.revision[:12]}: no metadata cached: {error}", file=sys.stderr)
        else:
            print(f"{served.repo_id}@{served.revision[:12]}: metadata cached in {cache.root}")
    return failed


async def _mirror(gateway: Gateway, items: list[Served]) -> int:
    await gateway.start()
    failed = 0
    try:
        for served in items:
            store = gateway.cache.store(served)
            todo = store.missing(range(store.map.num_pieces))
            name = f"{served.repo_id}@{served.revision[:12]} ({served.torrent.name})"
            missing = sum(store.piece_payload(i) for i in todo)
            try:
                with byte_progress(missing, served.torrent.name) as advance:
                    gateway.fetcher.on_stored = advance
                    await gateway.fetcher.ensure(store, todo)
            except ModelregError as exc:
                failed += 1
                print(f"error: {name}: {exc}", file=sys.stderr)
                continue
            print(f"{name}: {store.map.num_pieces} pieces verified, {len(todo)} fetched, "
                  f"{store.stored_bytes} bytes cached")
    finally:
        await gateway.close()
    return 1 if failed else 0
