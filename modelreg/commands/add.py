"""``modelreg add``: make a model's torrent straight from its Hugging Face repository, streaming.

The files are hashed while they download and never written to disk, so a model larger than the machine's
disk can be published. The torrent and its sidecar (repository and commit) go into the registry at
``<registry>/<org>/<name>/<Name>.torrent``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelreg.commands import add_config_option, add_quiet_option
from modelreg.commands.create import add_torrent_options, check_torrent_options
from modelreg.config import load_config
from modelreg.errors import ConfigError, DownloadError, ModelregError
from modelreg.hf.client import hub_endpoint, hub_token
from modelreg.hf.source import DEFAULT_JOBS
from modelreg.registry.add import DEFAULT_WEBSEED_PREFIX, add_model, trending
from modelreg.registry.catalog import load_catalog


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
    add_config_option(parser)
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
    add_quiet_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    endpoint = hub_endpoint(config, args.hf_endpoint)
    token = hub_token()
    registry = Path(args.registry) if args.registry else config.path(config.registry)
    check_torrent_options(args)  # bad options fail before the hub is asked anything
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {args.jobs}")
    if args.trending is not None and args.trending < 0:
        raise ConfigError(f"--trending must be a number of models (0 or more), not {args.trending}")
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
