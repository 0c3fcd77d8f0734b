"""``modelreg build``: render the registry into a static site."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from modelreg.commands import add_registry_options
from modelreg.config import load_config
from modelreg.errors import ConfigError
from modelreg.registry.refresh import DEFAULT_JOBS, RefreshSettings, parse_age
from modelreg.site.build import build_site


def add_site_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that build the site (build, serve)."""
    add_registry_options(parser)
    parser.add_argument("--out", metavar="DIR", help="output folder (default: site/)")
    parser.add_argument("--base-url", metavar="URL", help="path the site is served under (default: /)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("build", help="build the static site (the default command)",
                                   description=__doc__.replace("`", ""))
    add_site_options(parser)
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 1, write nothing) if any torrent or sidecar is bad")
    parser.add_argument("--refresh-metadata", action="store_true",
                        help="first fetch Hugging Face metadata that is missing or older than --max-age into the "
                             "cache (without it the build never touches the network)")
    add_refresh_options(parser)
    parser.set_defaults(func=run)


def add_refresh_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that refresh the metadata cache (build --refresh-metadata, refresh)."""
    parser.add_argument("--max-age", metavar="AGE", default="7d",
                        help="refetch cached metadata older than this: 7d, 12h, 30m, 0 for all (default: 7d)")
    parser.add_argument("--jobs", metavar="N", type=int, default=DEFAULT_JOBS,
                        help=f"requests to the hub at a time (default: {DEFAULT_JOBS})")


def refresh_settings(args: argparse.Namespace, only: tuple[str, ...] = ()) -> RefreshSettings:
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {args.jobs}")
    return RefreshSettings(max_age=parse_age(args.max_age), jobs=args.jobs, only=only)


def site_config(args: argparse.Namespace):
    """The configuration file with the command line's options on top."""
    def absolute(path: str | None) -> str | None:  # command-line paths are relative to the working folder
        return str(Path(path).resolve()) if path else None

    config = load_config(args.config)
    out = os.path.abspath(args.out) if args.out else None  # a link to the site's current version: kept
    return config.replace(registry=absolute(args.registry), out=out, base_url=args.base_url)


def run(args: argparse.Namespace) -> int:
    refresh = refresh_settings(args) if args.refresh_metadata else None
    config = site_config(args)
    report = build_site(config, strict=args.strict, refresh_metadata=refresh)
    failed = report.errors or (report.refresh and report.refresh.failed)
    print(report.summary(), file=sys.stderr if failed else sys.stdout)
    if not config.site_url:
        print(f"warning: site_url is not set, so the feed's links are host-relative ({config.base_url}...): "
              "feed readers that do not resolve them cannot fetch the .torrent files", file=sys.stderr)
    # Like 'refresh': a fetch that failed is a failure (the site was built from what was cached).
    return 1 if report.refresh and report.refresh.failed else 0
