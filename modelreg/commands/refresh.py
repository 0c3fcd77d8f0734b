"""``modelreg refresh``: fetch Hugging Face metadata into the registry's cache (registry/.metadata/).

Fetches every model whose cached metadata is missing, failed last time, or is older than --max-age,
a few requests at a time, retrying rate limits and server errors. Set HF_TOKEN for gated repositories
and HF_ENDPOINT (or hf_endpoint in modelreg.toml) for a mirror. Exit code 1 if any fetch failed.
"""

from __future__ import annotations

import argparse
import sys

from modelreg.commands import add_registry_options
from modelreg.commands.build import add_refresh_options, refresh_settings, site_config
from modelreg.hf.client import HubClient, hub_endpoint, hub_token
from modelreg.registry.catalog import load_catalog
from modelreg.registry.metacache import MetaCache
from modelreg.registry.refresh import refresh


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("refresh", help="fetch Hugging Face metadata into the registry's cache",
                                   description=__doc__.replace("`", ""))
    add_registry_options(parser, only="refresh")
    add_refresh_options(parser)
    parser.set_defaults(func=run, out=None, base_url=None)


def run(args: argparse.Namespace) -> int:
    config = site_config(args)
    settings = refresh_settings(args, tuple(args.only))
    registry = config.path(config.registry)
    catalog = load_catalog(registry)
    client = HubClient(hub_endpoint(config), hub_token(), settings.retry)
    report = refresh(catalog.models, MetaCache.for_registry(registry), client, settings)
    print(report.summary(), file=sys.stderr if report.failed else sys.stdout)
    return 1 if report.failed else 0
