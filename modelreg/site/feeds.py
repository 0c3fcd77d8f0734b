"""``feed.xml`` (Atom, newest first, each entry with its .torrent as enclosure) and ``sitemap.xml`` (a sitemap,
or an index of sitemaps past :data:`SITEMAP_URLS` models)."""

from __future__ import annotations

import heapq
import uuid
from typing import Any

import jinja2

from modelreg.config import Config

FEED_ENTRIES = 500


def absolute(config: Config, path: str) -> str:
    """A site path as a URL: absolute with ``site_url``, else rooted at ``base_url`` (same host).
    An absolute URL (a .torrent served from ``torrent_url``) stays as it is."""
    if "://" in path:
        return path
    return f"{config.site_url}{config.base_url}{path}"


#: Atom requires a date per entry: a model whose last change is unknown gets this one (and comes last).
UNKNOWN_DATE = "1970-01-01T00:00:00Z"


def newest_first(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records by last change, newest first, unknown dates last; ties by id, so the order is the same on
    every build."""
    by_id = sorted(records, key=lambda r: r["id"].lower())
    return sorted(by_id, key=lambda r: r["last_modified"] or "", reverse=True)


def newest_cut(dates: list[str | None], count: int) -> str:
    """The last change at or after which the ``count`` newest of records with these ``dates`` are, in
    :func:`newest_first`'s order (unknown dates, as "", last): the feed's records are found among them,
    without sorting every model's ("": all)."""
    if len(dates) <= count:
        return ""
    return heapq.nlargest(count, (date or "" for date in dates))[-1]


def feed_xml(env: jinja2.Environment, config: Config, records: list[dict[str, Any]]) -> str:
    """The Atom feed of the newest models (a client's RSS downloader can mirror the registry from it)."""
    entries = newest_first(records)[:FEED_ENTRIES]
    updated = (entries[0]["last_modified"] if entries else None) or UNKNOWN_DATE
    # Atom ids must be absolute IRIs: the site's URL, or else a name-based UUID of title and base path.
    feed_id = absolute(config, "") if config.site_url else (
        "urn:uuid:" + str(uuid.uuid5(uuid.NAMESPACE_URL, f"modelreg:{config.title}:{config.base_url}")))
    return env.get_template("feed.xml").render(
        config=config, entries=entries, updated=updated, feed_id=feed_id, url=lambda p: absolute(config, p),
        unknown=UNKNOWN_DATE
    )


#: URLs in one sitemap file. The protocol allows 50,000 (and 50 MB): past this many models ``sitemap.xml``
#: is an index of files of this many, ``sitemaps/<n>.xml``, each made again only where one of its models
#: changed.
SITEMAP_URLS = 10_000


def sitemap_xml(env: jinja2.Environment, config: Config, records: list[dict[str, Any]], first: bool = True) -> str:
    """A sitemap of ``records`` (each a page and its last change), after the front page and the API's with
    ``first`` (the whole sitemap, or the first of its files). Only with ``site_url``: sitemaps require
    absolute URLs."""
    return env.get_template("sitemap.xml").render(records=records, first=first, url=lambda p: absolute(config, p))


def sitemap_index(env: jinja2.Environment, config: Config, parts: list[tuple[str, str | None]]) -> str:
    """``sitemap.xml`` of a sitemap in files: each file's path and the last change of its models (None:
    unknown)."""
    return env.get_template("sitemap-index.xml").render(parts=parts, url=lambda p: absolute(config, p))
