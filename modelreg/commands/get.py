"""``modelreg get``: download a model from the registry over BitTorrent into the Hugging Face cache."""

from __future__ import annotations

import argparse
import sys

from modelreg.commands import add_config_option, add_quiet_option
from modelreg.config import load_config


def peer_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` (argparse type: a bad value is a usage error)."""
    host, sep, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "get", help="download a model over BitTorrent into the Hugging Face cache",
        description=__doc__.replace("`", "") + " Sources: the torrent's web seeds and trackers, the DHT, local "
        "peer discovery and each --peer. Then from_pretrained('Org/Name') works offline.",
        epilog="The cache: --cache-dir, else HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub. "
        "An interrupted get run again resumes from the pieces already verified.")
    parser.add_argument("repo_id", metavar="ORG/NAME", help="the repository, as the registry lists it")
    parser.add_argument("--revision", metavar="REV",
                        help="a commit (or prefix) or branch among the registry's torrents (default: the newest)")
    parser.add_argument("--include", metavar="GLOB", action="append", default=[],
                        help="download only files matching GLOB (repeatable; '*' crosses folders)")
    parser.add_argument("--exclude", metavar="GLOB", action="append", default=[],
                        help="skip files matching GLOB (repeatable)")
    parser.add_argument("--from", dest="source", metavar="SOURCE",
                        help="a published site's URL or a registry folder (default: $MODELREG_FROM, else the "
                        "config's site_url)")
    parser.add_argument("--cache-dir", metavar="DIR", help="the Hugging Face cache folder")
    parser.add_argument("--peer", metavar="HOST:PORT", action="append", default=[], type=peer_address,
                        help="also download from this BitTorrent peer (repeatable)")
    parser.add_argument("--seed-time", metavar="SECONDS", type=float, default=0.0,
                        help="seed what was downloaded for this long afterwards (default: 0)")
    parser.add_argument("--stall-timeout", metavar="S", type=float, default=120.0,
                        help="fail when no source supplies a verified piece for S seconds (default: 120)")
    parser.add_argument("--port", metavar="N", type=int, default=0, help="BitTorrent listen port (default: any)")
    parser.add_argument("--no-dht", dest="dht", action="store_false", help="do not look for peers in the DHT")
    parser.add_argument("--no-lsd", dest="lsd", action="store_false", help="no local service discovery")
    add_config_option(parser)
    add_quiet_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelreg.swarm.get import GetOptions, get
    from modelreg.swarm.hfcache import hub_cache_dir
    from modelreg.swarm.resolve import from_spec, open_source

    config = load_config(args.config) if args.source is None else None
    source = open_source(from_spec(args.source, config))
    entry = source.entry(args.repo_id, args.revision)
    options = GetOptions(
        include=tuple(args.include), exclude=tuple(args.exclude), peers=tuple(args.peer), seed_time=args.seed_time,
        stall_timeout=args.stall_timeout, port=args.port, dht=args.dht, lsd=args.lsd, quiet=args.quiet)
    report = get(entry, hub_cache_dir(args.cache_dir), options)
    print(report.summary())
    sys.stdout.flush()
    return 0
