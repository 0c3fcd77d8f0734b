"""The catalog: every torrent of a registry folder as a :class:`Model` with its Hugging Face repository.

Where a torrent's repository and revision come from, first match wins:

1. a sidecar ``<TorrentStem>.json`` next to the torrent: ``{"repo_id": "Org/Name", "revision": "<commit>"}``;
2. its web seed: an HF ``.../<org>/<name>/resolve/<revision>/`` URL, or the gateway layout
   ``.../v1/<org>/<name>/<revision>/`` that modelreg's web seed and the public registries use;
3. its folder: ``<registry>/[...]/<org>/<name>/<file>.torrent`` (no revision: the main branch).
"""

from __future__ import annotations

import errno
import json
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, replace
from functools import cached_property
from itertools import compress
from operator import attrgetter, ne
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

from modelreg.errors import CatalogError, ModelregError
from modelreg.fsutil import in_threads, read_regular, stat_many
from modelreg.hf.metadata import ModelMeta
from modelreg.hf.repoid import RepoIdParts
from modelreg.registry.health import Health
from modelreg.registry.history import commit_dates
from modelreg.torrent.metainfo import Torrent

# ``\Z``, not ``$`` (which also matches before a final newline), and :meth:`re.Pattern.fullmatch` below.
#: One part of a repository id (the owner, the name).
REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
REPO_ID = re.compile(rf"^({REPO_PART})/({REPO_PART})\Z")
COMMIT = re.compile(r"^[0-9a-f]{40}\Z")
_HF_RESOLVE = re.compile(rf"/(?:models/)?({REPO_PART})/({REPO_PART})/resolve/([^/]+)/?\Z")
_GATEWAY = re.compile(rf"/v1/({REPO_PART})/({REPO_PART})/([0-9a-f]{{40}})/?\Z")
#: What git's ref-name rules forbid anywhere in a branch name (``git check-ref-format --branch``).
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
#: Size caps of the files a build reads, named in the errors of files over them.
SIDECAR_MAX_BYTES = 1 << 20
#: The creation dates a torrent may have: 1970 to the end of year 9999 (seconds since the epoch, UTC).
_LATEST_DATE = 253402300799


@dataclass(frozen=True)
class Model(RepoIdParts):
    """One registry entry: a torrent and the Hugging Face repository (and revision) it was made from."""

    repo_id: str
    revision: str | None
    revision_source: str
    torrent: Torrent
    #: The torrent file as found below the registry (text: a catalog of 100,000 models builds no
    #: :class:`Path` it does not use; :attr:`torrent_path` is the same as a path).
    path: str
    rel_path: str
    sidecar: dict[str, Any] = field(default_factory=dict)
    #: Hugging Face metadata joined from the cache, or None where none is cached.
    meta: ModelMeta | None = None
    #: Why metadata is missing or stale, and any mismatch between the torrent and HF's file list.
    problems: tuple[str, ...] = ()
    #: Unix time of the registry's last git commit of the torrent file (None: not a checkout, uncommitted).
    committed: int | None = None
    #: The last swarm and web-seed check (registry/.health/), or None where never checked.
    health: Health | None = None

    @cached_property
    def torrent_path(self) -> Path:
        return Path(self.path)

    @property
    def pinned(self) -> bool:
        """Whether the revision is a full commit hash (else the page says it follows a branch)."""
        return bool(self.revision and COMMIT.fullmatch(self.revision))


@dataclass
class Catalog:
    """The models of a registry, sorted by id, and every problem met while reading it."""

    models: list[Model]
    errors: list[ModelregError]
    #: The :func:`stamps` of each model's files (by ``path``) where a store kept its entry under them: the
    #: same stamp, the same files, so a build can tell an unchanged model without looking at its contents.
    stamps: dict[str, tuple] = field(default_factory=dict)

    def by_id(self) -> dict[str, Model]:
        return {m.repo_id: m for m in self.models}


@dataclass
class Listing:
    """What one walk of a registry folder found: its torrent files, and the names its sidecars may have."""

    #: Every ``.torrent`` regular file below the folder, in a stable order.
    torrents: list[str]
    #: Every ``.json`` name seen in the folders walked (full paths, case-folded: a case-insensitive file
    #: system opens ``Model.JSON`` for ``Model.json``). A torrent whose sidecar is not among them has
    #: none, and is not looked for.
    jsons: set[str]


#: A folder changed this recently (nanoseconds) may change again within the same tick of the file system's
#: clock, its modification time unchanged: its listing is not kept.
RECENT_NS = 2_000_000_000


