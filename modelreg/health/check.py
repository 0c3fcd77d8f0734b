"""Check every torrent of a registry: tracker scrapes, a DHT lookup and web-seed probes, all at once.

Each tracker is scraped once for all the infohashes (v1 and v2) of the torrents that name it; each
web seed of each torrent is probed once; the DHT lookups run in one libtorrent session in a thread
beside them. ``jobs`` bounds the requests in flight, ``timeout`` each request (and the DHT as a whole).
Then each model's file in the health store is rewritten: a source that answered gets its new figures;
one that failed keeps the figures of the check before and records the failure.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from modelreg.errors import HealthFileError, ProbeError
from modelreg.health.dht import DhtCount, DhtSettings, dht_counts
from modelreg.health.scrape import Counts, scrape
from modelreg.health.webseeds import Probe, file_url, first_file, probe
from modelreg.registry.catalog import Model
from modelreg.registry.health import FORMAT, HealthStore
from modelreg.units import utc_timestamp

#: Threads writing health files at once.
WRITERS = 16


@dataclass(frozen=True)
class HealthSettings:
    """How to check: requests in flight, seconds per request, the DHT (None: no DHT lookup), and the
    trackers and web seeds the site adds to every torrent (the config's)."""

    jobs: int = 32
    timeout: float = 10.0
    dht: DhtSettings | None = field(default_factory=DhtSettings)
    trackers: tuple[str, ...] = ()
    webseeds: tuple[str, ...] = ()
    now: Callable[[], str] = utc_timestamp


@dataclass
class HealthReport:
    """What a run did: models checked, and every failure as (repository id, source, detail)."""

    checked: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"checked {self.checked} models in {self.seconds:.1f} s"]
        if self.failures:
            lines.append(f"{len(self.failures)} check(s) failed (previous figures kept):")
            lines += [f"  - {repo_id}: {source}: {detail}" for repo_id, source, detail in self.failures]
        return "\n".join(lines)


@dataclass
class _Target:
    model: Model
    hashes: dict[str, bytes]  # "v1"/"v2" -> the 20 bytes a tracker or the DHT knows it by
    trackers: list[str]
    webseeds: list[str]


def targets(models: list[Model], settings: HealthSettings) -> list[_Target]:
    found = []
    for m in models:
        t = m.torrent
        hashes = {}
        if t.infohash_v1:
            hashes["v1"] = bytes.fromhex(t.infohash_v1)
        if t.infohash_v2:
            hashes["v2"] = bytes.fromhex(t.infohash_v2)[:20]
        found.append(_Target(m, hashes, list(dict.fromkeys([*t.trackers, *settings.trackers])),
                             list(dict.fromkeys([*t.webseeds, *settings.webseeds]))))
    return found


def check_health(models: list[Model], store: HealthStore, settings: HealthSettings) -> HealthReport:
    """Check ``models`` and write each one's health file.

    Raises:
        HealthFileError: a health file cannot be written (the files written before it stay).
    """
    start = time.monotonic()
    work = targets(models, settings)
    at = settings.now()
    scraped, probes, dht = asyncio.run(_gather(work, settings))
    report = HealthReport()
    # Each file is written atomically and synced: most of a run's time on a 1,000-torrent registry is
    # fsync, which threads overlap.
    with ThreadPoolExecutor(max_workers=min(settings.jobs, WRITERS)) as pool:
        for _ in pool.map(lambda t: store.store(_merged(t, store, at, scraped, probes, dht, report)), work):
            report.checked += 1
    report.seconds = time.monotonic() - start
    return report


