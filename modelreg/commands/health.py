"""``modelreg health``: check the swarm and the web seeds of every torrent into registry/.health/.

Scrapes every tracker the torrents (and modelreg.toml's trackers) name for both infohashes, looks
them up in the DHT, and asks each web seed for the first byte of the torrent's first file. The
results go beside the metadata cache, one file per model, so that the site build shows them without
touching the network. A check that fails keeps the previous figures and records the failure; the
exit code is 0 even then (a tracker being down is news, not an error), 1 when files cannot be written.
"""

from __future__ import annotations

import argparse

from modelreg.commands import add_registry_options
from modelreg.commands.build import site_config
from modelreg.errors import ConfigError
from modelreg.health.check import HealthSettings, check_health
from modelreg.health.dht import DhtSettings
from modelreg.registry.catalog import REPO_ID, load_catalog
from modelreg.registry.health import HealthStore


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("health", help="check seeders, leechers and web seeds into registry/.health/",
                                   description=__doc__.replace("`", ""))
    add_registry_options(parser, only="check")
    parser.add_argument("--jobs", metavar="N", type=int, default=32, help="requests in flight (default: 32)")
    parser.add_argument("--timeout", metavar="S", type=float, default=10.0,
                        help="seconds per request; also the DHT lookups' bound, plus 1 s per 800 infohashes "
                             "to start them (default: 10)")
    parser.add_argument("--no-dht", action="store_true", help="do not look the torrents up in the DHT")
    parser.add_argument("--dht-node", metavar="HOST:PORT", action="append", default=[],
                        help="DHT node to bootstrap from (repeatable; default: libtorrent's public routers)")
    parser.set_defaults(func=run, out=None, base_url=None)


def _node(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--dht-node must be HOST:PORT, not {text!r}")
    return host.strip("[]"), int(port)


def run(args: argparse.Namespace) -> int:
    if args.jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, not {args.jobs}")
    if not 0 < args.timeout <= 600:
        raise ConfigError(f"--timeout must be between 0 and 600 seconds, not {args.timeout}")
    for repo_id in args.only:
        if not REPO_ID.match(repo_id):
            raise ConfigError(f"--only must look like ORG/NAME, not {repo_id!r}")
    config = site_config(args)
    registry = config.path(config.registry)
    catalog = load_catalog(registry)
    models = catalog.models
    if args.only:
        wanted = {r.lower() for r in args.only}
        models = [m for m in models if m.repo_id.lower() in wanted]
        missing = wanted - {m.repo_id.lower() for m in models}
        if missing:
            raise ConfigError(f"not in {registry}: {', '.join(sorted(missing))}")
    dht = None if args.no_dht else DhtSettings(tuple(_node(n) for n in args.dht_node), args.timeout)
    settings = HealthSettings(jobs=args.jobs, timeout=args.timeout, dht=dht,
                              trackers=config.trackers, webseeds=config.webseeds)
    report = check_health(models, HealthStore.for_registry(registry), settings)
    print(report.summary())
    for error in catalog.errors:
        print(f"skipped: {error}")
    return 0
