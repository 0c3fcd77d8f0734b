"""Model cards to safe HTML: Markdown rendered, then sanitized with nh3, because a card is untrusted input.

A card is written by whoever owns the Hugging Face repository. It may hold raw HTML, so after Markdown
the result goes through nh3's allow-list: no ``<script>``/``<style>``/``<iframe>``, no event handler
attributes, no ``javascript:``/``data:`` URLs, and every link gets ``rel="nofollow noopener noreferrer"``.
Relative links and images point into the repository at the pinned revision, where the card means them.
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

    return nh3.clean(
        html,
        tags=_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=rewrite,
        url_schemes=_SCHEMES,
        link_rel=LINK_REL,
        strip_comments=True,
        id_prefix=ID_PREFIX,
    )
