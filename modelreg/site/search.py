"""``search.json``: the compact index the index page's script filters and sorts by.

One row per model, in the order of the ``<li>`` elements of ``#results`` (the catalog's order), so the
script toggles ``hidden`` on elements that already exist instead of building any. Columns are short keys
(see ``COLUMNS``); licenses, tasks and formats are numbers into lists sent once. The searchable text keeps
each distinct file name once, with shard counters (``-00001-of-00004``) removed and the names every
repository has (config.json, README.md...) left out, since they match everything and cost bytes.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any, Iterable

#: id, searchable text, license, task, formats bit mask, size, last modified (days since 1970), downloads
COLUMNS = ["i", "t", "l", "p", "f", "s", "d", "n"]
SEARCH_VERSION = 1

_SHARD = re.compile(r"[-_.]?\d{1,6}-of-\d{1,6}")
_UBIQUITOUS = frozenset(
    ".gitattributes readme.md config.json generation_config.json tokenizer.json tokenizer_config.json "
    "special_tokens_map.json license license.txt license.md vocab.json merges.txt chat_template.jinja "
    "added_tokens.json preprocessor_config.json tokenizer.model".split()
)


def file_words(paths: Iterable[str]) -> list[str]:
    """The file names worth searching: distinct base names without shard counters or boilerplate."""
    words = {}
    for path in paths:
        base = path.rsplit("/", 1)[-1].lower()
        if base in _UBIQUITOUS or base.endswith(".md"):
            continue
        words.setdefault(_SHARD.sub("", base), None)
    return list(words)


def search_text(record: dict[str, Any], paths: Iterable[str]) -> str:
    """What a query is matched against besides the id: torrent name, tags and file names, lower case."""
    return " ".join([record["name"].lower(), *(t.lower() for t in record["tags"]), *file_words(paths)])


def search_index(records: list[dict[str, Any]], texts: list[str]) -> str:
    """The JSON text of ``search.json`` for the records and their :func:`search_text`, in site order."""
    licenses = sorted({r["license"] for r in records if r["license"]})
    tasks = sorted({r["pipeline_tag"] for r in records if r["pipeline_tag"]})
    formats = sorted({f for r in records for f in r["formats"]})
    lic, task, fmt = ({v: i for i, v in enumerate(xs)} for xs in (licenses, tasks, formats))
    rows = []
    for record, text in zip(records, texts):
        rows.append([
            record["id"],
            text,
            lic.get(record["license"], -1),
            task.get(record["pipeline_tag"], -1),
            sum(1 << fmt[f] for f in record["formats"]),
            record["size"],
            _days(record["last_modified"]),
            record["downloads"] if record["downloads"] is not None else -1,
        ])
    index = {"v": SEARCH_VERSION, "cols": COLUMNS, "licenses": licenses, "tasks": tasks, "formats": formats, "m": rows}
    return json.dumps(index, separators=(",", ":"), ensure_ascii=False)


def _days(iso: str | None) -> int:
    if iso is None:  # unknown: -1 sorts it after every known date under "newest"
        return -1
    when = dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
    return int(when.timestamp() // 86400)
