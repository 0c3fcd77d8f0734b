"""Exception classes: every error a user can meet, with a message that says what to do.

Each also subclasses the standard category it belongs to where one fits (bad values: :class:`ValueError`;
files, folders and sockets: :class:`OSError`), so code that knows nothing of modelreg can still catch it.
"""

from __future__ import annotations

from pathlib import Path


class ModelregError(Exception):
    """Base class of every error modelreg reports to a user (never shown with a traceback)."""


class FileProblem(ModelregError):
    """A problem with one file: the message is ``<path>: <problem>``."""

    def __init__(self, path: str | Path | None, problem: str):
        self.path = str(path) if path is not None else None
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)


class UnreadableFileError(ModelregError, OSError):
    """A file that is not read: not a regular file (a FIFO, a device, a folder), or larger than its kind may be."""


class TorrentError(FileProblem, ValueError):
    """A .torrent file that cannot be read (its bytes are no valid torrent, or the file cannot be opened)."""


class ConfigError(ModelregError, ValueError):
    """An invalid configuration file or option."""


class CatalogError(FileProblem, ValueError):
    """A registry entry that cannot become a model (bad sidecar, duplicate infohash...)."""


class SiteSwitchError(ModelregError, OSError):
    """The site folder cannot be switched to a new build (another build runs, or the path is a file)."""


class BuildError(ModelregError):
    """The site could not be built; the previous site is left as it was."""


class CreateError(ModelregError):
    """A torrent could not be made from the given files: names the file and the problem."""


class VerifyError(ModelregError):
    """Files could not be checked against a torrent (unreadable torrent or folder)."""


class HubError(ModelregError):
    """Hugging Face metadata of a repository could not be fetched.

    ``reason`` is a short machine-readable word (``not-found``, ``revision-not-found``, ``gated``,
    ``unauthorized``, ``rate-limited``, ``server-error``, ``timeout``, ``offline``, ``http-error``, ``bad-response``);
    the message says what happened and what to do.
    """

    def __init__(self, repo_id: str, revision: str | None, reason: str, detail: str):
        self.repo_id, self.revision, self.reason, self.detail = repo_id, revision, reason, detail
        at = f"@{revision}" if revision else ""
        super().__init__(f"{repo_id}{at}: {detail}")


class MetadataCacheError(FileProblem):
    """A file of the metadata cache cannot be read or written."""


class HealthFileError(FileProblem):
    """A file of the health store (registry/.health/) cannot be read or written."""


class ProbeError(ModelregError):
    """A tracker, the DHT or a web seed did not answer a health check, or answered something unusable.

    ``reason`` is a short word (``timeout``, ``unreachable``, ``refused``, ``http-error``, ``bad-response``,
    ``unsupported``); ``detail`` says what happened.
    """

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail
        super().__init__(detail)


class DownloadError(ModelregError):
    """A repository's files could not be listed or streamed from the hub: names the repository, file and problem."""


class RepoChangedError(DownloadError):
    """The repository on the hub is no longer what its listing said (a file changed, moved or was resized)."""


class WebseedError(ModelregError):
    """A web-seed request the gateway cannot answer; ``status`` is the HTTP status the client gets."""

    def __init__(self, status: int, message: str):
        self.status = status
        super().__init__(message)


class UpstreamError(WebseedError):
    """Hugging Face (or its CDN) kept failing or answered something the gateway cannot trust (502, or 504)."""


class CacheError(ModelregError, OSError):
    """The web-seed cache folder cannot be used (unreadable, or a torrent in it is broken)."""


class ServeError(ModelregError, OSError):
    """A server cannot start: the preview or the web-seed gateway (nothing to serve, port in use...)."""


class NotRegularFileError(ModelregError, OSError):
    """A path that should be a regular file is a FIFO, a device, a socket or a folder (reading it could hang)."""


class SwarmError(ModelregError):
    """``get`` or ``seed`` cannot go on: no usable source, a stalled download, a file that does not verify."""


class LibtorrentMissingError(SwarmError, ImportError):
    """``get``, ``seed`` or ``health``'s DHT lookups need the libtorrent Python bindings, which are not installed."""


class SourceError(SwarmError):
    """The site or registry named by ``--from`` cannot be read, or does not list the repository asked for."""


class StalledError(SwarmError, TimeoutError):
    """No source supplied a verified piece for ``--stall-timeout`` seconds; the message names the files left."""


class FileCheckError(SwarmError, ValueError):
    """A downloaded file does not match the hash the registry's metadata lists for it (it is not placed)."""
