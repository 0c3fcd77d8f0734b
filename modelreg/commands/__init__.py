"""One module per command; each has ``register(subparsers)`` and ``run(args) -> int``.

Here: the command-line pieces several commands share (options, argparse types, listening checks), each
written once so that an option reads and behaves the same in every command. Imports stay inside the
functions: the CLI imports this package before it knows which command runs.
"""

COMMANDS = [
    "add",
    "build",
    "create",
    "verify",
    "refresh",
    "webseed",
    "mirror",
    "serve",
    "health",
    "get",
    "seed",
]


def add_config_option(parser) -> None:
    """``--config FILE``, in every command that reads the configuration."""
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: modelreg.toml if present)")


def add_registry_options(parser, only: str | None = None) -> None:
    """``--config`` and ``--registry DIR`` of the commands that read a registry (build, serve, refresh, health);
    with ``only`` (what the command does to a repository, e.g. "refresh"), ``--only ORG/NAME`` too."""
    add_config_option(parser)
    parser.add_argument("--registry", metavar="DIR", help="folder of .torrent files (default: registry/)")
    if only:
        parser.add_argument("--only", metavar="ORG/NAME", action="append", default=[],
                            help=f"{only} only this repository (repeatable)")


def add_quiet_option(parser) -> None:
    """``-q``/``--quiet``, in every command that shows a progress bar."""
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def size_argument(text: str) -> int:
    """An ``argparse`` type: a byte count (4194304, 4M, 16KiB, 2T)."""
    import argparse

    from modelreg.errors import ConfigError
    from modelreg.units import parse_size

    try:
        return parse_size(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def port_number(text: str) -> int:
    """An ``argparse`` type: a TCP port, 0 to 65535 (a bad one is a usage error, not a traceback)."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port {value} is out of range (0 to 65535)")
    return value


def check_listen(host: str, port: int) -> None:
    """Fail now, with one line, if nothing can listen on ``host:port`` (before a banner says it serves).

    Raises:
        OSError: the address is in use, not local, or not allowed.
    """
    import socket

    with socket.create_server((host, port), reuse_port=False) as _:
        pass


def listen_error(host: str, port: int, exc: OSError) -> str:
    """``cannot listen on HOST:PORT: <reason>``, the reason in the system's words, without the stdlib's
    and aiohttp's wrapping (which repeat the address)."""
    import os

    reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
    return f"cannot listen on {host}:{port}: {reason}"
