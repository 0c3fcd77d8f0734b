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


class CreateError(ModelregError):
    """A torrent could not be made from the given files: names the file and the problem."""


class VerifyError(ModelregError):
    """Files could not be checked against a torrent (unreadable torrent or folder)."""


class DownloadError(ModelregError):
    """A repository's files could not be listed or streamed from the hub: names the repository, file and problem."""


class RepoChangedError(DownloadError):
    """The repository on the hub is no longer what its listing said (a file changed, moved or was resized)."""
