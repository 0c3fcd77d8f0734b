"""Render the catalog into the static site: pages, .torrent files, the JSON API, search index and feeds."""

from __future__ import annotations

import array
import contextlib
import functools
import gc
import hashlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import jinja2

from modelreg.config import Config
from modelreg.errors import BuildError
from modelreg.fsutil import READ_FLAGS, write_all
from modelreg.registry.catalog import Catalog, Model
from modelreg.site.feeds import (
    FEED_ENTRIES,
    SITEMAP_URLS,
    feed_xml,
    newest_cut,
    newest_first,
    sitemap_index,
    sitemap_xml,
)
from modelreg.site.listing import ROOT, linker, slug, write_listing
from modelreg.site.parsecache import full_torrent, identity
from modelreg.site.records import (
    Paths,
    file_infos,
    file_list,
    file_tree,
    file_tree_html,
    model_record,
    outputs,
    visitor_notes,
)
from modelreg.site.reuse import API_FILE, Damaged, Reuse, summary_digest
from modelreg.site.sanitize import render_card
from modelreg.site.search import SUMMARY_LENGTH, index_files, summary
from modelreg.site.templating import Theme
from modelreg.torrent.metainfo import Torrent, torrent_with_extras


class Pool(Protocol):
    """Renders models in other processes (:class:`modelreg.site.workers.RenderPool`)."""

    #: How many models may wait for a worker before the build waits for the oldest.
    window: int

    def claims(self) -> bool:
        """Whether the pool renders the next model that must be rendered."""

    def submit(self, model: Model, digest: str) -> object:
        """Queue a model (as the catalog has it) to be prepared and rendered; a ticket for its result."""

    def done(self, ticket: object) -> bool:
        """Whether the ticket's model is rendered."""

    def result(self, ticket: object) -> tuple[dict[str, Any], tuple[str, ...], dict[str, tuple[int, int]]]:
        """The model's parts, files written and their size and ``st_mtime_ns``; waits for them."""

    def run(self, function: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        """Call ``function(*args)`` in another process while this one goes on; a function that waits for
        its result."""


@dataclass
class RenderStats:
    """How many models were rendered and how many reused unchanged from the previous build."""

    rendered: int = 0
    reused: int = 0
    #: The size of the site's files.
    bytes: int = 0
    #: (repository id, problem) for every model built with missing metadata or a file mismatch.
    problems: list[tuple[str, str]] = field(default_factory=list)


def render_site(
    catalog: Catalog,
    config: Config,
    out: Path,
    reuse: Reuse | None = None,
    digests: dict[str, str] | None = None,
    prepare: Callable[[Model], Model] | None = None,
    fingerprint: Callable[[Model], object] | None = None,
    identities: dict[str, tuple[int, int, int, int]] | None = None,
    pool: Pool | None = None,
) -> RenderStats:
    """Write every file of the site into ``out`` (an empty folder), but for unchanged models' files.

    ``reuse`` finds the models unchanged since the previous build: their files stay where they are
    (``reuse.kept``) and their parts of the shared files are reused, and shared files (listing pages,
    search shards, API pages) whose bytes did not change stay too; ``digests`` (absolute torrent path ->
    SHA-256 of its bytes) spares hashing again. ``prepare`` completes each model of the catalog just
    before it is rendered (reads its files, joins its metadata), so only one model's files are in memory.
    ``fingerprint(model)`` stands for what ``prepare`` adds beyond the catalog (for example the identity
    of the metadata cache file it reads): with it, a model is prepared only when its key changed.
    ``identities`` (absolute torrent path -> :func:`~modelreg.site.parsecache.identity` when it was
    parsed) spares reading a torrent again to serve it while it is unchanged. With ``prepare`` and
    ``fingerprint``, a ``pool`` (:class:`modelreg.site.workers.RenderPool`) renders the models it claims
    in other processes.

    Raises:
        BuildError: a model's id would clash with the paged API's files.
    """
    _readable(out)
    reuse = reuse or Reuse(None, None)
    try:
        while True:
            try:
                with _frozen_heap():
                    return _render(catalog, config, out, reuse, digests, prepare, fingerprint, identities, pool)
            except Damaged as exc:
                # reused models whose bulky parts are needed turned out damaged: all again, those rendered
                reuse.restart(exc.ids)
                _empty(out)
    finally:
        reuse.stop()


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """Leave every object made so far out of the collections that free each rendered model's reference
    cycles (``gc.freeze``), for as long as the models are rendered.

    With the cyclic collector paused (:func:`~modelreg.site.build.build_site`), the youngest generation
    holds everything the build made before rendering: the first ``gc.collect(0)`` would walk the whole
    catalog (0.4 s of a one-change rebuild at 100,000 models), and each render worker forked from this
    process would walk its copy, writing to every page it shares with the build. Not done where objects
    are frozen already: the caller's own ``gc.unfreeze`` is not this one's to make.
    """
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _render(catalog: Catalog, config: Config, out: Path, reuse: Reuse, digests: dict[str, str] | None,
            prepare: Callable[[Model], Model] | None, fingerprint: Callable[[Model], object] | None,
            identities: dict[str, tuple[int, int, int, int]] | None, pool: Pool | None) -> RenderStats:
    theme = Theme(config.path(config.theme_dir))
    env = theme.environment(config)
    common = Reuse.key(theme.fingerprint(), _config_key(config))
    entry = functools.cache(lambda: env.get_template("entry.html"))  # compiled once a model is rendered here

    def write(rel: str, content: str | bytes | Callable[[], str | bytes], key: str | None = None) -> None:
        reuse.shared(out, rel, content, None if key is None else Reuse.key(common, key))

    summaries, searched, dated = [], [], []
    # rows and API lines are written as they come and read back where a page needs them: the build
    # holds neither (about 2.7 KB a model); a reused model's are not even read unless a page needs them
    entries = Rows(tempfile.TemporaryFile(dir=out), reuse)
    api = ApiWriter(out, write, reuse)
    problems: list[tuple[str, str]] = []
    # the models in catalog order, each with its parts or, where a worker renders it, its ticket: the
    # shared files take them in this order however the workers finish
    order: deque[tuple[str, str, Any, Any, tuple | None]] = deque()
    # one copy of each search term, org, format... for all the summaries held until the index is made
    strings: dict[str, str] = {}

    def drain(limit: int) -> None:
        """Take the parts of the models at the head of ``order`` that are done (all while more than
        ``limit`` wait)."""
        while order:
            model_id, key, parts, ticket, quick = order[0]
            if ticket is not None:  # rendered by a worker
                if len(order) <= limit and not pool.done(ticket):
                    return
                parts, files, stats = pool.result(ticket)
                reuse.written(model_id, key, out, files, parts, stats, quick)
            order.popleft()
            # a reused model's parts are the light ones (reuse.LIGHT): its API line, row and search terms
            # are read only where a file that includes them is made again
            # most models share their problems' text (no metadata cached, ...): one copy of each
            if parts["problems"]:
                problems.extend((model_id, _one(problem, strings)) for problem in parts["problems"])
            api.add(model_id, key, parts.get("json"))
            summaries.append(_shared_strings(parts["summary"], strings))
            searched.append(parts["searched"] if "searched" in parts else summary_digest(parts["summary"]))
            entries.append(model_id, key, parts.get("entry"))
            page, when = parts["dated"]
            dated.append((page, _one(when, strings)))

    def keyed(model: Model) -> tuple[Model, str | Callable[[], str], tuple | None, bool]:
        """The model, its key, the quick stand-in of its key (see :meth:`Reuse.lookup`; None: none), and
        whether it is prepared. With ``fingerprint``, the key of the model as the catalog has it, with a
        stand-in for what prepare() adds (an unchanged model is neither prepared nor rendered), as a
        function: where the quick tuple is the last build's, the key is too, and is not computed."""
        if prepare is not None and fingerprint is not None:
            stand_in = fingerprint(model)
            return model, lambda: Reuse.key(common, _inputs(model, digests), stand_in), \
                _quick(common, model, catalog.stamps.get(model.path), stand_in), False
        model = prepare(model) if prepare is not None else model
        return model, Reuse.key(common, _inputs(model, digests)), None, True

    def rendered(model: Model, key: str | Callable[[], str], quick: tuple | None) -> dict[str, Any]:
        """Render the (prepared) model here; its parts."""
        key = key if isinstance(key, str) else key()
        parsed = (identities or {}).get(os.path.abspath(model.torrent_path))
        parts, files = render_model(env, entry(), model, config, out, _digest(model, digests), parsed)
        reuse.written(model.repo_id, key, out, files, parts, quick=quick)
        # rendering leaves reference cycles (jinja's contexts) that hold the model, files and all;
        # the build pauses the cyclic collector, so free them here: the youngest generation holds
        # only what this model made
        gc.collect(0)
        return parts

    files = model_files(catalog.models, config)
    # the live files of the models reused are checked beside the loop (another process, started here if
    # the build did not start it earlier), and their models rendered again at the end where they changed
    reuse.watch(files)
    for model in catalog.models:
        model, key, quick, ready = keyed(model)
        key, parts = reuse.lookup(model.repo_id, key, _files(model, config), quick)
        if parts is None and not ready and pool is not None and pool.claims():
            order.append((model.repo_id, key, None, pool.submit(model, _digest(model, digests)), quick))
            drain(pool.window)
            continue
        if parts is None:
            parts = rendered(model if ready else prepare(model), key, quick)
        order.append((model.repo_id, key, parts, None, quick))
        drain(pool.window if pool is not None else 0)
    drain(0)
    api.close()

    # the search index is made in a worker (where there are workers) while this process makes the rest
    indexed = reuse.group("search", Reuse.key(common, hashlib.sha256(b"".join(searched)).hexdigest()),
                          lambda: functools.partial(index_files, _complete(summaries, reuse)), out,
                          run=pool.run if pool is not None else None)
    try:
        _rest(env, config, theme, out, write, summaries, dated, entries, api)
    except BaseException:
        with contextlib.suppress(Exception):
            indexed()  # the worker must be done writing before the staging folder is emptied or dropped
        raise
    indexed()
    changed = reuse.changed(files)
    if changed:  # reused, but a live file was edited or replaced since: its files are made again
        for model in catalog.models:
            if model.repo_id in changed:
                model, key, quick, ready = keyed(model)
                rendered(model if ready else prepare(model), key, quick)
    entries.close()
    api.release()
    return RenderStats(rendered=reuse.rendered, reused=reuse.reused, bytes=reuse.site_bytes() + api.bytes,
                       problems=problems)


def _rest(env: jinja2.Environment, config: Config, theme: Theme, out: Path, write: Callable[..., None],
          summaries: list[list], dated: list[tuple], entries: Rows, api: ApiWriter) -> None:
    """The shared files but for the API list and the search index: listings, API pages, feeds, static.

    Each is written with a key (``write`` adds the config's and the theme's, whose fingerprint covers its
    templates and static files): one whose key is unchanged is neither rendered nor read again, nor its
    template compiled (a rebuild after one change makes a few pages, not all of them)."""
    site = {"config": config, "href": linker(config.use_directory_urls)}
    facets = _facets(summaries)
    write_listing(env, write, "", entries, config.title, first_key=repr(facets), keys=entries.keys,
                  first_page=lambda **values: env.get_template("index.html").render(facets=facets, **values),
                  **site)
    _group_listings(env, write, summaries, entries, site)

    def api_page() -> str:
        example = api.line(0) if api.count else None
        return env.get_template("api.html").render(
            root="../", example=json.loads(example) if example else None, api_page_size=API_PAGE, **site)

    # the example is the first model's record, which its key stands for
    write("api/index.html", api_page, key=repr(("api", api.keys[0] if api.count else None, API_PAGE)))
    cut = newest_cut([when for _, when in dated], FEED_ENTRIES)
    newest = newest_first([{"id": s[0], "last_modified": d[1], "k": k}
                           for k, (s, d) in enumerate(zip(summaries, dated, strict=True)) if (d[1] or "") >= cut])
    listed = [r["k"] for r in newest[:FEED_ENTRIES]]
    # the feed is made of the newest models' records, which their keys stand for
    write("feed.xml", lambda: feed_xml(env, config, [json.loads(api.line(k)) for k in listed]),
          key=repr(("feed", [api.keys[k] for k in listed])))
    if config.site_url:  # sitemaps require absolute URLs
        _sitemaps(env, config, write, dated, api.keys)
    write("404.html", lambda: env.get_template("404.html").render(root=config.base_url, **site), key="404")
    for rel, path in theme.static_files():
        write("static/" + rel, path.read_bytes, key=repr(("static", rel)))


def _sitemaps(env: jinja2.Environment, config: Config, write: Callable[..., None], dated: list[tuple],
              keys: list[str]) -> None:
    """``sitemap.xml``: the sitemap, or past :data:`~modelreg.site.feeds.SITEMAP_URLS` models an index of
    ``sitemaps/<n>.xml``, each of that many models. Each sitemap is keyed by its models' keys (their pages
    and dates come from what the keys cover): made again only where one of them changed."""
    spans = [(start, start + SITEMAP_URLS) for start in range(0, max(len(dated), 1), SITEMAP_URLS)]

    def made(start: int, end: int, first: bool) -> Callable[[], str]:
        return lambda: sitemap_xml(env, config, [{"page": page, "last_modified": when}
                                                 for page, when in dated[start:end]], first)

    def key(start: int, end: int) -> str:
        return hashlib.sha256("\n".join(keys[start:end]).encode()).hexdigest()

    if len(spans) == 1:
        write("sitemap.xml", made(0, len(dated), True), key(0, len(dated)))
        return
    parts = []
    for n, (start, end) in enumerate(spans, 1):
        write(f"sitemaps/{n}.xml", made(start, end, n == 1), key(start, end))
        parts.append((f"sitemaps/{n}.xml", max((when for _, when in dated[start:end] if when), default=None)))
    write("sitemap.xml", sitemap_index(env, config, parts))


def _shared_strings(summary: list, strings: dict[str, str]) -> list:
    """The summary with its org, formats, license, task and terms replaced by one copy of each
    (:func:`_one`): the build holds every model's summary until the search index is made, and a term,
    which is in many models, costs ~60 bytes a copy; the summaries are equal, only lighter."""
    summary = list(summary)
    one = strings.setdefault  # what _one does, inline: a rebuild of 100,000 models makes a million calls
    for i in (1, 3, 4):
        if type(value := summary[i]) is str:
            summary[i] = one(value, value)
    if type(summary[2]) is list:
        summary[2] = [one(f, f) if type(f) is str else f for f in summary[2]]
    if len(summary) == SUMMARY_LENGTH and type(summary[-1]) is list:
        summary[-1] = [one(t, t) if type(t) is str else t for t in summary[-1]]
    return summary


def _one(value: Any, strings: dict[str, str]) -> Any:
    """The first copy seen of a string (kept in ``strings``); anything else as it is."""
    return strings.setdefault(value, value) if isinstance(value, str) else value


def _complete(summaries: list[list], reuse: Reuse) -> list[list]:
    """The summaries with the search terms of reused models (their light parts leave them out)."""
    damaged = []
    light = [k for k, s in enumerate(summaries) if len(s) < SUMMARY_LENGTH]
    for start in range(0, len(light), _PARTS_HELD):  # their parts read a few thousand at a time
        chunk = light[start:start + _PARTS_HELD]
        for k, parts in zip(chunk, reuse.parts_of([summaries[k][0] for k in chunk]), strict=True):
            if parts is None or parts["summary"][:-1] != summaries[k]:
                damaged.append(summaries[k][0])
            else:
                summaries[k] = parts["summary"]
    if damaged:
        raise Damaged(damaged)
    return summaries


#: Reused models whose bulky parts :func:`_complete` holds at once (some 3 KB each).
_PARTS_HELD = 2_000


def _empty(folder: Path) -> None:
    """Delete everything in ``folder``."""
    for path in folder.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()


#: The row of a model as search results show it (links relative to the site's root), beside its page:
#: JSON ``{"html": ...}``, as it is a fragment, not a page whose links resolve from its own folder.
ROW_FILE = "row.json"
#: Records per ``api/models/page/<n>.json``.
API_PAGE = 1000


class ApiWriter:
    """``api/models.json`` written as the records come (never held whole), and the paged listings
    ``api/models/page/<n>.json`` with their manifest ``api/models/pages.json``.

    A reused model's line is not passed in: it is copied from the live file (``copy_file_range``, in
    the kernel, one call for each run of lines that were together there too), or read from the manifest
    where the live file cannot be used. Where every line is the live file's, in its order, the live file
    stays. An API page is keyed by its models' keys: one whose models did not change is not made again.
    """

    def __init__(self, out: Path, write: Any, reuse: Reuse):
        self.write = write
        self.reuse = reuse
        self.path = out / API_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # files, not descriptors: closed when dropped too, if the build fails before release()
        self.file = open(self.path, "wb", buffering=0)  # noqa: SIM115
        self.buffer = bytearray(b"[")
        #: Bytes written or queued so far.
        self.size = 1
        #: Where each record's line starts in the file, and its length (bytes).
        self.offsets = array.array("q")
        self.ids: list[str] = []
        self.keys: list[str] = []
        self.count = 0
        self.bytes = 0
        self.source = reuse.api_source()
        self.live: Any = None
        if self.source is not None:
            try:
                self.live = open(self.source[0], "rb", buffering=0)  # noqa: SIM115
            except OSError:
                self.source = None
        #: The run of the live file's lines to copy next: (start, end) in the live file.
        self.run: tuple[int, int] | None = None
        self.runs = 0
        self.missing: list[str] = []
        self.reader: Any = None

    def add(self, model_id: str, key: str, line: str | None) -> None:
        """The next record: its line, or None for a reused model's, taken from the live file."""
        if model_id.startswith("page/") and _API_PAGE_PATH.match(model_id):
            raise BuildError(f"{model_id}: this id clashes with the paged API's files (api/models/{model_id}.json)")
        self.ids.append(model_id)
        self.keys.append(key)
        gap = 1 if self.count == 0 else 2  # "\n" before the first line, ",\n" before the others
        self.count += 1
        span = self.source[1].get(model_id) if line is None and self.source is not None else None
        if span is not None:
            start, length = span
            if self.run is not None and self.run[1] + 2 == start:  # the next line there too: one copy
                self.run = (self.run[0], start + length)
            else:
                self._copy()
                self.buffer += b"\n" if gap == 1 else b",\n"
                self.run = (start, start + length)
                self.runs += 1
            self.offsets.append(self.size + gap)
            self.offsets.append(length)
            self.size += gap + length
            return
        if line is None:
            parts = self.reuse.parts(model_id)
            if parts is None:
                self.missing.append(model_id)
                line = ""
            else:
                line = parts["json"]
        self._copy()
        data = line.encode("utf-8")
        self.buffer += b"\n" if gap == 1 else b",\n"
        self.offsets.append(self.size + gap)
        self.offsets.append(len(data))
        self.buffer += data
        self.size += gap + len(data)
        if len(self.buffer) > 1 << 20:
            self._drain()

    def _drain(self) -> None:
        write_all(self.file.fileno(), self.buffer)
        self.buffer.clear()

    def _copy(self) -> None:
        """Copy the pending run of the live file's lines."""
        if self.run is None:
            return
        self._drain()
        start, end = self.run
        self.run = None
        while start < end:
            try:
                done = os.copy_file_range(self.live.fileno(), self.file.fileno(), end - start, start)
            except OSError:  # not on this system or between these file systems
                data = os.pread(self.live.fileno(), min(end - start, 1 << 20), start)
                done = self.file.write(data) if data else 0
            if done == 0:
                raise BuildError(f"{self.source[0] if self.source else API_FILE}: the file changed during the "
                                 "build; build again")
            start += done

    def close(self) -> None:
        """Finish ``api/models.json``, then write the API pages and their manifest.

        Raises:
            Damaged: reused models whose lines were to come from the manifest had damaged entries.
        """
        if self.missing:
            raise Damaged(self.missing)
        whole = self.source is not None and self.runs == 1 and self.run is not None and self.buffer == b"[\n" and \
            self.count == len(self.source[1]) and self.run[0] == 2 and \
            self.run[1] + 3 == os.fstat(self.live.fileno()).st_size
        if whole:  # every line of the live file, in its order: it stays
            self.file.close()
            os.unlink(self.path)
            self.reuse.kept.append(API_FILE)
            self.reader, self.live = self.live, None
        else:
            self._copy()
            self.buffer += b"\n]\n"
            self.size += 3
            self._drain()
            self.file.close()
            self.reader = open(self.path, "rb", buffering=0)  # noqa: SIM115
        st = os.fstat(self.reader.fileno())
        self.bytes = st.st_size
        self.reuse.api = {"ids": self.ids, "offsets": self.offsets.tobytes(), "size": st.st_size,
                          "mtime_ns": st.st_mtime_ns}
        pages = []
        for n, start in enumerate(range(0, self.count, API_PAGE), 1):
            stop = min(start + API_PAGE, self.count)
            key = hashlib.sha256(repr((n, stop - start)).encode())
            for k in self.keys[start:stop]:
                key.update(k.encode())
            self.write(f"api/models/page/{n}.json", lambda start=start, stop=stop: self._page(start, stop),
                       key=key.hexdigest())
            pages.append({"url": f"api/models/page/{n}.json", "count": stop - start,
                          "first": self.ids[start], "last": self.ids[stop - 1]})
        self.write("api/models/pages.json", json.dumps(
            {"version": 1, "count": self.count, "page_size": API_PAGE, "sort": "id", "pages": pages},
            indent=1) + "\n")

    def _page(self, start: int, stop: int) -> bytes:
        """The lines ``start`` to ``stop`` as a JSON list: in the file they are joined as a page joins them."""
        first = self.offsets[2 * start]
        end = self.offsets[2 * stop - 2] + self.offsets[2 * stop - 1]
        return b"[\n" + os.pread(self.reader.fileno(), end - first, first) + b"\n]\n"

    def line(self, k: int) -> str:
        """The ``k``-th record's line, read back from the file written."""
        return os.pread(self.reader.fileno(), self.offsets[2 * k + 1], self.offsets[2 * k]).decode("utf-8")

    def release(self) -> None:
        """Close the files."""
        for file in (self.file, self.live, self.reader):
            if file is not None:
                file.close()


class Rows:
    """The listing rows of every model in order: a rendered model's in a temporary file rather than in
    memory, a reused model's read from the manifest only if a page that lists it is made again;
    ``rows[i]`` and ``rows[a:b]`` read them, ``keys`` are the models' keys."""

    def __init__(self, file: Any, reuse: Reuse):
        self.file = file
        self.reuse = reuse
        self.offsets = array.array("q", [0])
        #: Per model, its row's place in the file (-1: reused, read from the manifest).
        self.index = array.array("q")
        self.ids: list[str] = []
        self.keys: list[str] = []

    def append(self, model_id: str, key: str, row: str | None) -> None:
        self.ids.append(model_id)
        self.keys.append(key)
        if row is None:
            self.index.append(-1)
            return
        self.index.append(len(self.offsets) - 1)
        self.file.write(row.encode("utf-8"))
        self.offsets.append(self.file.tell())

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k: int | slice) -> Any:
        if isinstance(k, slice):
            found: list[str] = []
            picked = range(*k.indices(len(self)))
            for _, run in itertools.groupby(picked, lambda i: self.index[i] - i if self.index[i] >= 0 else None):
                run = list(run)
                if self.index[run[0]] < 0:  # reused models' rows: from the manifest, read together
                    found += self._reused([self.ids[i] for i in run])
                else:  # rows written one after another: one read
                    found += self._read(self.index[run[0]], self.index[run[-1]] + 1)
            return found
        i = self.index[k]
        if i < 0:
            return self._reused([self.ids[k]])[0]
        return self._read(i, i + 1)[0]

    def pick(self, picked: list[int]) -> list[str]:
        """The rows of the models at ``picked`` (a group listing's page): the reused ones' read together."""
        reused = [i for i in picked if self.index[i] < 0]
        rows = dict(zip(reused, self._reused([self.ids[i] for i in reused]), strict=True))
        return [rows[i] if i in rows else self._read(self.index[i], self.index[i] + 1)[0] for i in picked]

    def _reused(self, ids: list[str]) -> list[str]:
        """The rows of reused models, from the manifest.

        Raises:
            Damaged: the entries of some of them are damaged.
        """
        parts = self.reuse.parts_of(ids)
        damaged = [model_id for model_id, found in zip(ids, parts, strict=True) if found is None]
        if damaged:
            raise Damaged(damaged)
        return [found["entry"] for found in parts]  # type: ignore[index]

    def _read(self, first: int, stop: int) -> list[str]:
        """The rows written ``first`` to ``stop`` (their places in the file)."""
        self.file.flush()
        base = self.offsets[first]
        data = os.pread(self.file.fileno(), self.offsets[stop] - base, base)
        return [data[a - base:b - base].decode("utf-8") for a, b in itertools.pairwise(self.offsets[first:stop + 1])]

    def close(self) -> None:
        self.file.close()


