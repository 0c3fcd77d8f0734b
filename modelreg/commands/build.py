"""``modelreg build``: render the registry into a static site."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..builder import build_site
from ..config import load_config


def add_site_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by the commands that build the site (build, serve)."""
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: modelreg.toml if present)")
    parser.add_argument("--registry", metavar="DIR", help="folder of .torrent files (default: registry/)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: site/)")
    parser.add_argument("--base-url", metavar="URL", help="path the site is served under (default: /)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("build", help="build the static site (the default command)",
                                   description=__doc__.replace("`", ""))
    add_site_options(parser)
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 1, write nothing) if any torrent or sidecar is bad")
    parser.set_defaults(func=run)


def site_config(args: argparse.Namespace):
    """The configuration file with the command line's options on top."""
    def absolute(path: str | None) -> str | None:  # command-line paths are relative to the working folder
        return str(Path(path).resolve()) if path else None

    config = load_config(args.config)
    return config.replace(registry=absolute(args.registry), out=absolute(args.out), base_url=args.base_url)


def run(args: argparse.Namespace) -> int:
    report = build_site(site_config(args), strict=args.strict)
    print(report.summary(), file=sys.stderr if report.errors else sys.stdout)
    return 0
