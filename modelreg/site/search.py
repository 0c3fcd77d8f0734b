"""The search index: static JSON shards under ``search/`` that the index page fetches as a query needs them.

A model is a *document*, numbered by its place in the default (name) order. What a query downloads:

- ``search/meta.json``: the number of documents, the facet values (licenses, tasks, formats), each org's
  range of documents (documents are sorted by id, so an org's models are contiguous), the prefixes whose
  term and name shards are split (see below) and each sort key's bucket bounds. Fetched once.
- ``search/t/<prefix>.json``: the terms starting with ``<prefix>`` and, for each, the documents that hold
  it (sorted, delta-encoded). A shard whose JSON would pass ``SHARD_BYTES`` is split into one shard per
  longer prefix, and the split prefix's own file keeps only the union of its terms' documents (``"*"``)
  and the documents holding the prefix as a whole term (``"="``), so a short query term still costs one
  small, well-compressed file. A term of the query reads the first shard along its prefixes that is not
  split. File names spell characters other than a-z0-9 as ``_`` and two hex digits (:func:`file_key`).
- ``search/n/<prefix>.json``: the same for model names (lower case, without the org): a name's documents,
  to rank exact names and name prefixes first (an ``org/name`` query keeps those in the org's range).
- ``search/v/<facet>.json``: the documents (delta-encoded) of one facet value: ``l<i>`` license ``i`` of
  meta's list, ``p<i>`` task, ``f<i>`` format (a model has several), ``live`` seeded or web seed working.
- ``search/k/<key>.json`` and ``search/k/<key>/<b>.json``: a sort key and range filter (``s`` size,
  ``d`` days since 1970, ``n`` downloads, ``h`` seeders; -1 where unknown), in 64 ordered buckets of about
  equal size (:func:`_buckets`): the column is one character per document, its bucket; a bucket's file
  holds its documents and their exact values. Filters and sorts give exactly what the exact values give:
  a range filter reads the column and the (at most two) buckets its bounds cut; a sort reads, where many
  documents match, the buckets in order until a page of results is complete (no column), else the
  column and the buckets of the first page. Only the shown rows are in their final order; showing more
  reads further buckets.
- ``search/ids/<k>.json``: the ids of documents ``k * IDS_CHUNK`` onwards, to fetch the shown results'
  rows (``models/<id>/row.json``, rendered from ``entry.html``).

Terms are the ASCII letter and digit runs of the id, the torrent's name, the tags and the file names
worth searching (boilerplate files and shard counters left out). A query term matches a document when it
is a prefix of one of its terms; all terms must match. Results are ranked: the exact id (or exact name),
then names starting with the query, then documents where every query term is a whole term, then the rest;
within a rank by the chosen sort, then by name.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

SEARCH_VERSION = 3
#: A term shard whose JSON would be larger than this is split by one more character of prefix.
SHARD_BYTES = 48_000
#: Ids per ``search/ids/<k>.json`` file.
IDS_CHUNK = 64
#: Sort keys and range filters: name -> index into the summary (size, days since 1970, downloads, seeders).
KEYS = {"s": 6, "d": 7, "n": 8, "h": 9}
#: A sort key's coarse column: one of these characters per document, its bucket (see :func:`_buckets`).
BUCKET_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_"

_TERM = re.compile(r"[a-z0-9]+")
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


def terms(text: str) -> list[str]:
    """The terms of a text (or of a query): its runs of ASCII letters and digits, in lower case."""
    return _TERM.findall(text.lower())


def file_key(prefix: str) -> str:
    """The file name of a shard's prefix: characters other than a-z0-9 as ``_`` and two hex digits."""
    return re.sub(r"[^a-z0-9]", lambda m: f"_{ord(m.group()):02x}", prefix)


#: The fields of a summary; its terms are the last.
SUMMARY_LENGTH = 12


def summary(record: dict[str, Any], paths: Iterable[str]) -> list:
    """What the index keeps of a model: id, org, formats, then the columns' numbers, then its terms."""
    health = record.get("health") or {}
    seeders = health.get("seeders") if isinstance(health, dict) else None
    webseed = health.get("webseed_ok") if isinstance(health, dict) else None
    words = [record["id"], record["name"], *record["tags"], *file_words(paths)]
    return [
        record["id"], record["org"], list(record["formats"]),
        record["license"], record["pipeline_tag"], None,  # formats bit mask: set when the index is built
        record["size"],
        _days(record.get("last_modified")),
        record["downloads"] if isinstance(record.get("downloads"), int) else -1,
        seeders if isinstance(seeders, int) and seeders > 0 else 0,
        -1 if webseed is None else int(bool(webseed)),
        sorted(set(terms(" ".join(words)))),
    ]


