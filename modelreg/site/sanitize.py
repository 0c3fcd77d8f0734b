"""Model cards to safe HTML: Markdown rendered, then sanitized with nh3, because a card is untrusted input.

A card is written by whoever owns the Hugging Face repository. It may hold raw HTML, so after Markdown
the result goes through nh3's allow-list: no ``<script>``/``<style>``/``<iframe>``, no event handler
attributes, no ``javascript:``/``data:`` URLs, and every link gets ``rel="nofollow noopener noreferrer"``.
Relative links and images point into the repository at the pinned revision, where the card means them.

Images are not loaded: the site loads nothing from another host (a card's images live on the hub or
anywhere its author likes, and loading one tells that host who is reading). Each ``<img>`` becomes a
link to the image, ``[image: <alt>]`` (inside a link, just that text, as links cannot nest).
"""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import markdown
import nh3

_FRONT_MATTER = re.compile(r"\A---\s*\n.*?\n---\s*(?:\n|\Z)", re.S)
_EXTENSIONS = ["tables", "fenced_code", "sane_lists", "toc"]
_SCHEMES = {"http", "https", "mailto"}
_TAGS = set(nh3.ALLOWED_TAGS)
_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "img": {"src", "alt", "title", "width", "height"},
    "a": {"href", "title"},
    "th": {"align"},
    "td": {"align"},
    "h1": {"id"}, "h2": {"id"}, "h3": {"id"}, "h4": {"id"}, "h5": {"id"}, "h6": {"id"},
}
LINK_REL = "nofollow noopener noreferrer"
#: ``<a>`` and ``<img>`` tags as nh3 writes them: lower-case names, every value in double quotes (with
#: ``"`` escaped), and ``<`` escaped in text, so a tag cannot hide in a value or in text.
_TAG = re.compile(r'<(/?)(a|img)((?:\s+[a-z][a-z0-9-]*(?:="[^"]*")?)*)\s*/?>')
_ATTR = re.compile(r'([a-z][a-z0-9-]*)="([^"]*)"')
#: The card's element ids are prefixed so that they cannot clash with the page's own.
ID_PREFIX = "card-"


def strip_front_matter(text: str) -> str:
    """The card without its YAML header (the metadata block HF shows as tags, not as text)."""
    return _FRONT_MATTER.sub("", text, count=1)


def render_card(text: str, repo_url: str | None = None, file_url: str | None = None) -> str:
    """Markdown card -> sanitized HTML.

    ``repo_url`` (``.../blob/<rev>/``) and ``file_url`` (``.../resolve/<rev>/``) are where relative links
    and images of the card lead; without them relative URLs are dropped, since they would point into
    this site instead.
    """
    html = markdown.markdown(strip_front_matter(text), extensions=_EXTENSIONS, output_format="html")
    return clean_html(html, repo_url, file_url)


def clean_html(html: str, repo_url: str | None = None, file_url: str | None = None) -> str:
    """Sanitize an HTML fragment with nh3 and the card's allow-list."""

    def rewrite(tag: str, attr: str, value: str) -> str | None:
        if attr not in ("href", "src"):
            return value
        if value.startswith("#"):
            return "#" + ID_PREFIX + value[1:]  # heading ids get the prefix too
        if urlsplit(value).scheme:
            return value  # nh3 drops schemes outside the allow-list after this filter
        base = file_url if (tag == "img" and attr == "src") else repo_url
        return urljoin(base, value) if base else None

    return images_to_links(nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=rewrite,
        url_schemes=_SCHEMES,
        link_rel=LINK_REL,
        strip_comments=True,
        id_prefix=ID_PREFIX,
    ))


def images_to_links(html: str) -> str:
    """Every ``<img>`` of nh3's output as a link to the image (or its text alone inside a link)."""
    depth = 0

    def replace(m: re.Match) -> str:
        nonlocal depth
        closing, tag = m.group(1), m.group(2)
        if tag == "a":
            depth = max(0, depth + (-1 if closing else 1))
            return m.group(0)
        attrs = dict(_ATTR.findall(m.group(3)))  # values stay escaped: they are valid text and attributes
        label = f"[image: {attrs['alt']}]" if attrs.get("alt", "").strip() else "[image]"
        if depth or not attrs.get("src"):
            return label
        return f'<a href="{attrs["src"]}" rel="{LINK_REL}">{label}</a>'

    return _TAG.sub(replace, html)
