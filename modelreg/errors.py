"""Exception classes: every error a user can meet, with a message that says what to do."""

from __future__ import annotations

from pathlib import Path


class ModelregError(Exception):
    """Base class of every error modelreg reports to a user (never shown with a traceback)."""


class TorrentError(ModelregError):
    """A .torrent file that cannot be read: names the file and the problem."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class ConfigError(ModelregError):
    """An invalid configuration file or option."""


class CatalogError(ModelregError):
    """A registry entry that cannot become a model (bad sidecar, duplicate infohash...)."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class BuildError(ModelregError):
    """The site could not be built; the previous site is left as it was."""


class WebseedError(ModelregError):
    """A web-seed request the gateway cannot answer; ``status`` is the HTTP status the client gets."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


class UpstreamError(WebseedError):
    """Hugging Face (or its CDN) kept failing or answered something the gateway cannot trust (502, or 504)."""


class CacheError(ModelregError):
    """The web-seed cache folder cannot be used (unreadable, or a torrent in it is broken)."""