def scan_registry(registry: str | Path, store: CatalogStore | None = None) -> Listing:
    """Every ``.torrent`` regular file below the registry folder, in a stable order, and the ``.json`` names
    beside them.

    Links are followed, but each real folder (device and inode) is read once, so links that loop, or
    that reach one folder by several ways, neither hang the walk nor list a torrent twice. The walk goes a
    level of folders at a time (their stats made together, :func:`~modelreg.fsutil.stat_many`): a folder
    reached by several ways is listed under the shallowest, and at one depth by its own path before a link's.

    With a ``store``, a folder whose device, inode, modification and change times are those it had at
    the last walk is not read again: its names come from the store (adding, removing or renaming an
    entry changes a folder's times). A folder that holds links (their targets change without it), or
    that changed in the last :data:`RECENT_NS`, is read each time. A walk that met no link and no folder
    it could not read is kept whole (:class:`Walk`): the next one stats its folders all at once and lists
    only those that changed; where each still has the names it had, the result is the kept one.
    """
    top = str(registry)
    known: dict[str, tuple[tuple, tuple[Names, bool] | None]] = {}
    if store is not None:
        kept = store.recall_walk(top)
        if kept is not None:
            listing = _rewalk(top, kept, store, known)
            if listing is not None:
                return listing
    found: list[str] = []
    jsons: set[str] = set()
    seen: set[tuple[int, int]] = set()
    recent = time.time_ns() - RECENT_NS
    level = [top]
    # the walk as kept for the next one (:class:`Walk`), while it is one that can be kept
    walked: list[str] | None = []
    stats: list = []
    volatile: dict[int, Names] = {}
    while level:  # a level of folders at a time: their stats in one call (stat_many)
        below: list[str] = []
        links: list[str] = []  # walked after the real folders of the level: a folder is listed where it is
        todo, identities = [], []
        for folder, st in zip(level, stat_many(level), strict=True):
            if type(st) is not tuple:
                walked = None  # gone, unreadable or a dangling link: nothing to list (and nothing kept)
                continue
            identity = _folder_identity(st)
            if identity[:2] in seen:
                walked = None
                continue
            seen.add(identity[:2])
            todo.append(folder)
            identities.append(identity)
            if walked is not None:
                walked.append(folder)
                stats.append(st)
        base = len(walked) - len(todo) if walked is not None else 0  # the level's place in the kept walk
        kept_names = store.recall_folders(todo, identities) if store is not None else [None] * len(todo)
        # each folder not recalled is listed, but where the kept walk was checked (_rewalk) with it as it is
        unknown = [(folder, identity) for folder, identity, names in zip(todo, identities, kept_names, strict=True)
                   if names is None]
        fresh = iter(_list_all([folder for folder, identity in unknown if folder not in known
                                or known[folder][0] != identity]))
        read = iter([known[folder][1] if folder in known and known[folder][0] == identity else next(fresh)
                     for folder, identity in unknown])
        for k, (folder, identity, names) in enumerate(zip(todo, identities, kept_names, strict=True)):
            steady = True  # a folder recalled holds no links (one that does is never kept)
            if names is None:
                listed = next(read)
                if listed is None:
                    walked = None
                    continue  # the folder cannot be listed
                names, steady = listed
                if store is not None and steady and identity[2] < recent and identity[3] < recent:
                    store.remember_folder(folder, identity, names)
                elif walked is not None:
                    volatile[base + k] = names  # listed again by the next walk: kept in the walk itself
            folders, torrents, sidecars = names
            prefix = folder if folder.endswith(os.sep) else folder + os.sep  # as os.scandir joins them
            if folders and steady:
                below += [prefix + name for name in folders]
            elif folders:
                walked = None
                for name in folders:
                    (links if os.path.islink(prefix + name) else below).append(prefix + name)
            if torrents:
                found += [prefix + name for name in torrents]
            if sidecars:
                jsons.update([(prefix + name).casefold() for name in sidecars])
        level = below + links
    found.sort()
    if store is not None:  # a walk that met a link or an unreadable folder is not kept: none is
        store.remember_walk(top, Walk(walked, stats, volatile, found, sorted(jsons)) if walked is not None else None)
    return Listing(found, jsons)


#: A folder's names: its folders (links to folders included), ``.torrent`` files and ``.json`` names.
Names = tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]


