"""``modelreg create``: hash a model folder into a .torrent identical to libtorrent's."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelreg.commands import add_quiet_option, size_argument
from modelreg.config import TRACKER_SCHEMES, WEBSEED_SCHEMES, check_url
from modelreg.progress import byte_progress
from modelreg.torrent.create import create_torrent, write_torrent
from modelreg.torrent.layout import check_piece_length
from modelreg.torrent.metainfo import Torrent
from modelreg.torrent.source import LocalSource


def add_torrent_options(parser: argparse.ArgumentParser) -> None:
    """Options of every command that makes a torrent (create, add): piece length, version, trackers."""
    parser.add_argument("--piece-length", metavar="N", type=size_argument,
                        help="piece length in bytes, e.g. 4M (default: libtorrent's choice for the size)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--v1-only", dest="mode", action="store_const", const="v1",
                      help="BitTorrent v1 metadata only")
    mode.add_argument("--v2-only", dest="mode", action="store_const", const="v2",
                      help="BitTorrent v2 metadata only")
    parser.set_defaults(mode="hybrid")
    parser.add_argument("--tracker", metavar="URL", action="append", default=[],
                        help="tracker URL, each in its own tier; repeat for several")


def check_torrent_options(args: argparse.Namespace) -> None:
    """Refuse a piece length the chosen version cannot have, or a tracker or web seed that is no URL, before
    any file is read or fetched.

    Raises:
        CreateError: ``--piece-length`` is invalid for the torrent's version (see ``check_piece_length``).
        ConfigError: a ``--tracker`` or ``--webseed`` is not an absolute URL of a scheme it can have.
    """
    if args.piece_length is not None:
        check_piece_length(args.piece_length, args.mode)
    for url in args.tracker:
        check_url(url, "--tracker", TRACKER_SCHEMES)
    for url in getattr(args, "webseed", ()):  # add names its web seed with --webseed-prefix instead
        check_url(url, "--webseed", WEBSEED_SCHEMES)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("create", help="make a .torrent from a model folder",
                                   description=__doc__.replace("`", ""))
    parser.add_argument("folder", help="the model folder (or a single file)")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="where to write the torrent (default: <name>.torrent here)")
    add_torrent_options(parser)
    parser.add_argument("--webseed", metavar="URL", action="append", default=[],
                        help="web seed URL (BEP 19); repeat for several")
    parser.add_argument("--name", help="torrent name (default: the folder's name)")
    parser.add_argument("--comment", help="comment stored in the torrent")
    add_quiet_option(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_torrent_options(args)  # before scanning: the folder may be large
    source = LocalSource.open(args.folder)
    name = args.name or source.name
    output = Path(args.output) if args.output else Path(f"{name}.torrent")
    total = sum(f.size for f in source.files)
    with byte_progress(total, f"hashing {name}", quiet=args.quiet) as progress:
        data = create_torrent(
            source,
            piece_length=args.piece_length,
            mode=args.mode,
            webseeds=args.webseed,
            trackers=args.tracker,
            name=args.name,
            comment=args.comment,
            progress=progress,
        )
    write_torrent(data, output)
    torrent = Torrent.from_bytes(data, source=str(output))
    print(f"wrote {output}")
    print(f"  {len(torrent.files)} file(s), {torrent.total_size} bytes, piece length {torrent.piece_length}")
    if torrent.infohash_v1:
        print(f"  infohash v1 {torrent.infohash_v1}")
    if torrent.infohash_v2:
        print(f"  infohash v2 {torrent.infohash_v2}")
    sys.stdout.flush()
    return 0
