"""Refresh the metadata cache: fetch what is missing or older than a given age, a bounded number at a time."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from tqdm import tqdm

from modelreg.errors import ConfigError, HubError, MetadataCacheError
from modelreg.hf.retry import RetryPolicy
from modelreg.registry.catalog import Model
from modelreg.registry.metacache import CacheEntry, Failure, MetaCache
from modelreg.units import utc_timestamp

if TYPE_CHECKING:  # the hub client (huggingface_hub, httpx) is imported by those who make one
    from modelreg.hf.client import HubClient

DEFAULT_MAX_AGE = timedelta(days=7)
DEFAULT_JOBS = 8
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_age(text: str) -> timedelta:
    """``'7d'``, ``'12h'``, ``'30m'``, ``'45s'``, ``'2w'`` or a number of seconds; ``'0'`` makes everything stale.

    Raises:
        ConfigError: ``text`` is not an age.
    """
    m = _AGE.match(text)
    if not m:
        raise ConfigError(f"--max-age: {text!r} is not an age; write it like 7d, 12h, 30m, 45s or 0")
    return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RefreshSettings:
    """What a refresh fetches and how: entries older than ``max_age`` (or missing or failed), ``jobs`` at a time."""

    max_age: timedelta = DEFAULT_MAX_AGE
    jobs: int = DEFAULT_JOBS
    only: tuple[str, ...] = ()
    retry: RetryPolicy = RetryPolicy()
    #: Show a progress bar on stderr: True, False, or None for "only on a terminal".
    progress: bool | None = None


@dataclass
class RefreshReport:
    """What a refresh did: which entries it fetched, which were fresh enough, which failed and why."""

    fetched: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)
    failed: list[HubError] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [f"metadata: fetched {len(self.fetched)}, fresh {len(self.fresh)}, "
                 f"failed {len(self.failed)} in {self.seconds:.2f} s"]
        lines += [f"  - {e}" for e in self.failed]
        return "\n".join(lines)


def is_fresh(entry: CacheEntry | None, max_age: timedelta, now: datetime) -> bool:
    """Whether an entry can be kept: complete (its last refresh did not fail) and fetched less than ``max_age`` ago."""
    if entry is None or entry.meta is None or entry.failure is not None or not entry.fetched_at:
        return False
    try:
        fetched = datetime.fromisoformat(entry.fetched_at.replace("Z", "+00:00"))
    except ValueError:
        return False
    return now - fetched < max_age


def select(models: Iterable[Model], only: Iterable[str] = ()) -> list[tuple[str, str | None]]:
    """The (repository, revision) pairs of the models, each once, limited to ``only`` (ids, any case) if given.

    Raises:
        ConfigError: an id of ``only`` is not in the registry.
    """
    pairs = {(m.repo_id, m.revision): None for m in models}
    wanted = {o.lower() for o in only}
    if wanted:
        known = {repo.lower() for repo, _ in pairs}
        unknown = sorted(o for o in only if o.lower() not in known)
        if unknown:
            raise ConfigError(f"--only: not in the registry: {', '.join(unknown)}")
        pairs = {p: None for p in pairs if p[0].lower() in wanted}
    return sorted(pairs, key=lambda p: (p[0].lower(), p[1] or ""))


def refresh(models: Iterable[Model], cache: MetaCache, client: HubClient, settings: RefreshSettings = RefreshSettings(),
            clock: Callable[[], datetime] = utc_now) -> RefreshReport:
    """Fetch every selected entry that is not fresh, ``settings.jobs`` requests at a time, into ``cache``.

    A failed fetch keeps the metadata cached before and records why; it never stops the others.
    """
    start, now, report = time.perf_counter(), clock(), RefreshReport()
    stale = []
    for repo_id, revision in select(models, settings.only):
        try:
            entry = cache.load(repo_id, revision)
        except MetadataCacheError:
            entry = None  # a damaged file is fetched again and replaced
        if is_fresh(entry, settings.max_age, now):
            report.fresh.append(_label(repo_id, revision))
        else:
            stale.append((repo_id, revision))

    def one(repo_id: str, revision: str | None) -> HubError | None:
        return fetch_into(cache, client, repo_id, revision, utc_timestamp(clock()))

    bar = tqdm(total=len(stale), desc="metadata", unit="model", file=sys.stderr, disable=_hide(settings.progress))
    with bar, ThreadPoolExecutor(max_workers=max(1, settings.jobs), thread_name_prefix="refresh") as pool:
        futures = {pool.submit(one, *pair): pair for pair in stale}
        try:
            for future in as_completed(futures):
                error = future.result()  # an unexpected exception (a bug, a full disk) stops the refresh
                if error is None:
                    report.fetched.append(_label(*futures[future]))
                else:
                    report.failed.append(error)
                bar.update(1)
        except BaseException:  # Ctrl-C included: do not start the fetches still queued
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    report.fetched.sort(key=str.lower)
    report.failed.sort(key=lambda e: str(e).lower())
    report.seconds = time.perf_counter() - start
    return report


def fetch_into(cache: MetaCache, client: HubClient, repo_id: str, revision: str | None, at: str) -> HubError | None:
    """Fetch one entry into the cache; return the error that kept it (or its card) from being fetched, if any."""
    try:
        fetched = client.fetch(repo_id, revision)
    except HubError as exc:
        cache.store_failure(exc, at)
        return exc
    meta, error = replace(fetched.meta, repo_id=repo_id), fetched.card_error
    failure = None
    if error is not None:
        failure = Failure(error.reason, error.detail, at)
        try:
            previous = cache.load(repo_id, revision)
        except MetadataCacheError:
            previous = None
        if previous and previous.meta and previous.meta.commit == meta.commit:  # same files: the old card still fits
            meta = replace(meta, card_markdown=previous.meta.card_markdown)
    try:
        cache.store_meta(meta, at, failure)
    except MetadataCacheError as exc:  # the hub's answer does not fit the cache's schema: this model's failure
        bad = HubError(repo_id, revision, "bad-response", f"the hub's answer cannot be cached: {exc}")
        cache.store_failure(bad, at)
        return bad
    return error


def _label(repo_id: str, revision: str | None) -> str:
    return f"{repo_id}@{revision or 'main'}"


def _hide(progress: bool | None) -> bool | None:
    return None if progress is None else not progress