@dataclass
class Walk:
    """A walk of a registry folder as :func:`scan_registry` keeps it (one that met no link, and no folder
    it could not stat or list): every folder listed, in order, with its stat as
    :func:`~modelreg.fsutil.stat_many` gave it; the names of those that had changed too recently to be
    kept by the store (by their index), and what the walk found."""

    folders: list[str]
    stats: list
    volatile: dict[int, Names]
    torrents: list[str]
    jsons: list[str]


def _rewalk(top: str, walk: Walk, store: CatalogStore,
            known: dict[str, tuple[tuple, tuple[Names, bool] | None]]) -> Listing | None:
    """The listing of a kept walk, if every folder of it is unchanged, or has the names it had (the
    folders whose stat changed, and the volatile ones, are listed: ``known`` gets what was listed, by
    folder, with its identity); else None, and the registry is walked again."""
    now = stat_many(walk.folders)
    # compared at C speed: a registry of 100,000 models has as many folders, and one changed
    changed = sorted({*compress(range(len(now)), map(ne, now, walk.stats)), *walk.volatile})
    recent = time.time_ns() - RECENT_NS
    stored = store.folder_names([walk.folders[i] for i in changed if i not in walk.volatile])
    same = True
    volatile: dict[int, Names] = {}
    for i in changed:
        folder, st = walk.folders[i], now[i]
        if type(st) is not tuple:
            return None  # gone, or not a folder one can stat
        identity = _folder_identity(st)
        listed = known[folder] = (identity, _listed(folder))
        if listed[1] is None or not listed[1][1]:
            return None  # cannot be listed, or holds links now
        names = listed[1][0]
        same = same and names == (walk.volatile[i] if i in walk.volatile else stored.get(folder))
        if same and identity[2] < recent and identity[3] < recent:
            store.remember_folder(folder, identity, names)
        elif same:
            volatile[i] = names
    if not same:
        return None
    if changed:
        store.remember_walk(top, replace(walk, stats=now, volatile=volatile))
    return Listing(list(walk.torrents), set(walk.jsons))


def _folder_identity(st: tuple) -> tuple[int, int, int, int]:
    """What tells a folder's names unchanged, from its :func:`~modelreg.fsutil.stat_many` tuple: device,
    inode, modification and change times (adding, removing or renaming an entry changes them)."""
    dev, ino, _, mtime, ctime = st
    return dev, ino, mtime, ctime


#: :func:`scan_registry` lists a level's folders this many at a time, each lot from threads where the
#: last one took more than :data:`SLOW_LISTING` seconds a folder (the disk is read: a first build after
#: the page cache was dropped lists 20,000 folders in 1.5 s from threads, 3-17 s from one; from page
#: cache, threads take twice the 0.3 s of one, taking turns for the interpreter).
READ_IN_THREADS = 1024
SLOW_LISTING = 50e-6


def _list_all(folders: list[str]) -> list[tuple[Names, bool] | None]:
    """:func:`_listed` of each folder, in order."""
    listed: list[tuple[Names, bool] | None] = []
    threads = False
    for i in range(0, len(folders), READ_IN_THREADS):
        lot = folders[i:i + READ_IN_THREADS]
        start = time.perf_counter()
        listed += in_threads(_listed, lot) if threads else map(_listed, lot)  # type: ignore[arg-type]
        threads = threads or time.perf_counter() - start > SLOW_LISTING * len(lot)
    return listed


def _listed(folder: str) -> tuple[Names, bool] | None:
    """:func:`_read_folder`, or None where the folder cannot be listed."""
    try:
        return _read_folder(folder)
    except OSError:
        return None


def _read_folder(folder: str) -> tuple[Names, bool]:
    """The folder's :data:`Names`, and whether they depend on it alone (no links, no entry of unknown type).

    Raises:
        OSError: the folder cannot be listed.
    """
    folders, torrents, sidecars, steady = [], [], [], True
    for entry in list(os.scandir(folder)):  # the entry's type comes with it: a stat only for links
        try:
            if entry.is_symlink():
                steady = False
            if entry.is_dir():
                folders.append(entry.name)
            elif entry.name.endswith(".torrent"):
                if entry.is_file():
                    torrents.append(entry.name)
            elif entry.name.casefold().endswith(".json"):
                sidecars.append(entry.name)  # whatever it is: reading it tells
        except OSError:
            steady = False
    return (tuple(folders), tuple(torrents), tuple(sidecars)), steady


