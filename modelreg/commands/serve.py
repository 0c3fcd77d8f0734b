"""``modelreg serve``: build the site, serve it on 127.0.0.1 and rebuild and reload on every change."""

from __future__ import annotations

import argparse
from pathlib import Path

from modelreg.commands import check_listen, listen_error, port_number
from modelreg.commands.build import add_site_options, site_config
from modelreg.config import CONFIG_FILE
from modelreg.errors import ServeError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="preview the site, rebuilding and reloading on changes",
                                   description=__doc__.replace("`", ""))
    add_site_options(parser)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=port_number, default=8000, help="port to listen on (default: 8000)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from modelreg.site.preview import Preview, serve  # imported here: jinja2 and the site build

    try:
        check_listen(args.host, args.port)
    except OSError as exc:
        raise ServeError(listen_error(args.host, args.port, exc)) from None
    config_file = Path(args.config) if args.config else Path(CONFIG_FILE)
    preview = Preview(lambda: site_config(args), config_file.resolve() if config_file.exists() else None)
    serve(preview, host=args.host, port=args.port)
    return 0