def index_files(summaries: list[list]) -> Iterator[tuple[str, str]]:
    """Every file of ``search/`` as (path relative to the site, JSON text), for summaries in name order."""
    licenses = sorted({s[3] for s in summaries if s[3]})
    tasks = sorted({s[4] for s in summaries if s[4]})
    formats = sorted({f for s in summaries for f in s[2]})
    lic, task, fmt = ({v: i for i, v in enumerate(xs)} for xs in (licenses, tasks, formats))
    postings: dict[str, list[int]] = defaultdict(list)
    names: dict[str, list[int]] = defaultdict(list)
    orgs: dict[str, list[int]] = {}
    facets: dict[str, list[int]] = defaultdict(list)
    keys: dict[str, list[int]] = {k: [] for k in KEYS}
    for doc, s in enumerate(summaries):
        for term in s[-1]:
            postings[term].append(doc)
        names[s[0].lower().split("/", 1)[1]].append(doc)
        span = orgs.setdefault(s[1], [doc, 0])
        span[1] += 1
        if s[3] in lic:
            facets[f"l{lic[s[3]]}"].append(doc)
        if s[4] in task:
            facets[f"p{task[s[4]]}"].append(doc)
        for f in s[2]:
            facets[f"f{fmt[f]}"].append(doc)
        if s[9] > 0 or s[10] == 1:
            facets["live"].append(doc)
        for key, index in KEYS.items():
            keys[key].append(s[index])
    splits = sorted(_shards(postings, "", sorted(postings), out := [], "t"))
    name_splits = sorted(_shards(names, "", sorted(names), out, "n"))
    buckets = {}
    for key, values in keys.items():
        column, bounds, files = _buckets(values)
        buckets[key] = bounds
        yield f"search/k/{key}.json", _dump(column)
        for b, docs, exact in files:
            yield f"search/k/{key}/{b}.json", _dump([_deltas(docs), exact])
    yield "search/meta.json", _dump({
        "v": SEARCH_VERSION, "count": len(summaries), "ids_chunk": IDS_CHUNK, "split": splits, "name_split": name_splits,
        "licenses": licenses, "tasks": tasks, "formats": formats,
        "orgs": [[org, start, n] for org, (start, n) in orgs.items()], "buckets": buckets,
    })
    yield from out
    for facet, docs in sorted(facets.items()):
        yield f"search/v/{facet}.json", _dump(_deltas(docs))
    for k in range(0, len(summaries), IDS_CHUNK):
        yield f"search/ids/{k // IDS_CHUNK}.json", _dump([s[0] for s in summaries[k:k + IDS_CHUNK]])


def _buckets(values: list[int]) -> tuple[str, list, list]:
    """A sort key's coarse column, its buckets' value ranges, and the exact values of its mixed buckets.

    Every value goes to one of ``len(BUCKET_CHARS)`` ordered buckets (a smaller value never to a later
    bucket): one per distinct value where there are few, else by the share of smaller values. The
    column is one character of ``BUCKET_CHARS`` per document; each bucket has a file of its documents
    (delta-encoded) and their values (none where the bucket holds one value: its bounds say it)."""
    counts: dict[int, int] = defaultdict(int)
    for v in values:
        counts[v] += 1
    distinct = sorted(counts)
    n, size = len(values), len(BUCKET_CHARS)
    bucket, below = {}, 0
    for rank, v in enumerate(distinct):
        bucket[v] = rank if len(distinct) <= size else min(size - 1, below * size // max(n, 1))
        below += counts[v]
    bounds: list = [None] * size
    for v in distinct:
        b = bucket[v]
        bounds[b] = [v, v] if bounds[b] is None else [bounds[b][0], v]
    members: dict[int, list[int]] = defaultdict(list)
    for doc, v in enumerate(values):
        members[bucket[v]].append(doc)
    files = [(b, docs, [] if bounds[b][0] == bounds[b][1] else [values[d] for d in docs])
             for b, docs in sorted(members.items())]
    return "".join(BUCKET_CHARS[bucket[v]] for v in values), bounds, files


def _shards(postings: dict[str, list[int]], prefix: str, words: list[str], out: list, folder: str,
            texts: dict[str, str] | None = None, lengths: dict[str, int] | None = None) -> list[str]:
    """Append the shards of ``words`` (sorted, all starting with ``prefix``) to ``out`` as files of
    ``search/<folder>/``; return the prefixes that were split."""
    if texts is None or lengths is None:  # each word's entry of a shard's JSON, made once
        texts = {w: f"{_dump(w)}:{_dump(_deltas(postings[w]))}" for w in words}
        lengths = {w: len(t) + 1 for w, t in texts.items()}
    groups: dict[str, list[str]] = defaultdict(list)
    for word in words:
        groups[word[: len(prefix) + 1]].append(word)
    splits = []
    for key, group in groups.items():
        path = f"search/{folder}/{file_key(key)}.json"
        if sum(map(lengths.__getitem__, group)) + 1 <= SHARD_BYTES or len(group) == 1:
            out.append((path, "{" + ",".join(map(texts.__getitem__, group)) + "}"))
            continue
        union = sorted(set().union(*map(postings.__getitem__, group)))
        out.append((path, _dump({"*": _deltas(union), "=": _deltas(postings.get(key, []))})))
        splits.append(key)
        rest = [w for w in group if w != key]
        splits += _shards(postings, key, rest, out, folder, texts, lengths)
    return splits


def _deltas(docs: list[int]) -> list[int]:
    return [d - p for p, d in itertools.pairwise([0, *docs])]


def _dump(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _days(iso: str | None) -> int:
    """Days since 1970 of an ISO 8601 UTC date, -1 where unknown (sorted last by "Newest")."""
    if not iso:
        return -1
    try:
        when = dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return -1
    return int(when.timestamp() // 86400)
