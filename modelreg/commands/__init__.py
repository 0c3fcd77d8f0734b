"""One module per command; each has ``register(subparsers)`` and ``run(args) -> int``."""

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
