"""One module per command; each has ``register(subparsers)`` and ``run(args) -> int``."""

COMMANDS = [
    "build",
    "create",
    "verify",
    "refresh",
    "webseed",
    "mirror",
]
