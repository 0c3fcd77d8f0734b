"""``modelreg verify``: check a model folder against a .torrent, piece by piece (v1 and v2)."""

from __future__ import annotations

import argparse
import sys

from modelreg.commands import add_quiet_option
from modelreg.errors import TorrentError, VerifyError
from modelreg.progress import byte_progress
from modelreg.torrent.metainfo import Torrent
from modelreg.torrent.verify import verify


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("verify", help="check files against a .torrent",
                                   description=__doc__.replace("`", ""))
    parser.add_argument("torrent", help="the .torrent file")
    parser.add_argument("folder", help="the model folder (for a single-file torrent: the file or its folder)")
    add_quiet_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        torrent = Torrent.read(args.torrent)
    except TorrentError as exc:
        raise VerifyError(str(exc)) from exc
    with byte_progress(torrent.total_size, f"verifying {torrent.name}", quiet=args.quiet) as progress:
        report = verify(torrent, args.folder, progress=progress)
    print(report.summary(), file=sys.stdout if report.ok else sys.stderr)
    return 0 if report.ok else 1
