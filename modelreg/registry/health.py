"""The health store: what the last ``modelreg health`` runs found about each torrent's swarm and web seeds.

``<registry>/.health/<org>/<name>/<revision>.json`` (``main.json`` for a model with no known revision),
kept with the registry and committed with it like the metadata cache, so a site build reads only files
and stays offline and reproducible. A file holds, per source, the last good figures and the last failure::

    {"format": 1, "repo_id": "Org/Name", "revision": "<commit>", "checked_at": "<ISO UTC>",
     "infohash_v1": "<hex>", "infohash_v2": "<hex>",
     "trackers": {"<url>": {"v1": {"complete": 3, "incomplete": 1, "downloaded": 9} | null, "v2": ... ,
                            "checked_at": "<last success>" | null, "failure": {"reason", "detail", "at"} | null}},
     "dht": {"peers": 4, "seeds": 3 | null, "leechers": 1 | null, "checked_at", "failure"} | null,
     "webseeds": {"<url>": {"ok": true, "status": 206, "latency_ms": 41, "length_ok": true, "error": null,
                            "checked_at": "<ISO>", "failing_since": "<ISO>" | null}}}

A check that fails keeps the figures of the check before and records the failure beside them. Files are
written atomically with sorted keys and validated on read (size, types); a damaged file is that model's
problem (:class:`~modelreg.errors.HealthFileError`), never the build's.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from modelreg.errors import HealthFileError
from modelreg.fsutil import atomic_write_bytes, read_regular
from modelreg.registry.revfiles import RevisionFolder

if TYPE_CHECKING:  # the catalog's Model carries a Health: import it for annotations only
    from modelreg.registry.catalog import Model

HEALTH_DIR = ".health"
FORMAT = 1
#: A health file is a few hundred bytes per tracker and web seed; anything this big is not one.
MAX_BYTES = 1 << 20
COUNTS = ("complete", "incomplete", "downloaded")
_AGAIN = "delete it and run 'modelreg health' to check again"


@dataclass(frozen=True)
class Health:
    """A validated health file: its data and the SHA-256 of its bytes (the site's rebuild key)."""

    data: dict[str, Any]
    digest: str

    def summary(self) -> dict[str, Any]:
        """The site's ``health`` record; see :func:`summary`."""
        return summary(self.data)


class HealthStore(RevisionFolder):
    """The ``.health`` folder of a registry; safe to use from several threads for different models.

    :meth:`path` raises :class:`~modelreg.errors.HealthFileError` for a file that would lie outside it.
    """

    FOLDER, OUTSIDE_ERROR, OUTSIDE_VERB = HEALTH_DIR, HealthFileError, "stored"

    def load(self, repo_id: str, revision: str | None) -> Health | None:
        """The stored health, or None when never checked.

        Raises:
            HealthFileError: the file is unreadable, too big, not JSON, or not in this format.
        """
        path = self.path(repo_id, revision)
        try:
            raw = read_regular(path, MAX_BYTES, "health file")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise HealthFileError(path, f"cannot read the health file ({exc}); {_AGAIN}") from exc
        try:
            data = json.loads(raw.decode("utf-8"))
            validate(data)
        except (UnicodeDecodeError, ValueError, TypeError, KeyError) as exc:
            raise HealthFileError(path, f"not a health file of format {FORMAT} ({exc}); {_AGAIN}") from exc
        if data["repo_id"] != repo_id:
            raise HealthFileError(path, f"the health file is about {data['repo_id']!r}, not {repo_id!r}; {_AGAIN}")
        return Health(data, hashlib.sha256(raw).hexdigest())

    def store(self, data: dict[str, Any]) -> None:
        """Write one model's health (validated first).

        Raises:
            HealthFileError: the file cannot be written.
        """
        validate(data)
        path = self.path(data["repo_id"], data["revision"])
        try:
            atomic_write_bytes(path, dumps(data))
        except OSError as exc:
            raise HealthFileError(path, f"cannot write the health file: {exc}") from exc


def dumps(data: dict[str, Any]) -> bytes:
    """The file content: deterministic (sorted keys, one layout), UTF-8, ending in a newline."""
    return (json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def validate(data: Any) -> None:
    """Check the shape of a health file's data.

    Raises:
        ValueError, TypeError: what is wrong, first problem only.
    """
    _need(isinstance(data, dict), "not a JSON object")
    _need(data.get("format") == FORMAT, f"format {data.get('format')!r}")
    _need(isinstance(data.get("repo_id"), str) and data["repo_id"].count("/") == 1, "bad repo_id")
    _opt(data.get("revision"), str, "revision")
    _time(data.get("checked_at"), "checked_at", required=True)
    for key in ("infohash_v1", "infohash_v2"):
        _opt(data.get(key), str, key)
    trackers, webseeds, dht = data.get("trackers"), data.get("webseeds"), data.get("dht")
    _need(isinstance(trackers, dict) and isinstance(webseeds, dict), "trackers and webseeds must be objects")
    for url, entry in trackers.items():
        _need(isinstance(url, str) and isinstance(entry, dict), f"tracker {url!r}")
        for version in ("v1", "v2"):
            counts = entry.get(version)
            if counts is not None:
                _need(isinstance(counts, dict), f"tracker {url!r} {version}")
                for key in COUNTS:
                    _count(counts.get(key), f"tracker {url!r} {version} {key}")
        _source(entry, f"tracker {url!r}")
    if dht is not None:
        _need(isinstance(dht, dict), "dht must be an object or null")
        for key in ("peers", "seeds", "leechers"):
            if dht.get(key) is not None:
                _count(dht[key], f"dht {key}")
        _source(dht, "dht")
    for url, entry in webseeds.items():
        _need(isinstance(url, str) and isinstance(entry, dict), f"web seed {url!r}")
        _need(isinstance(entry.get("ok"), bool), f"web seed {url!r} ok")
        _opt(entry.get("status"), int, f"web seed {url!r} status")
        _opt(entry.get("latency_ms"), int, f"web seed {url!r} latency_ms")
        _opt(entry.get("length_ok"), bool, f"web seed {url!r} length_ok")
        _opt(entry.get("error"), str, f"web seed {url!r} error")
        _time(entry.get("checked_at"), f"web seed {url!r} checked_at", required=True)
        _time(entry.get("failing_since"), f"web seed {url!r} failing_since")


def _source(entry: dict, what: str) -> None:
    _time(entry.get("checked_at"), f"{what} checked_at")
    failure = entry.get("failure")
    if failure is not None:
        _need(isinstance(failure, dict), f"{what} failure")
        for key in ("reason", "detail"):
            _need(isinstance(failure.get(key), str), f"{what} failure {key}")
        _time(failure.get("at"), f"{what} failure at", required=True)


def _need(ok: bool, problem: str) -> None:
    if not ok:
        raise ValueError(problem)


def _opt(value: Any, kind: type, what: str) -> None:
    ok = isinstance(value, bool) if kind is bool else isinstance(value, kind) and not isinstance(value, bool)
    _need(value is None or ok, f"{what} must be {kind.__name__} or null")


def _count(value: Any, what: str) -> None:
    _need(isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 1 << 40, f"{what} must be a count")


def _time(value: Any, what: str, required: bool = False) -> None:
    if value is None and not required:
        return
    _need(isinstance(value, str) and len(value) == 20 and value.endswith("Z") and value[10] == "T",
          f"{what} must be an ISO 8601 UTC time like 2026-01-02T03:04:05Z")


def tracker_figure(entry: dict[str, Any]) -> dict[str, int] | None:
    """One tracker's counts for the torrent: the larger of its v1 and v2 swarms (a hybrid torrent's peers
    announce both, so adding them would count each peer twice); None when it never answered."""
    found = [entry[v] for v in ("v1", "v2") if entry.get(v)]
    if not found:
        return None
    return {key: max(c[key] for c in found) for key in COUNTS}


def summary(data: dict[str, Any]) -> dict[str, Any]:
    """What the site shows: the best figure (most seeders, then leechers) of any tracker or the DHT, with
    its source, every source, and the web seeds' state.

    ``webseed_ok`` is True when at least one web seed answered right at the last check, False when all
    failed, None when the torrent has none.
    """
    sources = []
    for url, entry in sorted(data["trackers"].items()):
        figure = tracker_figure(entry)
        sources.append({
            "source": url, "kind": "tracker",
            "seeders": figure["complete"] if figure else None,
            "leechers": figure["incomplete"] if figure else None,
            "downloaded": figure["downloaded"] if figure else None,
            "checked_at": entry.get("checked_at"),
            "failure": (entry.get("failure") or {}).get("detail"),
        })
    dht = data.get("dht")
    if dht:
        seeds, leechers, peers = dht.get("seeds"), dht.get("leechers"), dht.get("peers")
        if seeds is None and peers is not None:
            # get_peers alone does not tell seeds from leechers: count every peer as a leecher.
            leechers = peers
        sources.append({
            "source": "DHT", "kind": "dht", "seeders": seeds, "leechers": leechers, "downloaded": None,
            "peers": peers, "checked_at": dht.get("checked_at"), "failure": (dht.get("failure") or {}).get("detail"),
        })
    answered = [s for s in sources if s["seeders"] is not None or s["leechers"] is not None]
    best = max(answered, key=lambda s: (s["seeders"] or 0, s["leechers"] or 0, s["downloaded"] or 0), default=None)
    webseeds = [
        {"url": url, "ok": w["ok"], "status": w.get("status"), "latency_ms": w.get("latency_ms"),
         "error": w.get("error"), "checked_at": w["checked_at"], "failing_since": w.get("failing_since")}
        for url, w in sorted(data["webseeds"].items())
    ]
    failing = [w["failing_since"] for w in webseeds if not w["ok"] and w["failing_since"]]
    return {
        "seeders": best["seeders"] if best else None,
        "leechers": best["leechers"] if best else None,
        "downloaded": max((s["downloaded"] for s in answered if s["downloaded"] is not None), default=None),
        "source": best["source"] if best else None,
        "webseed_ok": any(w["ok"] for w in webseeds) if webseeds else None,
        "webseed_failing_since": min(failing) if failing and not any(w["ok"] for w in webseeds) else None,
        "checked_at": data["checked_at"],
        "sources": sources,
        "webseeds": webseeds,
    }


def join_health(models: list[Model], store: HealthStore) -> list[Model]:
    """The models with their stored health in ``health``; a damaged file becomes one of the model's
    ``problems`` (and the model shows no health), never a failed build."""
    joined = []
    # one listing of the folder spares looking for the file of each model of an org never checked
    # (names compared case-folded: a case-insensitive file system finds the file whatever the case)
    try:
        orgs: set[str] | None = {name.casefold() for name in os.listdir(store.root)}
    except FileNotFoundError:
        orgs = set()
    except OSError:
        orgs = None  # not listable: look for each file, which reports the problem
    if orgs is not None and not orgs:
        return list(models)  # never checked: nothing to join (a registry of 100,000 models)
    for model in models:
        if orgs is not None and model.repo_id.split("/", 1)[0].casefold() not in orgs:
            joined.append(model)
            continue
        try:
            health = store.load(model.repo_id, model.revision)
        except HealthFileError as exc:
            joined.append(replace(model, health=None, problems=(*model.problems, str(exc))))
            continue
        joined.append(replace(model, health=health) if health is not None else model)
    return joined
