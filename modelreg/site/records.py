"""What the site says about a model: its paths in the site, its JSON API record and its file tree.

Links between pages are made by :func:`link` (the templates' ``link`` filter), the one place that knows
whether the site is served by a web server (``models/org/name/``) or browsed from disk
(``models/org/name/index.html``, with ``use_directory_urls = false``).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape

from modelreg.config import Config
from modelreg.hf.metadata import RepoFile
from modelreg.registry.catalog import Model
from modelreg.registry.crosscheck import compare_files, match_file
from modelreg.site.formats import detect_formats
from modelreg.torrent.magnet import magnet_link
from modelreg.units import utc_timestamp


@dataclass(frozen=True)
class Paths:
    """Where a model's files live in the site, relative to the site's root (never starting with '/')."""

    model: Model

    @property
    def page(self) -> str:
        return f"models/{self.model.repo_id}/"

    @property
    def torrent_file(self) -> str:
        """The served .torrent, beside the page (one folder per model keeps rebuilds cheap)."""
        # the name from the path's text: a rebuild asks every model's files, and a Path costs 10x more
        return f"{self.page}{_basename(self.model.path)}"

    @property
    def torrent(self) -> str:
        """The torrent's URL path (the file name percent-encoded)."""
        return f"{self.page}{quote(os.path.basename(self.model.path))}"

    @property
    def api(self) -> str:
        return f"api/models/{self.model.repo_id}.json"

    def outputs(self, torrent: bool = True, beside: str | None = None) -> tuple[str, ...]:
        """Every file written for this model (without its .torrent where the site serves none), and the
        file named ``beside`` in its page's folder (:func:`outputs`)."""
        return outputs(self.model, torrent, beside)


def outputs(model: Model, torrent: bool = True, beside: str | None = None) -> tuple[str, ...]:
    """:meth:`Paths.outputs`, the same strings as its properties make, without a :class:`Paths` or a call
    per property: a rebuild asks it of every model, twice (a microsecond, against four)."""
    page = f"models/{model.repo_id}/"
    api = f"api/models/{model.repo_id}.json"
    found = (page + "index.html", page + _basename(model.path), api) if torrent else (page + "index.html", api)
    return found if beside is None else (*found, page + beside)


def _basename(path: str) -> str:
    """``os.path.basename``, at a third of its cost where ``/`` is the only separator."""
    if os.sep == "/" and not os.altsep:
        return path[path.rfind("/") + 1:]
    return os.path.basename(path)


def link(path: str, directory_urls: bool = True) -> str:
    """A relative link to a page folder (``''``, ``../``, ``models/org/name/``) or a file.

    With ``directory_urls`` a folder's link ends in ``/`` (``./`` for the current folder), as a web
    server serves its ``index.html``; without, it names ``index.html``, which also works from ``file://``.
    Links to files (a ``.torrent``, ``feed.xml``) are left as they are.
    """
    if path and not path.endswith("/"):
        return path
    if directory_urls:
        return path or "./"
    return path + "index.html"


def last_modified(model: Model) -> str | None:
    """When the model last changed, as ISO 8601 UTC, from what is the same in every copy of the registry:
    HF's lastModified, else the torrent's creation date, else the registry's last git commit of the
    torrent file; else None (unknown, sorted last). Never a file's modification time."""
    if model.meta and model.meta.last_modified:
        return _iso(_parse_iso(model.meta.last_modified))
    for when in (model.torrent.creation_date, model.committed):
        if when is not None:
            return _iso(dt.datetime.fromtimestamp(max(0, when), dt.UTC))
    return None


def _parse_iso(text: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.UTC)
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _iso(when: dt.datetime) -> str:
    return utc_timestamp(when)


def torrent_url(config: Config, model: Model, paths: Paths) -> str | None:
    """The .torrent's absolute URL: the registry's own file under ``torrent_url`` (the site copies none),
    else the site's copy when the site knows its own address (``site_url``), else None."""
    if config.torrent_url:
        return config.torrent_url + quote(model.rel_path)
    return f"{config.site_url}{config.base_url}{paths.torrent}" if config.site_url else None


