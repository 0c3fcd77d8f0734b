"""A repository at one commit as the hub lists it (:func:`fetch_snapshot`), and the URLs of its files.

The listing is what :class:`~modelreg.hf.source.HfSource` streams and checks every answer against.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from modelreg.errors import DownloadError, HubError
from modelreg.hf.client import HubClient
from modelreg.hf.repoid import RepoIdParts
from modelreg.hf.retry import RetryPolicy


@dataclass(frozen=True)
class ListedFile:
    """One file of a repository at a commit, as the hub lists it.

    ``blob_id`` is the git blob id (of the LFS pointer for LFS files); ``sha256`` is set for LFS files.
    """

    path: str
    size: int
    blob_id: str | None = None
    sha256: str | None = None


@dataclass(frozen=True)
class Snapshot(RepoIdParts):
    """A repository at one commit: its id in the hub's case, the commit and its files sorted by path."""

    repo_id: str
    commit: str
    files: tuple[ListedFile, ...]


def fetch_snapshot(
    repo_id: str,
    revision: str | None = None,
    *,
    endpoint: str,
    token: str | None = None,
    retry: RetryPolicy = RetryPolicy(),
    timeout: float = 30.0,
) -> Snapshot:
    """Resolve ``revision`` (None: main) to a commit and list the repository's files there, with sizes and
    LFS SHA-256 digests (``HfApi.model_info(files_metadata=True)``).

    Raises:
        DownloadError: the hub refused or failed the request (named, with what to do), or its answer lacks the commit or a file's size.
    """
    where = f"{repo_id}" + (f" at {revision}" if revision else "")
    try:
        info = HubClient(endpoint, token, retry, timeout).model_info(repo_id, revision)
    except HubError as exc:
        messages = {
            "gated": f"{where}: the repository is gated: set HF_TOKEN to a token with access",
            "revision-not-found": f"{repo_id}: revision {revision} does not exist on {endpoint}",
            "not-found": f"{repo_id}: no such repository on {endpoint} (or it is private)",
        }
        raise DownloadError(messages.get(exc.reason, f"{where}: {exc.detail}")) from None
    if not info.id or not info.sha:
        raise DownloadError(f"{where}: the hub's answer has no repository id or commit")
    files = []
    for sib in info.siblings or ():
        if sib.size is None:
            raise DownloadError(f"{where}: the hub did not give the size of {sib.rfilename}")
        files.append(ListedFile(sib.rfilename, sib.size, sib.blob_id, sib.lfs.sha256 if sib.lfs else None))
    files.sort(key=lambda f: f.path.encode())
    return Snapshot(info.id, info.sha, tuple(files))


def resolve_url(endpoint: str, repo_id: str, commit: str, path: str) -> str:
    """HF's download URL of ``path`` at ``commit``."""
    return f"{endpoint.rstrip('/')}/{repo_id}/resolve/{commit}/{quote(path)}"


def webseed_url(prefix: str, snapshot: Snapshot) -> str:
    """The gateway web seed ``<prefix>/v1/<org>/<name>/<commit>/``."""
    return f"{prefix.rstrip('/')}/v1/{snapshot.repo_id}/{snapshot.commit}/"


def hf_webseed_url(endpoint: str, snapshot: Snapshot, path: str) -> str:
    """HF's ``resolve`` folder holding ``path``: a web seed for a single-file torrent of that file."""
    folder = path.rpartition("/")[0]
    base = f"{endpoint.rstrip('/')}/{snapshot.repo_id}/resolve/{snapshot.commit}/"
    return base + (quote(folder) + "/" if folder else "")