def find_torrents(registry: Path) -> list[Path]:
    """Every ``.torrent`` regular file below the registry folder, in a stable order (:func:`scan_registry`)."""
    return [Path(p) for p in scan_registry(registry).torrents]


def sidecar_of(path: str) -> str:
    """The sidecar of a torrent file: ``Path(path).with_suffix(".json")``, without building a path."""
    if path == ".torrent" or path.endswith((os.sep + ".torrent", "/.torrent")):  # no suffix, only a name
        return path + ".json"
    return path[:-len(".torrent")] + ".json"


#: The catalog's reader of a torrent file (bounded, regular files only): :meth:`Torrent.read`.
read_torrent = Torrent.read

#: What :meth:`CatalogStore.recall` gives back: repo id, revision, its source, sidecar, problems, torrent.
Entry = tuple[str, "str | None", str, dict[str, Any], tuple[str, ...], Torrent]


class CatalogStore(Protocol):
    """Where :func:`load_catalog` keeps what it read, so that a rebuild reads only what changed: each
    torrent's entry under its path, with the :func:`stamps` of the files it was made from, and each
    folder's names (:func:`scan_registry`). What it gives back is untrusted like any cache: a store checks
    it, and a damaged entry is a miss."""

    def recall_all(self, paths: list[str], stamps: list[tuple | None]) -> list[Entry | None]:
        """The entry kept for each of ``paths`` under its very stamp, or None (always None for a None stamp)."""

    def remember(self, path: str, stamp: tuple, model: Model) -> None:
        """Keep the entry of ``model`` (built from ``path``'s files as they were at ``stamp``)."""

    def recall_folders(self, folders: list[str], identities: list[tuple]) -> list[Names | None]:
        """The names kept for each of ``folders`` under its very identity (each name a single path
        component), or None."""

    def remember_folder(self, folder: str, identity: tuple, names: Names) -> None:
        """Keep the names of ``folder`` (listed when it had this ``identity``)."""

    def folder_names(self, folders: list[str]) -> dict[str, Names]:
        """The names kept for each of ``folders`` that has some, whatever its identity was then (each
        name a single path component)."""

    def recall_walk(self, top: str) -> Walk | None:
        """The walk kept for the registry folder ``top``, checked: names of the folders of ``top``, in
        the shape :func:`scan_registry` keeps them; or None."""

    def remember_walk(self, top: str, walk: Walk | None) -> None:
        """Keep the walk of ``top`` (None: keep none); the names of folders that a walk recalled from it
        does not ask :meth:`recall_folders` for stay kept."""


def stamps(paths: list[str], rels: list[str], jsons: set[str] | None) -> list[tuple | None]:
    """The identity of everything :func:`model_from` builds each torrent's entry from: its path in the
    registry (``rels``: the entry's ``rel_path`` and folder-derived id), the torrent file and its sidecar or
    its absence.

    A file by its device, inode, size, modification and change times (``stat``, links followed: a file
    rewritten in place or renamed over changes them). ``jsons`` (:attr:`Listing.jsons`) spares looking for
    sidecars that are not there. None where a file cannot be looked at: its entry is built, never kept.
    """
    if jsons is None:
        sides: list[str | None] = [sidecar_of(path) for path in paths]
    else:
        sides = [None] * len(paths)
        if jsons:
            # the torrents a listed .json may be the sidecar of (sidecar_of backwards: X.json beside X.torrent, or
            # beside X for a torrent named .torrent), found at C speed; each then checked the way forward
            near = {j[:-len(".json")] for j in jsons} | {j[:-len(".json")] + ".torrent" for j in jsons}
            for i in compress(range(len(paths)), map(near.__contains__, map(str.casefold, paths))):
                named = sidecar_of(paths[i])
                if named.casefold() in jsons:
                    sides[i] = named
    named = [side for side in sides if side is not None]
    identities = stat_many([*paths, *named]) if named else stat_many(paths)
    of_sides = iter(identities[len(paths):])
    found: list[tuple | None] = []
    add = found.append
    for rel, st, side in zip(rels, identities, sides, strict=False):  # (identities also holds the sidecars')
        if side is not None:
            side = next(of_sides)
            if type(side) is not tuple:
                if side != errno.ENOENT:  # unreadable: the entry is built, never kept
                    st = None
                side = None  # missing (also a dangling link): read as no sidecar
        add((rel, *st, side) if type(st) is tuple else None)
    return found


