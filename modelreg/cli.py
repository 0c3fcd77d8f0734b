"""The command line: ``modelreg <command>`` and ``python build.py <command>`` (``build`` by default).

Only the module of the command being run is imported (the others pull in aiohttp, huggingface_hub,
jinja2...): ``modelreg verify`` or ``modelreg --help`` start in a fraction of the time all of them take.
The top-level help reads each command's summary from its module's docstring without importing it.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys

from modelreg import __version__
from modelreg.commands import COMMANDS
from modelreg.errors import ModelregError

DEFAULT_COMMAND = "build"


def _summary(name: str) -> str:
    """The command's one-line summary: its module docstring's first sentence after ``modelreg NAME``."""
    spec = importlib.util.find_spec(f"{__package__}.commands.{name}")
    try:
        with open(spec.origin, encoding="utf-8") as f:  # type: ignore[union-attr, arg-type]
            doc = ast.get_docstring(ast.parse(f.read())) or ""
    except (OSError, SyntaxError, AttributeError, TypeError):
        return ""
    first = doc.split("\n\n")[0].replace("\n", " ").replace("``", "")
    return first.split(": ", 1)[-1].rstrip(".")


def top_parser() -> argparse.ArgumentParser:
    """The ``modelreg`` parser, listing every command (none of their modules imported)."""
    parser = argparse.ArgumentParser(
        prog="modelreg",
        description="Build a static registry of model torrents and the tools around it. "
        f"With no command, '{DEFAULT_COMMAND}' runs.",
    )
    parser.add_argument("--version", action="version", version=f"modelreg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        subparsers.add_parser(name, help=_summary(name))
    return parser


def command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of one command (``modelreg NAME``), its module imported and registered."""
    parser = argparse.ArgumentParser(prog="modelreg")
    subparsers = parser.add_subparsers(dest="command")
    importlib.import_module(f".commands.{name}", __package__).register(subparsers)
    return subparsers.choices[name]


def main(argv: list[str] | None = None) -> int:
    """Run a command; return its exit code (0 ok, 1 error, 2 bad usage)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in ("-h", "--help", "--version"):
            top_parser().parse_args(argv[:1])
        if argv and not argv[0].startswith("-") and argv[0] not in COMMANDS:
            print(f"modelreg: unknown command '{argv[0]}' (commands: {', '.join(COMMANDS)};"
                  f" with none, '{DEFAULT_COMMAND}' runs; see modelreg --help)", file=sys.stderr)
            return 2
        name = argv.pop(0) if argv and argv[0] in COMMANDS else DEFAULT_COMMAND
        args = command_parser(name).parse_args(argv)
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
