"""Fetch a model's Hugging Face metadata at a revision with ``huggingface_hub``, retrying what is worth retrying.

Retries live here and only here. ``HfApi.model_info`` and the library's shared session (used for the
model card's ``resolve`` URL) do not retry by themselves in huggingface_hub 2.4, unlike
``hf_hub_download``, which wraps its requests in ``http_backoff`` (5 retries, 1-8 s, plus its own
Retry-After handling): the card is therefore fetched through the session, not ``hf_hub_download``,
so every request is retried once, by :class:`RetryPolicy`, with delays a caller can set.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx2
from huggingface_hub import HfApi, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from modelreg.config import DEFAULT_HF_ENDPOINT, Config
from modelreg.errors import HubError
from modelreg.hf.metadata import ModelMeta, RepoFile

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
CARD_FILE = "README.md"
T = TypeVar("T")


def hub_endpoint(config: Config | None = None) -> str:
    """The hub to talk to: the config's ``hf_endpoint`` when set to something else than the default,
    else ``HF_ENDPOINT`` from the environment, else https://huggingface.co.

    It is passed explicitly to every call: huggingface_hub reads ``HF_ENDPOINT`` only once, at import.
    """
    if config is not None and config.hf_endpoint.rstrip("/") != DEFAULT_HF_ENDPOINT:
        return config.hf_endpoint.rstrip("/")
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_HF_ENDPOINT).rstrip("/")


def hub_token() -> str | None:
    """The access token for gated repositories, from ``HF_TOKEN`` (None: the library's saved login, if any)."""
    return os.environ.get("HF_TOKEN") or None


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait before asking again after a 408/429/5xx, a timeout or a lost connection.

    Waits grow as ``base_delay * 2**attempt`` (with jitter) up to ``max_delay``; a ``Retry-After``
    header in seconds is obeyed instead, unless it asks for more than ``max_retry_after`` (then the
    request fails at once, saying when to come back).
    """

    retries: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int) -> float:
        wait = min(self.max_delay, self.base_delay * 2**attempt)
        return wait * (0.5 + random.random() / 2)


@dataclass
class Pause:
    """A gate shared by all workers: after a 429 with Retry-After, nobody asks again before it has passed."""

    until: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def extend(self, seconds: float) -> None:
        with self.lock:
            self.until = max(self.until, time.monotonic() + seconds)

    def wait(self) -> None:
        while (left := self.until - time.monotonic()) > 0:
            time.sleep(left)


@dataclass(frozen=True)
class Fetched:
    """What one fetch got: the metadata, and why the card is missing from it when it could not be read."""

    meta: ModelMeta
    card_error: HubError | None = None


class HubClient:
    """Reads model metadata from one hub (HF or a mirror) with ``huggingface_hub``; safe to share between threads."""

    def __init__(self, endpoint: str, token: str | None = None, retry: RetryPolicy = RetryPolicy(),
                 timeout: float = 30.0):
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.retry = retry
        self.timeout = timeout
        self.api = HfApi(endpoint=self.endpoint, token=token)
        self.pause = Pause()

    def fetch(self, repo_id: str, revision: str | None) -> Fetched:
        """The metadata and model card of ``repo_id`` at ``revision`` (None: the main branch).

        Raises :class:`HubError` with a ``reason`` when the repository, the revision or the hub cannot be read.
        A card that cannot be read while the rest can (a gated repository without a token) is left out and
        its error returned beside the metadata.
        """
        info = self._call(repo_id, revision, lambda: self.api.model_info(
            repo_id, revision=revision, files_metadata=True, timeout=self.timeout, token=self.token))
        if not info.id or not info.sha:
            raise HubError(repo_id, revision, "bad-response", "the hub's answer has no repository id or commit")
        files = tuple(sorted(
            (RepoFile(s.rfilename, s.size, s.lfs.sha256 if s.lfs else None) for s in info.siblings or ()),
            key=lambda f: f.path,
        ))
        card, card_error = None, None
        if any(f.path == CARD_FILE for f in files):
            try:
                card = self._call(repo_id, revision, lambda: self._card(repo_id, info.sha))
            except HubError as exc:
                if exc.reason not in ("gated", "not-found"):
                    raise
                card_error = HubError(repo_id, revision, exc.reason, f"the model card cannot be read: {exc.detail}")
        return Fetched(meta_from_info(info, revision, files, card), card_error)

    def _card(self, repo_id: str, commit: str) -> str:
        """README.md at the resolved commit, so that card and file list agree."""
        url = hf_hub_url(repo_id, CARD_FILE, revision=commit, endpoint=self.endpoint)
        response = get_session().get(url, headers=build_hf_headers(token=self.token), timeout=self.timeout)
        hf_raise_for_status(response)
        return response.content.decode("utf-8", errors="replace")

    def _call(self, repo_id: str, revision: str | None, request: Callable[[], T]) -> T:
        """Run ``request``, retrying per the policy; turn every failure into a :class:`HubError`."""
        attempt = 0
        while True:
            self.pause.wait()
            try:
                return request()
            except Exception as exc:  # classified below; anything unexpected is re-raised
                error, wait = self._classify(repo_id, revision, exc, attempt)
            if wait is None or attempt >= self.retry.retries:
                raise error
            time.sleep(wait)
            attempt += 1

    def _classify(self, repo_id: str, revision: str | None, exc: Exception,
                  attempt: int) -> tuple[HubError, float | None]:
        """The error to report, and how long to wait before trying again (None: do not retry)."""
        def fail(reason: str, detail: str) -> HubError:
            return HubError(repo_id, revision, reason, detail)

        if isinstance(exc, GatedRepoError):
            hint = "the token in HF_TOKEN has no access to it" if self.token else "set HF_TOKEN to a token with access"
            return fail("gated", f"the repository is gated: {hint}"), None
        if isinstance(exc, RemoteEntryNotFoundError):
            return fail("not-found", "the file is not in the repository at this revision"), None
        if isinstance(exc, RevisionNotFoundError):
            return fail("revision-not-found", f"revision {revision} does not exist in the repository"), None
        if isinstance(exc, RepositoryNotFoundError):
            return fail("not-found", "the repository does not exist on the hub (or is private)"), None
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
            if status == 401:
                return fail("unauthorized", "the hub refused the token in HF_TOKEN: check or replace it"), None
            if status not in RETRY_STATUS:
                return fail("http-error", f"the hub answered HTTP {status}"), None
            reason = "rate-limited" if status == 429 else "server-error"
            after = retry_after(exc.response.headers)
            if after is not None and after > self.retry.max_retry_after:
                return fail(reason, f"the hub answered HTTP {status} and asks to wait {after:.0f} s; try later"), None
            detail = f"the hub answered HTTP {status} ({attempt + 1} attempt{'s' if attempt else ''})"
            if after is not None:
                self.pause.extend(after)
                return fail(reason, detail), after
            return fail(reason, detail), self.retry.delay(attempt)
        if isinstance(exc, OfflineModeIsEnabled):
            return fail("offline", "HF_HUB_OFFLINE is set: the hub was not asked"), None
        if isinstance(exc, httpx2.TimeoutException):
            detail = f"no answer from {self.endpoint} within {self.timeout:g} s"
            return fail("timeout", detail), self.retry.delay(attempt)
        if isinstance(exc, (httpx2.ConnectError, OSError)):  # refused or unresolvable: asking again will not help
            return fail("offline", f"cannot reach {self.endpoint}: {exc}"), None
        if isinstance(exc, httpx2.TransportError):  # a connection lost mid-answer
            return fail("offline", f"lost the connection to {self.endpoint}: {exc}"), self.retry.delay(attempt)
        if isinstance(exc, (ValueError, KeyError, TypeError)):
            return fail("bad-response", f"the hub's answer cannot be read: {exc}"), None
        raise exc


def retry_after(headers: Any) -> float | None:
    """Seconds from a ``Retry-After`` header (a number or an HTTP date), None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def meta_from_info(info: Any, revision: str | None, files: tuple[RepoFile, ...], card: str | None) -> ModelMeta:
    """A :class:`ModelMeta` from ``huggingface_hub``'s ``ModelInfo`` (card data filling what the API leaves out)."""
    card_data = info.card_data.to_dict() if info.card_data is not None else {}
    tags = tuple(info.tags or ())
    license = card_data.get("license") or next((t.split(":", 1)[1] for t in tags if t.startswith("license:")), None)
    base = card_data.get("base_model") or info.base_models or ()
    if isinstance(base, str):
        base = (base,)
    parameters = None
    if info.safetensors is not None:
        parameters = info.safetensors.total
    elif isinstance(info.gguf, dict) and isinstance(info.gguf.get("total"), int):
        parameters = info.gguf["total"]
    return ModelMeta(
        repo_id=info.id,
        revision=revision,
        license=license if isinstance(license, str) else None,
        pipeline_tag=info.pipeline_tag or card_data.get("pipeline_tag"),
        library_name=info.library_name or card_data.get("library_name"),
        tags=tags,
        parameters=parameters,
        base_model=tuple(str(b) for b in base),
        downloads=info.downloads,
        likes=info.likes,
        trending_score=info.trending_score,
        last_modified=_iso(info.last_modified),
        created_at=_iso(info.created_at),
        gated=info.gated or False,
        card_markdown=card,
        files=files,
        commit=info.sha,
    )


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="seconds") + "Z"