def load_catalog(registry: str | Path, read: Any = read_torrent, paths: Listing | list[Path] | None = None,
                 store: CatalogStore | None = None, prefetch: Callable[[list[str]], object] | None = None) -> Catalog:
    """Read every torrent below ``registry``; bad files become errors, the good ones models.

    ``read`` turns a path into a :class:`Torrent` (a caching reader can be passed in); ``paths`` spares
    a second walk where the caller has walked the registry already (a :class:`Listing`; or a list of
    paths, whose sidecars are then looked for one by one). ``store`` keeps the entries built: a torrent
    whose files are unchanged since (:func:`stamps`) is not read again. ``prefetch`` is told the torrents
    that will be read, before they are (a caching reader can parse many of them in parallel).

    Raises:
        CatalogError: the registry folder does not exist.
    """
    registry = Path(registry)
    if not registry.is_dir():
        raise CatalogError(registry, "the registry folder does not exist")
    listing = scan_registry(registry, store) if paths is None else paths
    if isinstance(listing, Listing):
        torrents, jsons = listing.torrents, listing.jsons
    else:
        torrents, jsons = [str(p) for p in listing], None
    # the dates are known before the models are made: each is made once, with its date
    dates = commit_dates(registry) if torrents else {}
    top = str(registry)
    rels = [_relative(path, top, registry) for path in torrents]
    if store is not None:
        now = stamps(torrents, rels, jsons)
        entries = store.recall_all(torrents, now)
    else:
        now = entries = [None] * len(torrents)
    found: list[Model | None] = []
    todo: list[tuple[int, str, str, tuple | None]] = []
    get, made = dates.get, _made
    for path, rel, stamped, entry in zip(torrents, rels, now, entries, strict=True):
        if entry is None:
            todo.append((len(found), path, rel, stamped))
            found.append(None)
            continue
        repo_id, revision, source, sidecar, problems, torrent = entry
        found.append(made(repo_id, revision, source, torrent, path, rel, sidecar, None, problems, get(rel), None))
    if todo and prefetch is not None:
        prefetch([path for _, path, _, _ in todo])
    errors: list[ModelregError] = []
    for i, path, rel, stamped in todo:
        try:
            model = model_from(path, registry, read(path))
        except ModelregError as exc:
            errors.append(exc)
            continue
        if store is not None and stamped is not None:
            store.remember(path, stamped, model)
        found[i] = replace(model, committed=dates[rel]) if rel in dates else model
    models, dup_errors = _without_duplicates([m for m in found if m is not None])
    models.sort(key=lambda m: m.repo_id.lower())
    kept = {path: stamp for path, stamp in zip(torrents, now, strict=True) if stamp is not None} if store else {}
    return Catalog(models, errors + dup_errors, kept)


_MODEL_FIELDS = tuple(f.name for f in fields(Model))


def _made(*values: Any) -> Model:
    """``Model(*values)``, in a third of its time (a rebuild makes 100,000 of them): what its ``__init__``
    does, set each field, without a frozen dataclass's ``object.__setattr__`` per field."""
    model = _new(Model)
    model.__dict__.update(zip(_MODEL_FIELDS, values, strict=True))
    return model


_new = object.__new__


def _relative(path: str, top: str, registry: Path) -> str:
    """``path`` relative to the registry folder ``top``, as posix text."""
    if os.sep == "/" and path.startswith(top + "/") and top not in ("", "/"):
        return path[len(top) + 1:]  # what relative_to gives, without its cost (100,000 models at each build)
    return Path(path).relative_to(registry).as_posix()


def model_from(path: str | Path, registry: Path, torrent: Torrent) -> Model:
    """The model of one torrent file, with its repository and revision found as the module says.

    A creation date no calendar can show (before 1970, after 9999) is dropped, with a problem noted.

    Raises:
        CatalogError: a bad sidecar, or no repository can be told.
    """
    text = str(path)
    rel = _relative(text, str(registry), registry)
    sidecar = _read_sidecar(sidecar_of(text))
    if sidecar.get("repo_id") is not None:
        repo_id, revision, source = sidecar["repo_id"], sidecar.get("revision"), "sidecar"
    else:
        found = repo_from_webseeds(torrent.webseeds)
        if found:
            repo_id, revision, source = (*found, "web seed")
        else:
            repo_id, revision, source = _repo_from_folder(Path(text), registry), None, "folder"
    torrent, problems = checked_date(torrent)
    return Model(repo_id, revision, source if revision else "default branch", torrent, text, rel, sidecar,
                 problems=problems)


