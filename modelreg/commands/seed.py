"""``modelreg seed``: seed every registry torrent whose files are complete on this machine (HF cache, folders,
the web-seed gateway's mirror cache), in place, until stopped (SIGTERM or Ctrl-C)."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path

from modelreg.commands import add_config_option
from modelreg.config import load_config


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "seed", help="seed the registry's models found on this machine", description=__doc__.replace("`", ""),
        epilog="With no --hf-cache, --dir or --cache, the default Hugging Face cache is searched (HF_HUB_CACHE, "
        "HF_HOME/hub, ~/.cache/huggingface/hub).")
    parser.add_argument("--hf-cache", metavar="DIR", help="a Hugging Face cache folder to seed from")
    parser.add_argument("--dir", metavar="DIR", action="append", default=[],
                        help="a folder holding model folders named like the torrents (repeatable)")
    parser.add_argument("--cache", metavar="DIR", help="the web-seed gateway's mirror cache folder")
    parser.add_argument("--from", dest="source", metavar="SOURCE",
                        help="a published site's URL or a registry folder (default: $MODELREG_FROM, else the "
                        "config's site_url)")
    parser.add_argument("--port", metavar="N", type=int, default=6881, help="BitTorrent listen port (default: 6881)")
    parser.add_argument("--metrics-port", metavar="N", type=int,
                        help="serve /metrics (Prometheus text) on 127.0.0.1:N")
    parser.add_argument("--rescan", metavar="S", type=float, default=300.0,
                        help="read the registry again every S seconds (default: 300)")
    parser.add_argument("--report-every", metavar="S", type=float, default=60.0,
                        help="print peers and bytes uploaded per torrent every S seconds (default: 60)")
    parser.add_argument("--no-dht", dest="dht", action="store_false", help="do not announce in the DHT")
    parser.add_argument("--no-lsd", dest="lsd", action="store_false", help="no local service discovery")
    add_config_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelreg.swarm.hfcache import hub_cache_dir
    from modelreg.swarm.resolve import from_spec, open_source
    from modelreg.swarm.seed import Places, Seeder, serve_metrics

    config = load_config(args.config) if args.source is None else None
    source = open_source(from_spec(args.source, config))
    default_cache = not (args.hf_cache or args.dir or args.cache)
    places = Places(hf_cache=hub_cache_dir(args.hf_cache) if args.hf_cache or default_cache else None,
                    dirs=tuple(Path(d) for d in args.dir), webseed_cache=Path(args.cache) if args.cache else None)
    seeder = Seeder(source, places, port=args.port, dht=args.dht, lsd=args.lsd, rescan=args.rescan,
                    report_every=args.report_every)
    print(f"listening on port {seeder.port}; reading {source}", flush=True)
    server = serve_metrics(seeder, args.metrics_port) if args.metrics_port is not None else None
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        seeder.run(stop)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    return 0
