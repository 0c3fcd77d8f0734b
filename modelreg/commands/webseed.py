"""``modelreg webseed``: run the web-seed gateway that BitTorrent clients use when a model has no peers.

Clients ask ``/v1/<org>/<name>/<revision>/<torrent name>/<path>``; ``redirect`` mode sends them to the
right Hugging Face file, ``mirror`` mode serves verified bytes from a local cache (see ``modelreg mirror``).
Mirror mode also answers Hugging Face's own URLs, so ``HF_ENDPOINT=http://<gateway>`` clients
(``hf download``, ``from_pretrained``) download from it (``--require-token`` to ask for a token).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from aiohttp import web

from modelreg.commands import add_config_option, listen_error, port_number, size_argument
from modelreg.config import Config, load_config
from modelreg.errors import ConfigError, ServeError
from modelreg.hf.client import hub_endpoint, hub_token
from modelreg.registry.catalog import load_catalog
from modelreg.registry.metacache import MetaCache
from modelreg.webseed.app import Gateway, make_runner
from modelreg.webseed.cache import PieceCache
from modelreg.webseed.connections import listen_backlog
from modelreg.webseed.hfapi import HfApi
from modelreg.webseed.metrics import Metrics
from modelreg.webseed.routes import ServeSet
from modelreg.webseed.settings import MODES, GatewaySettings
from modelreg.webseed.tokens import TokenFile


def add_upstream_options(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``modelreg mirror``."""
    add_config_option(parser)
    parser.add_argument("--cache", metavar="DIR", help="folder of verified pieces (mirror mode)")
    parser.add_argument("--hf-endpoint", metavar="URL",
                        help="Hugging Face endpoint (default: the config's hf_endpoint, HF_ENDPOINT, "
                        "https://huggingface.co)")
    parser.add_argument("--redirect-host", metavar="HOST", action="append", default=[],
                        help="also allow redirects to HOST, HOST:PORT or *.DOMAIN (repeatable)")
    parser.add_argument("--max-cache-size", metavar="SIZE", type=size_argument,
                        help="evict least-recently-used files above this size (e.g. 500G)")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("webseed", help="run the web-seed gateway (redirect to HF or serve a mirror)",
                                   description=__doc__.replace("`", ""))
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8080, help="port to listen on (default: 8080)")
    parser.add_argument("--mode", choices=MODES, default="redirect", help="redirect (default): send clients to Hugging Face's files; mirror: serve verified bytes from --cache")
    parser.add_argument("--registry", metavar="DIR", help="folder of .torrent files (default: from the config)")
    parser.add_argument("--allow", metavar="ORG/NAME@REV", action="append", default=[],
                        help="also serve this repository revision (redirect mode; repeatable)")
    parser.add_argument("--access-log", metavar="FILE", default="-",
                        help="JSON-lines access log ('-' for stderr, '' for none; default: -)")
    parser.add_argument("--max-connections", metavar="N", type=int, default=1024,
                        help="requests answered at once before 503 (default: 1024)")
    parser.add_argument("--max-per-client", metavar="N", type=int, default=64,
                        help="requests at once from one address before 429 (default: 64)")
    parser.add_argument("--no-hf-api", dest="hf_api", action="store_false",
                        help="mirror mode: do not answer Hugging Face's own URLs (HF_ENDPOINT clients)")
    parser.add_argument("--require-token", action="store_true",
                        help="Hugging Face URLs need 'Authorization: Bearer <token>' with a token of --tokens-file")
    parser.add_argument("--tokens-file", metavar="FILE",
                        help="accepted tokens, one per line (reread when it changes)")
    parser.add_argument("--send-timeout", type=float, default=30.0, metavar="SECONDS",
                        help="drop a client that takes no 1 MiB of its answer in this time (default: 30)")
    add_upstream_options(parser)
    parser.set_defaults(func=run)


def settings_from(args: argparse.Namespace, mode: str, config: Config | None = None) -> GatewaySettings:
    config = config or load_config(args.config)
    return GatewaySettings(
        mode=mode,
        hf_endpoint=hub_endpoint(config, args.hf_endpoint),
        redirect_hosts=tuple(args.redirect_host),
        cache_dir=Path(args.cache).resolve() if args.cache else None,
        max_cache_size=args.max_cache_size,
        max_connections=getattr(args, "max_connections", 1024),
        max_per_client=getattr(args, "max_per_client", 64),
        send_timeout=getattr(args, "send_timeout", 30.0),
        token=hub_token(),
    )


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = settings_from(args, args.mode, config)
    if settings.mode == "mirror" and args.allow:
        raise ConfigError("--allow works in redirect mode only: mirror mode serves only torrents it can verify")
    registry = Path(args.registry) if args.registry else config.path(config.registry)
    catalog = load_catalog(registry) if args.registry or registry.is_dir() else None
    for error in catalog.errors if catalog else ():
        print(f"warning: {error}", file=sys.stderr)
    unpinned = [m.rel_path for m in catalog.models if not m.pinned] if catalog else []
    if unpinned:
        print(f"warning: not served, no commit hash (add a sidecar with \"revision\"): {', '.join(unpinned)}",
              file=sys.stderr)
    cached = []
    if settings.cache_dir:
        cached, errors = PieceCache(settings.cache_dir, Metrics()).cached_torrents()
        for error in errors:
            print(f"warning: {error}", file=sys.stderr)
    if args.require_token and not args.tokens_file:
        raise ConfigError("--require-token needs --tokens-file FILE (one accepted token per line)")
    if args.tokens_file and not args.require_token:
        raise ConfigError("--tokens-file is used with --require-token only")
    if args.require_token and not (settings.mode == "mirror" and args.hf_api):
        raise ConfigError("--require-token protects the Hugging Face URLs of mirror mode (--mode mirror)")
    tokens = TokenFile(args.tokens_file) if args.require_token else None
    serve = ServeSet.build(catalog, cached, args.allow)
    if not len(serve):
        raise ConfigError(
            f"nothing to serve: no torrent pinned to a commit in {registry}, none in the cache, no --allow"
        )
    banner = f"modelreg webseed: {settings.mode} mode, {len(serve)} repositories, http://{args.host}:{args.port}/v1/"
    gateway = Gateway(settings, serve)
    if settings.mode == "mirror" and args.hf_api:
        HfApi(gateway, MetaCache.for_registry(registry), tokens)
        banner += (f"\nmodelreg webseed: Hugging Face API at http://{args.host}:{args.port} (HF_ENDPOINT)"
                   + (", token required" if tokens else ""))
    asyncio.run(_serve(gateway, args.host, args.port, args.access_log, banner))
    return 0


async def _serve(gateway: Gateway, host: str, port: int, access_log: str, banner: str = "") -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly (pieces being fetched are flushed or dropped whole).

    The banner is printed once the port is listening.

    Raises:
        ServeError: nothing can listen on ``host:port`` (in use, not a local address).
    """
    runner = make_runner(gateway, access_log)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await web.TCPSite(runner, host, port, backlog=listen_backlog(runner.max_open)).start()
        except OSError as exc:
            raise ServeError(listen_error(host, port, exc)) from None
        if banner:
            print(banner, file=sys.stderr, flush=True)
        await stop.wait()
    finally:
        await runner.cleanup()