def checked_date(torrent: Torrent) -> tuple[Torrent, tuple[str, ...]]:
    """The torrent as a model holds it, and the problem with its creation date if any: a date no
    calendar can show (before 1970, after 9999) is dropped. What a build reads from the torrent file
    again (its file list, to render its page) goes through this too, so it needs nothing more from
    the catalog's torrent than its path."""
    date = torrent.creation_date
    if date is None or 0 <= date <= _LATEST_DATE:
        return torrent, ()
    return replace(torrent, creation_date=None), (
        f"the torrent's creation date {date} is out of range (seconds since 1970 up to the year 9999); it is ignored",)


def is_revision(text: object) -> bool:
    """Whether ``text`` is a revision: a 40-hex commit, or a branch name git's ref-name rules allow.

    Such a name never starts a path over (no leading ``/``), never climbs (no ``..``, no component
    starting with ``.``) and has no control characters, so it can name a file of the metadata cache.
    """
    if not isinstance(text, str) or not text or len(text) > 200:
        return False
    if COMMIT.fullmatch(text):
        return True
    if _REF_FORBIDDEN.search(text) or text in ("@", "HEAD") or text[0] in "-/" or text[-1] in "./":
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        return False
    return all(part and not part.startswith(".") and not part.endswith(".lock") for part in text.split("/"))


def repo_from_webseeds(webseeds: Iterable[str]) -> tuple[str, str] | None:
    """(repo id, revision) from the first web seed in an HF ``resolve`` or gateway ``v1`` layout
    whose revision :func:`is_revision`."""
    for url in webseeds:
        path = unquote(urlsplit(url).path)
        m = _GATEWAY.search(path) or _HF_RESOLVE.search(path)
        if m and is_revision(m.group(3)):
            return f"{m.group(1)}/{m.group(2)}", m.group(3)
    return None


def _repo_from_folder(path: Path, registry: Path) -> str:
    parts = path.relative_to(registry).parts[:-1]
    repo_id = "/".join(parts[-2:])
    if len(parts) < 2 or not REPO_ID.fullmatch(repo_id):
        raise CatalogError(
            path,
            "cannot tell which Hugging Face repository this torrent is from: put it in a "
            "<org>/<name>/ folder or add a sidecar .json with \"repo_id\" and \"revision\"",
        )
    return repo_id


def _read_sidecar(path: str) -> dict[str, Any]:
    try:
        data = json.loads(read_regular(path, SIDECAR_MAX_BYTES, "sidecar"))
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise CatalogError(path, f"cannot read the sidecar: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CatalogError(path, f"the sidecar is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise CatalogError(path, "the sidecar must be a JSON object")
    repo_id, revision = data.get("repo_id"), data.get("revision")
    if repo_id is not None and not (isinstance(repo_id, str) and REPO_ID.fullmatch(repo_id)):
        raise CatalogError(path, f"'repo_id' must look like 'Org/Name', not {repo_id!r}")
    if revision is not None and not is_revision(revision):
        raise CatalogError(path, f"'revision' must be a 40-hex commit hash or a branch name git allows, "
                                 f"not {revision!r}")
    return data


def _without_duplicates(models: list[Model]) -> tuple[list[Model], list[ModelregError]]:
    """Keep the first of models that share an infohash or a repository id; report the others."""
    torrents = [m.torrent for m in models]
    keys = [*filter(None, map(attrgetter("infohash_v1"), torrents)), *filter(None, map(attrgetter("infohash_v2"), torrents)),
            *["repo:" + m.repo_id.lower() for m in models]]
    if len(set(keys)) == len(keys):  # nothing shared (a registry's usual state), told at C speed: all are kept
        return list(models), []
    seen: dict[str, Model] = {}
    kept, errors = [], []
    for model in models:
        t = model.torrent
        repo = "repo:" + model.repo_id.lower()
        # the first clash in this order names the message: v1 infohash, v2 infohash, repository
        clash = (t.infohash_v1 and seen.get(t.infohash_v1)) or (t.infohash_v2 and seen.get(t.infohash_v2)) \
            or seen.get(repo)
        if not clash:
            kept.append(model)
            seen[repo] = model
            if t.infohash_v1:
                seen[t.infohash_v1] = model
            if t.infohash_v2:
                seen[t.infohash_v2] = model
            continue
        what = "the same repository" if clash.repo_id.lower() == model.repo_id.lower() else "the same infohash"
        errors.append(CatalogError(model.path, f"{what} as {clash.rel_path} ({clash.repo_id}); skipped"))
    return kept, errors
