"""Hugging Face metadata of a model at a revision, as the site shows it (filled from the hub cache)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RepoFile:
    """One file of the repository at the revision, as HF lists it."""

    path: str
    size: int | None
    lfs_sha256: str | None = None


@dataclass(frozen=True)
class ModelMeta:
    """What people choose a model by. Every field may be unknown (None or empty)."""

    repo_id: str
    revision: str | None = None
    license: str | None = None
    pipeline_tag: str | None = None
    library_name: str | None = None
    tags: tuple[str, ...] = ()
    parameters: int | None = None
    base_model: tuple[str, ...] = ()
    downloads: int | None = None
    likes: int | None = None
    trending_score: float | None = None
    last_modified: str | None = None
    created_at: str | None = None
    gated: bool | str = False
    card_markdown: str | None = None
    files: tuple[RepoFile, ...] = field(default=(), repr=False)
    #: The commit HF resolved ``revision`` to (differs from it when the model follows a branch).
    commit: str | None = None
    #: When the metadata was fetched (UTC, ISO 8601); kept in the cache, not shown by the site.
    fetched_at: str | None = None
