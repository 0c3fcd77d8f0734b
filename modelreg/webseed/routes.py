"""Which torrents the gateway serves, and what a web-seed URL means.

A web seed of the form ``<prefix>/v1/<org>/<name>/<revision>/`` makes a BitTorrent client ask for
``/v1/<org>/<name>/<revision>/<torrent name>/<path in the torrent>`` (multi-file) or
``/v1/<org>/<name>/<revision>/<torrent name>`` (single file; BEP 19 appends the name to a URL ending
in ``/``). :meth:`ServeSet.route` turns such a path into a :class:`Target`, or raises a
:class:`~modelreg.errors.WebseedError` with the status to answer: 400 for a revision that is not a full
commit hash, 404 for anything the registry does not hold. Paths are matched exactly against the
torrent's file list, so ``..``, encoded slashes and files outside the torrent cannot be named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

from modelreg.errors import ConfigError, WebseedError
from modelreg.hf.repoid import RepoIdParts
from modelreg.paths import path_problem
from modelreg.registry.catalog import COMMIT, REPO_ID, Catalog
from modelreg.torrent.metainfo import FileEntry, Torrent

PREFIX = "v1"


@dataclass(frozen=True)
class Served(RepoIdParts):
    """One repository revision the gateway serves; ``torrent`` is None for an ``--allow`` entry without one."""

    repo_id: str
    revision: str
    torrent: Torrent | None
    files: dict[str, FileEntry] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, repo_id: str, revision: str, torrent: Torrent | None) -> Served:
        files = {f.path_str: f for f in torrent.layout} if torrent else {}
        return cls(repo_id, revision, torrent, files)

    @property
    def key(self) -> tuple[str, str]:
        return self.repo_id.lower(), self.revision

    def resolve_url(self, endpoint: str, path: str) -> str:
        """The file's Hugging Face ``resolve`` URL at this revision."""
        return f"{endpoint}/{self.repo_id}/resolve/{self.revision}/{quote(path)}"


@dataclass(frozen=True)
class Target:
    """What a request names: a file of a served torrent (a pad file is served as zeros)."""

    served: Served
    path: str
    entry: FileEntry | None

    @property
    def is_pad(self) -> bool:
        return self.entry is not None and self.entry.is_pad


class ServeSet:
    """The served repositories, keyed by (repo id in lower case, revision)."""

    def __init__(self, items: Iterable[Served] = ()):
        self._items: dict[tuple[str, str], Served] = {}
        for item in items:
            self.add(item)

    def add(self, item: Served) -> None:
        self._items.setdefault(item.key, item)

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self):
        return iter(self._items.values())

    @classmethod
    def build(
        cls, catalog: Catalog | None = None, torrents: Iterable[Served] = (), allow: Iterable[str] = ()
    ) -> ServeSet:
        """Registry models pinned to a commit, then torrents from the cache, then ``--allow`` entries."""
        serve = cls()
        for model in catalog.models if catalog else ():
            if model.pinned:
                serve.add(Served.of(model.repo_id, model.revision, model.torrent))
        for item in torrents:
            serve.add(item)
        for spec in allow:
            repo_id, revision = parse_allow(spec)
            serve.add(Served.of(repo_id, revision, None))
        return serve

    def lookup(self, org: str, name: str, revision: str) -> Served:
        """The served torrent of ``org/name`` at ``revision``.

        Raises:
            WebseedError: 400 when ``revision`` is not a full commit hash, 404 when it is not served.
        """
        if not COMMIT.match(revision):
            raise WebseedError(400, f"revision {revision!r} is not a full 40-hex commit hash")
        served = self._items.get((f"{org}/{name}".lower(), revision))
        if served is None:
            raise WebseedError(404, f"{org}/{name}@{revision} is not served by this gateway")
        return served

    def route(self, raw_path: str) -> Target:
        """The target of a raw (still percent-encoded) request path below ``/v1/``.

        Raises:
            WebseedError: 400 for a path that is not percent-encoded UTF-8, 404 for anything that is not a file of a served torrent.
        """
        parts = raw_path.split("?", 1)[0].split("/")
        if len(parts) < 6 or parts[0] != "" or parts[1] != PREFIX:
            raise WebseedError(404, "expected /v1/<org>/<name>/<revision>/<torrent name>/<path>")
        try:
            parts = [unquote(p, errors="strict") if "%" in p else p for p in parts[2:]]
        except UnicodeDecodeError:
            raise WebseedError(400, "the path is not valid percent-encoded UTF-8") from None
        org, name, revision, rest = parts[0], parts[1], parts[2], parts[3:]
        problem = path_problem(rest)
        if problem:
            raise WebseedError(404, f"not a torrent path: {problem}")
        served = self.lookup(org, name, revision)
        torrent = served.torrent
        if torrent is None:
            if rest[0] != served.name or len(rest) < 2:
                raise WebseedError(404, f"expected {served.name}/<path> for {served.repo_id}")
            return Target(served, "/".join(rest[1:]), None)
        if torrent.single_file:
            if rest != [torrent.name]:
                raise WebseedError(404, f"this single-file torrent serves only {torrent.name!r}")
            return Target(served, torrent.name, torrent.layout[0])
        if rest[0] != torrent.name or len(rest) < 2:
            raise WebseedError(404, f"no such file: paths start with the torrent name {torrent.name!r}")
        path = "/".join(rest[1:])
        entry = served.files.get(path)
        if entry is None:
            raise WebseedError(404, f"{path!r} is not a file of torrent {torrent.name!r}")
        return Target(served, path, entry)


def parse_allow(spec: str) -> tuple[str, str]:
    """``ORG/NAME@REVISION`` (a full commit hash) from ``--allow``.

    Raises:
        ConfigError: ``spec`` does not look like ``ORG/NAME@<40-hex commit>``.
    """
    repo_id, _, revision = spec.partition("@")
    if not REPO_ID.match(repo_id) or not COMMIT.match(revision):
        raise ConfigError(f"--allow {spec!r} must look like ORG/NAME@<40-hex commit hash>")
    return repo_id, revision