def model_record(model: Model, config: Config) -> dict[str, Any]:
    """One model in ``api/models.json``; every other output of the site is rendered from this record."""
    t, paths, meta = model.torrent, Paths(model), model.meta
    absolute = torrent_url(config, model, paths)
    return {
        "id": model.repo_id,
        "org": model.org,
        "name": t.name,
        "revision": model.revision,
        "pinned": model.pinned,
        "page": paths.page,
        "torrent": absolute if config.torrent_url else paths.torrent,
        "torrent_url": absolute,
        "magnet": magnet_link(t, config.trackers, config.webseeds, source=absolute),
        "infohash_v1": t.infohash_v1,
        "infohash_v2": t.infohash_v2,
        "size": t.total_size,
        "file_count": len(t.files),
        "piece_length": t.piece_length,
        "num_pieces": t.num_pieces,
        "webseeds": list(dict.fromkeys([*t.webseeds, *config.webseeds])),
        "trackers": list(dict.fromkeys([*t.trackers, *config.trackers])),
        "license": meta.license if meta else None,
        "tags": list(meta.tags) if meta else [],
        "pipeline_tag": meta.pipeline_tag if meta else None,
        "library": meta.library_name if meta else None,
        "base_model": list(meta.base_model) if meta else [],
        "parameters": meta.parameters if meta else None,
        "downloads": meta.downloads if meta else None,
        "likes": meta.likes if meta else None,
        "trending_score": meta.trending_score if meta else None,
        "gated": (meta.gated or False) if meta else None,
        "formats": detect_formats((f.path_str for f in t.files), meta.tags if meta else (), (model.repo_id, t.name),
                                  meta.library_name if meta else None),
        "last_modified": last_modified(model),
        "problems": list(model.problems),
        "health": model.health.summary() if model.health else None,
    }


@dataclass(slots=True)
class FileInfo:
    """One file of the torrent as a visitor fetches it alone."""

    path: str  # in the torrent (relative to its folder)
    size: int
    #: aria2c's ``--select-file`` index: 1-based in the v1 file list, pad files counted; None for v2-only.
    index: int | None
    #: HF's ``resolve`` URL at the torrent's revision (None without a known revision).
    url: str | None
    sha256: str | None

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]


def file_infos(model: Model, config: Config) -> list[FileInfo]:
    """Every file of the torrent (pad files left out), in torrent order, with how to fetch it alone.

    Computed once per rendered model: the API's file list and the page's file tree are both made from it.
    """
    t, meta = model.torrent, model.meta
    hf = {f.path: f for f in meta.files} if meta and meta.files else None
    base = (f"{config.hf_endpoint}/{model.repo_id}/resolve/{quote(model.revision, safe='')}/"
            if model.revision else None)
    indexes: dict[str, int] = {}
    if t.infohash_v1:  # aria2c reads the v1 file list, pad files included; it cannot read a v2-only torrent
        indexes = {"/".join(f.path): n for n, f in enumerate(t.layout, 1) if not f.is_pad}
    infos = []
    for f in t.files:
        path = "/".join(f.path)
        repo_file: RepoFile | None = match_file(path, hf, t.single_file) if hf else None
        url = f"{base}{quote(repo_file.path if repo_file else path)}" if base is not None else None
        infos.append(FileInfo(path, f.size, indexes.get(path), url, repo_file.lfs_sha256 if repo_file else None))
    return infos


def file_list(infos: list[FileInfo]) -> list[dict[str, Any]]:
    """The torrent's files (pad files left out) for ``api/models/<org>/<name>.json``: path, size, SHA-256
    (where HF lists it), aria2c's ``--select-file`` index and HF's URL at the revision."""
    return [{"path": f.path, "size": f.size, "sha256": f.sha256, "select_file": f.index, "url": f.url}
            for f in infos]


def visitor_notes(model: Model) -> list[str]:
    """What a visitor should know before downloading, in their terms (the operator's version of each is
    in ``problems``, the build summary and the API)."""
    notes = []
    meta = model.meta
    if not model.pinned:
        notes.append("This torrent is not tied to a fixed revision: the details from Hugging Face below may "
                     "describe newer files than the torrent holds.")
    if meta is not None:
        errors, _ = compare_files(model.torrent, meta)
        if errors:
            notes.append("The file list differs from Hugging Face at this revision: the Hugging Face web seed "
                         "cannot serve every file, so the download may need other peers.")
        if meta.gated:
            notes.append("This model is gated on Hugging Face: fetching its files from Hugging Face itself (its "
                         "links below, or a web seed on huggingface.co) needs an account that accepted its terms "
                         "there.")
    return notes