_API_PAGE_PATH = re.compile(r"^page/\d+$")


def model_files(models: list[Model], config: Config) -> Callable[[], Iterator[tuple[str, tuple[str, ...]]]]:
    """Each of ``models``' id and files (:func:`_files`), as :meth:`Reuse.watch` and :meth:`Reuse.changed`
    take them: a function that gives them anew at each call."""
    return lambda: ((model.repo_id, _files(model, config)) for model in models)


def _files(model: Model, config: Config) -> tuple[str, ...]:
    """Every file written for a model (beside its outputs, its search row): a rebuild asks it of every model."""
    return outputs(model, not config.torrent_url, ROW_FILE)


def _rooted(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its site links relative to ``ROOT``, filled in for each page the row is on."""
    links = {k: ROOT + record[k] for k in ("page", "torrent") if "://" not in record[k]}
    return dict(record, **links)


def _group_listings(env: jinja2.Environment, write: Any, summaries: list[list], entries: Rows,
                    site: dict[str, Any]) -> None:
    """``orgs/<org>/`` and ``formats/<slug>/`` listings, and the pages that list them."""
    orgs: dict[str, list[int]] = {}
    formats: dict[str, list[int]] = {}
    for k, s in enumerate(summaries):
        orgs.setdefault(s[1], []).append(k)
        for f in s[2]:
            formats.setdefault(f, []).append(k)
    for kind, heading, found, folder in (("orgs", "Orgs", orgs, lambda o: o),
                                         ("formats", "Formats", formats, slug)):
        listed = []
        for name in sorted(found, key=str.lower):
            base = f"{kind}/{folder(name)}/"
            write_listing(env, write, base, Subset(entries, found[name]), f"{name}",
                          keys=list(map(entries.keys.__getitem__, found[name])), **site)
            listed.append((name, base, len(found[name])))
        write(f"{kind}/index.html", functools.partial(_groups_page, env, heading, listed, site),
              key=repr((kind, heading, listed)))


def _groups_page(env: jinja2.Environment, heading: str, listed: list[tuple[str, str, int]],
                 site: dict[str, Any]) -> str:
    """The page that lists the groups of a kind (each group's name, folder and count of models)."""
    return env.get_template("groups.html").render(heading=heading, groups=listed, root="../", **site)


class Subset:
    """Some of the rows, by their indices: ``len`` and slices, as :func:`write_listing` reads them."""

    def __init__(self, rows: Rows, indices: list[int]):
        self.rows, self.indices = rows, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: slice) -> list[str]:
        return self.rows.pick(self.indices[k])


def _digest(model: Model, digests: dict[str, str] | None) -> str:
    """The SHA-256 of the model's torrent file: from ``digests`` (absolute path -> digest), else computed."""
    digests = digests or {}
    # a build's paths are absolute already: abspath only where they are not
    digest = digests.get(model.path) or digests.get(os.path.abspath(model.path))
    if digest is None:
        digest = hashlib.sha256(full_torrent(model.torrent, model.torrent_path).raw).hexdigest()
    return digest


def _inputs(model: Model, digests: dict[str, str] | None) -> dict[str, Any]:
    """Everything a model's outputs are made from besides the config and the templates."""
    return {
        "torrent": _digest(model, digests),
        "committed": model.committed,  # last_modified falls back to it
        "file": os.path.basename(model.path),
        "repo": [model.repo_id, model.revision, model.revision_source, model.rel_path],
        "sidecar": model.sidecar,
        "meta": repr(model.meta),
        "problems": list(model.problems),
        "health": model.health.digest if model.health else None,
    }


def _quick(common: str, model: Model, stamp: tuple | None, stand_in: object) -> tuple | None:
    """What a model's key (as the catalog has it) is made from, with the :func:`~modelreg.registry.catalog.stamps`
    of its files (``stamp``) standing for their contents (:func:`_inputs` reads them: path, torrent,
    sidecar) and ``stand_in`` for what ``prepare`` adds: where it is the one stored with the last build's
    key, the key is that one (:meth:`Reuse.lookup`). None where the files have no stamp, or the model
    holds metadata already (its key covers it, the tuple does not)."""
    if stamp is None or model.meta is not None:
        return None
    return common, stamp, model.committed, model.problems, model.health.digest if model.health else None, stand_in


def render_model(env: jinja2.Environment, entry: jinja2.Template, model: Model, config: Config, out: Path,
                 digest: str, parsed: tuple[int, int, int, int] | None) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Write a model's files into ``out``: its page, API record, row and .torrent; return its parts of
    the shared files and the files written (relative to ``out``).

    ``digest`` is the SHA-256 of the torrent's bytes the model was made from, ``parsed`` the torrent's
    :func:`~modelreg.site.parsecache.identity` when they were read (None: unknown).

    Raises:
        BuildError: the torrent changed since it was read.
    """
    paths = Paths(model)
    record = model_record(model, config)
    line = _json(record)
    _render_model(env, model, record, line, paths, config, out, digest, parsed)
    row = entry.render(r=_rooted(record))
    _put(os.path.join(out, paths.page, ROW_FILE),  # beside the page _render_model wrote
         json.dumps({"html": row.replace(ROOT, "")}, ensure_ascii=False).encode("utf-8"))
    parts = {
        "json": line,
        "entry": row,
        "summary": summary(record, (f.path_str for f in model.torrent.files)),
        "dated": [record["page"], record["last_modified"]],
        "problems": list(model.problems),
    }
    return parts, _files(model, config)


def _render_model(env: jinja2.Environment, model: Model, record: dict, line: str, paths: Paths, config: Config,
                  out: Path, digest: str, parsed: tuple[int, int, int, int] | None) -> None:
    """``line`` is ``record`` as :func:`_json` writes it; the API file is that record with its files."""
    page = os.path.join(out, paths.page)
    _folder(page)  # once for the page and the .torrent beside it
    if not config.torrent_url:
        _write_torrent(os.path.join(out, paths.torrent_file), model, config, digest, parsed)
    infos = file_infos(model, config)
    api = os.path.join(out, paths.api)
    _folder(os.path.dirname(api))
    # _json(dict(record, files=...)) without encoding the record twice: the record has no "files" key
    _put(api, f'{line[:-1]}, "files": {_json(file_list(infos))}}}\n'.encode())
    meta = model.meta
    card = None
    if meta and meta.card_markdown:
        card = render_card(meta.card_markdown, _hf_url(config, model, "blob"), _hf_url(config, model, "resolve"))
    torrent_href = record["torrent"]
    if "://" not in torrent_href:
        torrent_href = _relative_root(paths.page) + torrent_href
    tree = file_tree(model.torrent.name, infos)
    html = env.get_template("model.html").render(
        model=model, meta=meta, record=record, tree=tree, card=card, config=config, notes=visitor_notes(model),
        files_html=file_tree_html(tree, model, record["torrent_url"] or model.torrent_path.name),
        hf_url=_hf_url(config, model, "tree"), root=_relative_root(paths.page), torrent_href=torrent_href,
    )
    _put(os.path.join(page, "index.html"), html.encode("utf-8"))


def _write_torrent(dest: str, model: Model, config: Config, digest: str,
                   parsed: tuple[int, int, int, int] | None) -> None:
    """Write the .torrent as served: the registry's bytes, with the config's trackers and web seeds if any.

    A torrent that came slim from the parse cache is copied from the registry while its stat is still
    ``parsed`` (the kernel copies it, unread and unhashed); otherwise it is read again, and must still be
    the bytes the record was made from.

    Raises:
        BuildError: the torrent's bytes are no longer those of ``digest``.
    """
    torrent = model.torrent
    if not torrent.raw and parsed is not None and not (config.trackers or config.webseeds) \
            and _copy_unchanged(model.torrent_path, dest, parsed):
        return
    data = torrent.raw
    if not data:
        data = model.torrent_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != digest:
            raise BuildError(f"{model.torrent_path}: the file changed during the build; build again")
    if config.trackers or config.webseeds:
        if not torrent.raw:
            torrent = Torrent.from_bytes(data, source=str(model.torrent_path))
        data = torrent_with_extras(torrent, config.trackers, config.webseeds)
    _put(dest, data)


def _copy_unchanged(source: Path, dest: str, parsed: tuple[int, int, int, int]) -> bool:
    """Copy ``source`` to the new file ``dest`` if its stat is ``parsed`` before and after; False (and
    nothing written) where it is not, or it cannot be opened."""
    try:
        fd = os.open(source, READ_FLAGS)
    except OSError:
        return False
    try:
        if identity(os.fstat(fd)) != parsed:
            return False
        with open(dest, "wb") as f:
            copied = _copy_file(fd, f.fileno(), parsed[0])
        if copied == parsed[0] and identity(os.fstat(fd)) == parsed:
            return True
        os.unlink(dest)  # changed while copied: read and checked instead
        return False
    finally:
        os.close(fd)


def _copy_file(src: int, dst: int, size: int) -> int:
    """Copy up to ``size`` bytes from the start of ``src`` into ``dst`` (the kernel's copy where it has
    one); the number of bytes copied."""
    done = 0
    try:
        while done < size:
            n = os.copy_file_range(src, dst, size - done, done, done)
            if n == 0:
                break
            done += n
        return done
    except (OSError, AttributeError):  # no copy_file_range here (old kernel, other system, file system)
        pass
    while done < size:
        chunk = os.pread(src, min(size - done, 1 << 20), done)
        if not chunk:
            break
        os.pwrite(dst, chunk, done)
        done += len(chunk)
    return done


def _hf_url(config: Config, model: Model, kind: str) -> str:
    """The repository on the HF endpoint at the model's revision (``tree``, ``blob`` or ``resolve``)."""
    return f"{config.hf_endpoint}/{model.repo_id}/{kind}/{model.revision or 'main'}/"


def _relative_root(page_dir: str) -> str:
    """The relative path from a page's folder back to the site's root ('' for the root itself)."""
    return "../" * page_dir.count("/")


def _facets(summaries: list[list]) -> dict[str, Any]:
    """The values the index's filters offer, each sorted."""
    def values(i: int) -> list[str]:
        return sorted({s[i] for s in summaries if s[i]}, key=str.lower)

    return {
        "license": values(3),
        "task": values(4),
        "org": values(1),
        "format": sorted({f for s in summaries for f in s[2]}, key=str.lower),
        "popularity": any(s[8] >= 0 for s in summaries),
    }


def _config_key(config: Config) -> dict[str, Any]:
    return {k: v for k, v in vars(config).items() if k not in ("root", "registry", "out", "theme_dir")}


def _json(value: Any) -> str:
    """Compact JSON on one line: without ``indent`` the json module's C encoder does the work (10x faster)."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def _readable(folder: Path) -> None:
    """The staging folder is made private (0700) by mkdtemp; a site must be readable by a web server."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)


def _put(path: str, data: bytes) -> None:
    """Write a new file whose folder exists (by file descriptor: a build writes four files per model, and
    a Python file object costs a fifth of what creating the file does).

    Raises:
        OSError: the file cannot be created or written.
    """
    fd = os.open(path, _WRITE_FLAGS, 0o666)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC


def _folder(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)`` in one system call where the parent is there (two per model).

    Raises:
        OSError: the folder cannot be made (a file in its place fails the first write into it).
    """
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)

