"""Fetch a model's Hugging Face metadata at a revision with ``huggingface_hub``, retrying what is worth retrying.

Retries follow :mod:`modelreg.hf.retry`, the policy the streaming source and the gateway use too.
``HfApi.model_info`` and the library's shared session (used for the model card's ``resolve`` URL) do not
retry by themselves in huggingface_hub 2.4, unlike ``hf_hub_download``, which wraps its requests in
``http_backoff`` (5 retries, 1-8 s, plus its own Retry-After handling): the card is therefore fetched
through the session, not ``hf_hub_download``, so every request is retried once, by
:class:`~modelreg.hf.retry.RetryPolicy`, with delays a caller can set. The endpoint and the token are
resolved by :func:`hub_endpoint` and :func:`hub_token` for every command and always passed explicitly,
never picked up by the library.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import httpx2
from huggingface_hub import HfApi, get_token, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

from modelreg.config import DEFAULT_HF_ENDPOINT, Config, check_url
from modelreg.errors import HubError
from modelreg.hf.metadata import ModelMeta, RepoFile
from modelreg.hf.retry import Pause, RetryPolicy, retry_after, retryable_status
from modelreg.units import utc_timestamp

CARD_FILE = "README.md"
T = TypeVar("T")


def hub_endpoint(config: Config | None = None, explicit: str | None = None) -> str:
    """The hub to talk to: ``explicit`` (a command's ``--hf-endpoint``) when given, else the config's
    ``hf_endpoint`` when set to something else than the default, else ``HF_ENDPOINT`` from the environment,
    else https://huggingface.co. Every command (the gateway too) resolves it here.

    It is passed explicitly to every call: huggingface_hub reads ``HF_ENDPOINT`` only once, at import.

    Raises:
        ConfigError: ``explicit`` is not an absolute http(s) URL.
    """
    if explicit:
        return check_url(explicit, "--hf-endpoint").rstrip("/")
    if config is not None and config.hf_endpoint.rstrip("/") != DEFAULT_HF_ENDPOINT:
        return config.hf_endpoint.rstrip("/")
    env = os.environ.get("HF_ENDPOINT")
    return check_url(env, "HF_ENDPOINT").rstrip("/") if env else DEFAULT_HF_ENDPOINT


def hub_token(explicit: str | None = None) -> str | None:
    """The access token for gated repositories: ``explicit`` when given, else ``HF_TOKEN``, else the login
    saved by ``hf auth login`` (huggingface_hub's :func:`~huggingface_hub.get_token`), unless
    ``HF_HUB_DISABLE_IMPLICIT_TOKEN`` forbids using a token that was not asked for. Every command resolves
    it here, the gateway too, and passes it explicitly (None: no token at all)."""
    if explicit:
        return explicit
    if os.environ.get("HF_HUB_DISABLE_IMPLICIT_TOKEN", "").strip().lower() in ("1", "true", "yes", "on"):
        return os.environ.get("HF_TOKEN") or None
    return get_token() or None


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
        self.api = HfApi(endpoint=self.endpoint, token=token or False)
        self.pause = Pause()

    def fetch(self, repo_id: str, revision: str | None) -> Fetched:
        """The metadata and model card of ``repo_id`` at ``revision`` (None: the main branch).

        Raises :class:`HubError` with a ``reason`` when the repository, the revision or the hub cannot be read.
        A card that cannot be read while the rest can (a gated repository without a token) is left out and
        its error returned beside the metadata.
        """
        info = self.model_info(repo_id, revision)
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
        response = get_session().get(url, headers=build_hf_headers(token=self.token or False), timeout=self.timeout)
        hf_raise_for_status(response)
        return response.content.decode("utf-8", errors="replace")

    def model_info(self, repo_id: str, revision: str | None) -> Any:
        """huggingface_hub's ``ModelInfo`` of ``repo_id`` at ``revision``, with file sizes and LFS digests.

        Raises:
            HubError: with a ``reason``, after the retries the policy allows.
        """
        return self._call(repo_id, revision, lambda: self.api.model_info(
            repo_id, revision=revision, files_metadata=True, timeout=self.timeout, token=self.token or False))

    def _call(self, repo_id: str, revision: str | None, request: Callable[[], T]) -> T:
        """Run ``request``, retrying per the policy; turn every failure into a :class:`HubError`."""
        attempt = 0
        while True:
            self.pause.wait()
            try:
                return request()
            except Exception as exc:  # classified below; anything unexpected is re-raised
                reason, detail, retryable, after = self._classify(exc, revision)
            wait = self.retry.wait(attempt, after) if retryable else None
            if wait is None:
                if retryable:
                    detail = f"{detail}; {self.retry.why_not(attempt, after)}"
                raise HubError(repo_id, revision, reason, detail)
            if after:
                self.pause.extend(after)
            time.sleep(wait)
            attempt += 1

    def _classify(self, exc: Exception, revision: str | None) -> tuple[str, str, bool, float | None]:
        """``(reason, detail, retryable, Retry-After seconds)`` of a failed request."""
        if isinstance(exc, GatedRepoError):
            hint = "the token in HF_TOKEN has no access to it" if self.token else "set HF_TOKEN to a token with access"
            return "gated", f"the repository is gated: {hint}", False, None
        if isinstance(exc, RemoteEntryNotFoundError):
            return "not-found", "the file is not in the repository at this revision", False, None
        if isinstance(exc, RevisionNotFoundError):
            return "revision-not-found", f"revision {revision} does not exist in the repository", False, None
        if isinstance(exc, RepositoryNotFoundError):
            return "not-found", "the repository does not exist on the hub (or is private)", False, None
        if isinstance(exc, HfHubHTTPError) and exc.response is not None:
            status = exc.response.status_code
            if status == 401:
                return "unauthorized", "the hub refused the token in HF_TOKEN: check or replace it", False, None
            if not retryable_status(status):
                return "http-error", f"the hub answered HTTP {status}", False, None
            reason = "rate-limited" if status == 429 else "server-error"
            return reason, f"the hub answered HTTP {status}", True, retry_after(exc.response.headers)
        if isinstance(exc, OfflineModeIsEnabled):
            return "offline", "HF_HUB_OFFLINE is set: the hub was not asked", False, None
        if isinstance(exc, httpx2.TimeoutException):
            return "timeout", f"no answer from {self.endpoint} within {self.timeout:g} s", True, None
        if isinstance(exc, (httpx2.ConnectError, OSError)):  # refused or unresolvable: asking again will not help
            return "offline", f"cannot reach {self.endpoint}: {exc}", False, None
        if isinstance(exc, httpx2.TransportError):  # a connection lost mid-answer
            return "offline", f"lost the connection to {self.endpoint}: {exc}", True, None
        if isinstance(exc, (ValueError, KeyError, TypeError)):
            return "bad-response", f"the hub's answer cannot be read: {exc}", False, None
        raise exc


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
    return None if value is None else utc_timestamp(value)