async def _gather(work: list[_Target], settings: HealthSettings):
    limit = asyncio.Semaphore(settings.jobs)
    per_tracker: dict[str, list[bytes]] = {}
    for target in work:
        for url in target.trackers:
            per_tracker.setdefault(url, []).extend(target.hashes.values())
    loop = asyncio.get_running_loop()
    dht_task = None
    if settings.dht is not None and work:
        hashes = [h for target in work for h in target.hashes.values()]
        dht_task = loop.run_in_executor(None, _dht_or_failure, hashes, settings.dht)
    connector = aiohttp.TCPConnector(limit=settings.jobs, limit_per_host=settings.jobs)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as http:
        async def one_tracker(url: str) -> dict[bytes, Counts] | ProbeError:
            try:
                return await scrape(http, url, list(dict.fromkeys(per_tracker[url])), settings.timeout, limit)
            except ProbeError as exc:
                return exc

        async def one_probe(target: _Target, url: str) -> Probe:
            entry = first_file(target.model.torrent)
            if entry is None:
                return Probe(False, None, None, None, "the torrent has no file with bytes to ask for")
            async with limit:
                return await probe(http, file_url(url, target.model.torrent, entry), entry.size, settings.timeout)

        urls = list(per_tracker)
        pairs = [(target.model.repo_id, url) for target in work for url in target.webseeds]
        scrapes = asyncio.gather(*(one_tracker(u) for u in urls))
        answers = asyncio.gather(*(one_probe(t, u) for t in work for u in t.webseeds))
        scraped_list, probe_list = await asyncio.gather(scrapes, answers)
    dht = await dht_task if dht_task is not None else None
    return dict(zip(urls, scraped_list, strict=True)), dict(zip(pairs, probe_list, strict=True)), dht


def _dht_or_failure(hashes: list[bytes], settings: DhtSettings) -> dict[bytes, DhtCount] | ProbeError:
    try:
        return dht_counts(hashes, settings)
    except ProbeError as exc:
        return exc
    except (OSError, RuntimeError) as exc:  # libtorrent could not listen, or its session failed
        return ProbeError("unreachable", f"the DHT lookup failed: {exc}")


def _failure(exc: ProbeError, at: str) -> dict[str, str]:
    return {"reason": exc.reason, "detail": exc.detail, "at": at}


def _merged(target: _Target, store: HealthStore, at: str, scraped: dict, probes: dict,
            dht: dict[bytes, DhtCount] | ProbeError | None, report: HealthReport) -> dict[str, Any]:
    """The model's new health file: the previous one with every source that answered brought up to date."""
    model = target.model
    try:
        previous = store.load(model.repo_id, model.revision)
    except HealthFileError as exc:
        report.failures.append((model.repo_id, "health file", f"{exc} (replaced)"))
        previous = None
    old = previous.data if previous else {}
    trackers = {}
    for url in target.trackers:
        before = (old.get("trackers") or {}).get(url) or {"v1": None, "v2": None, "checked_at": None}
        answer = scraped[url]
        if isinstance(answer, ProbeError):
            trackers[url] = dict(before, failure=_failure(answer, at))
            report.failures.append((model.repo_id, url, answer.detail))
        else:
            trackers[url] = {"v1": None, "v2": None, "checked_at": at, "failure": None}
            for version, h in target.hashes.items():
                trackers[url][version] = answer[h].as_dict()
    dht_entry = old.get("dht")
    if isinstance(dht, ProbeError):
        dht_entry = dict(dht_entry or {"peers": None, "seeds": None, "leechers": None, "checked_at": None},
                         failure=_failure(dht, at))
        report.failures.append((model.repo_id, "DHT", dht.detail))
    elif dht is not None:
        counts = [dht[h] for h in target.hashes.values()]
        seeds = [c.seeds for c in counts if c.seeds is not None]
        leechers = [c.leechers for c in counts if c.leechers is not None]
        dht_entry = {"peers": max((c.peers for c in counts), default=0), "seeds": max(seeds) if seeds else None,
                     "leechers": max(leechers) if leechers else None, "checked_at": at, "failure": None}
    webseeds = {}
    for url in target.webseeds:
        result: Probe = probes[(model.repo_id, url)]
        before = (old.get("webseeds") or {}).get(url) or {}
        since = None
        if not result.ok:
            since = before.get("failing_since") if before.get("ok") is False else None
            since = since or at
            report.failures.append((model.repo_id, url, result.error or "failed"))
        webseeds[url] = {"ok": result.ok, "status": result.status, "latency_ms": result.latency_ms,
                         "length_ok": result.length_ok, "error": result.error, "checked_at": at,
                         "failing_since": since}
    t = model.torrent
    return {"format": FORMAT, "repo_id": model.repo_id, "revision": model.revision, "checked_at": at,
            "infohash_v1": t.infohash_v1, "infohash_v2": t.infohash_v2,
            "trackers": trackers, "dht": dht_entry, "webseeds": webseeds}
