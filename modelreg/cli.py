"""The command line: ``modelreg <command>`` and ``python build.py <command>`` (``build`` by default)."""

from __future__ import annotations

import argparse
import importlib
import sys

from modelreg import __version__
from modelreg.commands import COMMANDS
from modelreg.errors import ModelregError


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modelreg",
        description="Build a static registry of model torrents and the tools around it. "
        "With no command, 'build' runs.",
    )
    parser.add_argument("--version", action="version", version=f"modelreg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f".commands.{name}", __package__).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run a command; return its exit code (0 ok, 1 error, 2 bad usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "build")
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code or 0)
    try:
        return args.func(args)
    except ModelregError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
