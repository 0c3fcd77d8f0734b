"""Helpers of the hostile-input tests: small torrents made with modelreg's bencoder, registries, builds."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from pathlib import Path

from modelreg.config import Config
from modelreg.site.build import BuildReport, build_site
from modelreg.torrent import bencode

ROOT = Path(__file__).resolve().parents[1]
REV = "0123456789abcdef0123456789abcdef01234567"
REPO_DEFAULT = "Org/Model"


def torrent_bytes(name: str, size: int = 1000, piece_length: int = 16384, **top: object) -> bytes:
    """A v1 single-file torrent of ``size`` zero bytes named ``name``; ``top`` adds top-level keys
    (e.g. ``creation_date=...`` for ``creation date``)."""
    full, rest = divmod(size, piece_length)
    pieces = _zero_piece_hash(piece_length) * full + (_zero_piece_hash(rest) if rest else b"")
    info = {b"name": name.encode(), b"length": size, b"piece length": piece_length, b"pieces": pieces}
    data = {b"info": info, **{k.replace("_", " ").encode(): v for k, v in top.items()}}
    return bencode.encode(data)


@functools.cache
def _zero_piece_hash(length: int) -> bytes:
    return hashlib.sha1(b"\0" * length).digest()


def add_model(registry: Path, repo_id: str, *, sidecar: object = None, **top: object) -> Path:
    """``registry/<org>/<name>/<name>.torrent`` (and its sidecar, if given, as JSON)."""
    name = repo_id.split("/")[1]
    path = registry / repo_id / f"{name}.torrent"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(torrent_bytes(name, **top))
    if sidecar is not None:
        path.with_suffix(".json").write_text(json.dumps(sidecar))
    return path


def meta_file(registry: Path, repo_id: str, revision: str | None = REV) -> Path:
    path = registry / ".metadata" / repo_id / f"{revision or 'main'}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def good_meta(repo_id: str, revision: str | None = REV) -> dict:
    """A metadata cache file as ``modelreg refresh`` writes it."""
    return {
        "format": 1, "repo_id": repo_id, "revision": revision, "fetched_at": "2026-01-01T00:00:00Z", "failure": None,
        "meta": {"repo_id": repo_id, "revision": revision, "license": "mit", "pipeline_tag": "text-generation",
                 "library_name": "transformers", "tags": ["a", "b"], "parameters": 7, "base_model": [],
                 "downloads": 12, "likes": 3, "trending_score": 1.5, "last_modified": "2025-05-01T10:00:00Z",
                 "created_at": "2025-01-01T00:00:00Z", "gated": False, "card_markdown": "# Card\n\nHello.",
                 "files": [{"path": "x.bin", "size": 1000, "lfs_sha256": None}], "commit": revision},
    }


def build(registry: Path, out: Path, **options: object) -> BuildReport:
    config = Config(root=out.parent).replace(registry=str(registry), out=str(out), **options)
    return build_site(config)


def subprocess_env() -> dict[str, str]:
    """The environment for a child ``python -m modelreg``: this worktree's package first."""
    return {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


PYTHON = sys.executable