@dataclass
class Folder:
    """A folder of the file tree, with its total size and file count for the ``<summary>``."""

    name: str
    folders: dict[str, Folder] = field(default_factory=dict)
    files: list[FileInfo] = field(default_factory=list)
    size: int = 0
    count: int = 0

    def sorted_folders(self) -> list[Folder]:
        return sorted(self.folders.values(), key=lambda f: f.name.lower())


def file_tree(name: str, infos: list[FileInfo]) -> Folder:
    """The torrent's files (:func:`file_infos`) as nested folders relative to the torrent's own folder,
    ``name``. A single-file torrent has no folder: its root holds the one file."""
    root = Folder(name)
    for f in infos:
        node = root
        node.size += f.size
        node.count += 1
        for part in f.path.split("/")[:-1]:
            child = node.folders.get(part)
            if child is None:
                child = node.folders[part] = Folder(part)
            node = child
            node.size += f.size
            node.count += 1
        node.files.append(f)
    return root


_HTML_SPECIAL = re.compile("[&<>\"']")


def _escape(text: str) -> str:
    """``markupsafe.escape`` as text, without making a copy of the (commonest) text that needs none."""
    return str(escape(text)) if _HTML_SPECIAL.search(text) else text


def file_tree_html(tree: Folder, model: Model, ref: str) -> Markup:
    """The file tree of ``model.html`` (its ``#files`` list), made here in one pass: as Jinja macros, one
    call per file and folder, it was most of the time of rendering a model page.

    Every value from the torrent or the metadata is escaped (``markupsafe.escape``, as the templates'
    autoescape does). ``ref`` is how the page's commands name the .torrent (its URL or file name).
    """
    out: list[str] = []
    single = model.torrent.single_file
    aria_ref = _escape(shlex.quote(ref))
    if model.revision is None:
        at = ""
    elif model.pinned:
        at = f"commit {_escape(model.revision[:12])}"
    else:
        at = _escape(model.revision)

    def folder(node: Folder, depth: int) -> None:
        out.append('<ul class="tree">\n')
        opened = " open" if depth < 1 or node.count <= 40 else ""
        for sub in node.sorted_folders():
            out.append(f'<li class="dir"><details{opened}><summary><span class="fname">{_escape(sub.name)}/</span>'
                       f'<span class="fsize">{plural(sub.count, "file")} · {human_size(sub.size)}'
                       "</span></summary>\n")
            folder(sub, depth + 1)
            out.append("\n</details></li>\n")
        for f in node.files:
            name = _escape(f.name)
            out.append(f'<li class="file"><details class="fget"><summary><span class="fname">{name}</span>'
                       f'<span class="fsize" title="{f.size:,} bytes">{human_size(f.size)}</span></summary>\n'
                       '<div class="fbody">\n')
            if f.index and not single:
                out.append(f"<p>Only this file, with aria2c:</p>\n"
                           f'<div class="snippet"><pre><code>aria2c --seed-time=0 --select-file={f.index} {aria_ref}'
                           '</code></pre><button type="button" class="btn copy-btn js-only" data-copy-code '
                           f'aria-label="Copy the aria2c {name} command">Copy</button></div>\n\n')
            if f.url:
                out.append(f'<p><a href="{_escape(f.url)}" rel="nofollow noopener">{name} on Hugging Face</a> '
                           f'<span class="muted">(over HTTP, at {at})</span></p>')
            if f.sha256:
                out.append(f'<p>SHA-256 <code class="wrap-any sha">{_escape(f.sha256)}</code></p>')
            out.append("</div></details></li>\n\n")
        out.append("</ul>\n")

    folder(tree, 0)
    return Markup("".join(out))


def human_size(n: int | None) -> str:
    """Bytes in decimal units, as download tools and HF show them (8.1 GB)."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if value < 1000 or unit == "PB":
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def binary_size(n: int) -> str:
    """A power-of-two size such as a piece length: 4 MiB, 16 KiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def plural(n: int, word: str) -> str:
    """``1 file``, ``2 files``."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def human_count(n: int | None) -> str:
    """A parameter or download count the way model cards write it: 7.6B, 350M, 12k."""
    if n is None:
        return ""
    for div, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "k")):
        if n >= div:
            value = n / div
            return f"{value:.1f}".rstrip("0").rstrip(".") + suffix
    return str(n)
