"""Listing pages that work without JavaScript: the models by name, ``PAGE_SIZE`` to a page.

The front page is the first page; the next are ``page/2/``, ``page/3/``... Each org has the same under
``orgs/<org>/`` and each format under ``formats/<slug>/``, and ``orgs/`` and ``formats/`` list them.
Rows are rendered once per model from ``entry.html`` with ``ROOT`` in place of the path back to the
site's root, which :func:`rows_at` fills in for the page's depth. Every link between listing pages is
made by :func:`href`, the one place to adapt (for example to ``.../index.html`` links for file browsing).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import Any

import jinja2

from modelreg.site.records import link

PAGE_SIZE = 50
#: Stands for the relative path to the site's root in a rendered row; never in a model's data.
ROOT = "\x00root\x00"


def href(root: str, folder: str, directory_urls: bool = True) -> str:
    """The link from a page whose way back to the site's root is ``root`` to the folder ``folder``
    of the site ('' for the root itself); without ``directory_urls`` it names the folder's ``index.html``
    (the config's ``use_directory_urls``: the site then works from ``file://``)."""
    return link(root + folder, directory_urls)


def linker(directory_urls: bool) -> Callable[[str, str], str]:
    """:func:`href` for one site's ``use_directory_urls``."""
    return partial(href, directory_urls=directory_urls)


def page_folder(base: str, number: int) -> str:
    """The folder of page ``number`` (from 1) of the listing in ``base`` ('' for the front page)."""
    return base if number == 1 else f"{base}page/{number}/"


def slug(value: str) -> str:
    """A format's folder name: lower case, anything but letters and digits as '-'."""
    return re.sub(r"[^a-z0-9]+", "-", value.lower()).strip("-") or "other"


def rows_at(entries: list[str], root: str) -> str:
    """The rows of a page with the path back to the root filled in."""
    return "".join(entries).replace(ROOT, root)


def pager(base: str, number: int, pages: int, root: str, href: Callable[[str, str], str] = href) -> dict[str, Any]:
    """Links to the previous and next pages and to a few around this one, for ``_pager.html``."""
    shown = sorted({1, pages, *range(max(1, number - 2), min(pages, number + 2) + 1)})
    links, last = [], 0
    for n in shown:
        if n > last + 1:
            links.append(None)  # a gap
        links.append({"n": n, "href": href(root, page_folder(base, n)), "current": n == number})
        last = n
    return {
        "number": number, "pages": pages, "links": links,
        "prev": href(root, page_folder(base, number - 1)) if number > 1 else None,
        "next": href(root, page_folder(base, number + 1)) if number < pages else None,
    }


def write_listing(env: jinja2.Environment, write: Callable[..., None], base: str, entries: Sequence[str],
                  heading: str, first_page: Callable[..., str] | None = None, first_key: str = "",
                  keys: Sequence[str] | None = None, **context: Any) -> int:
    """Write the pages of one listing under the folder ``base``; return how many.

    ``first_page(rows=..., pager=..., root=...)`` renders page 1 where it is special (the front page);
    the others use ``listing.html``; ``first_key`` is what else page 1 is then made from. Each page goes
    to ``write(rel, render, key=...)`` as a function that renders it and the digest of what it is made
    from (its rows, its place among the pages, ``context`` but for ``config`` and ``href``, which the
    caller's key covers), so an unchanged page need not be rendered again. With ``keys`` (a key per
    entry that changes whenever its row does, such as its model's key) the digest is made of those,
    and no row is read unless its page is rendered.
    """
    pages = max(1, -(-len(entries) // PAGE_SIZE))
    link_to = context.pop("href", href)
    template = cache(lambda: env.get_template("listing.html"))  # compiled only if a page is made
    shared = repr(sorted((k, v) for k, v in context.items() if k != "config"))
    for number in range(1, pages + 1):
        folder = page_folder(base, number)
        root = "../" * folder.count("/")
        start, stop = (number - 1) * PAGE_SIZE, number * PAGE_SIZE

        def render(number: int = number, root: str = root, start: int = start, stop: int = stop) -> str:
            values = dict(context, rows=rows_at(entries[start:stop], root), pager=pager(base, number, pages, root, link_to),
                          root=root, heading=heading, total=len(entries), first=(number - 1) * PAGE_SIZE + 1,
                          last=min(number * PAGE_SIZE, len(entries)), href=link_to)
            if number == 1 and first_page is not None:
                return first_page(**values)
            return template().render(**values)

        special = number == 1 and first_page is not None
        digest = hashlib.sha256(repr((base, number, pages, len(entries), heading, special,
                                      first_key if special else "", shared)).encode())
        listed = entries[start:stop] if keys is None else keys[start:stop]
        if listed:  # each row or key followed by a NUL
            digest.update(("\0".join(listed) + "\0").encode())
        write(folder + "index.html", render, key=digest.hexdigest())
    return pages
