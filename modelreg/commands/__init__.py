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
    "get",
    "seed",
]
