"""The Hugging Face cache layout, exactly as ``huggingface_hub`` 2.4 writes and reads it offline::

    <cache>/models--<Org>--<Name>/blobs/<etag>                  the bytes, once
    <cache>/models--<Org>--<Name>/snapshots/<commit>/<path>     relative symlink to ../../blobs/<etag>
    <cache>/models--<Org>--<Name>/refs/<branch>                 the commit, no newline

The etag is the file's LFS SHA-256 for files stored in Git LFS and the git blob SHA-1
(``sha1(b"blob <size>\\0" + bytes)``) for the others. The cache is ``$HF_HUB_CACHE``, else
``$HF_HOME/hub``, else ``$XDG_CACHE_HOME/huggingface/hub`` (``~/.cache/huggingface/hub``).

Files are placed so that a snapshot never names a wrong or partial file: a blob is linked (or renamed)
into place whole, and a snapshot entry is a symlink made beside its final name and renamed over it.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from modelreg.errors import SwarmError

#: Files larger than this must be in Git LFS on the hub.
LFS_SIZE = 10 * 1024 * 1024
#: The patterns the hub's default ``.gitattributes`` stores in LFS; used when neither the registry's
#: metadata nor the repository's own ``.gitattributes`` says whether a file is in LFS.
DEFAULT_LFS_PATTERNS = (
    "*.7z", "*.arrow", "*.bin", "*.bz2", "*.ckpt", "*.ftz", "*.gz", "*.h5", "*.joblib", "*.lfs.*",
    "*.mlmodel", "*.model", "*.msgpack", "*.npy", "*.npz", "*.onnx", "*.ot", "*.parquet", "*.pb",
    "*.pickle", "*.pkl", "*.pt", "*.pth", "*.rar", "*.safetensors", "saved_model/**/*", "*.tar.*",
    "*.tar", "*.tflite", "*.tgz", "*.wasm", "*.xz", "*.zip", "*.zst", "*tfevents*", "*.gguf",
)
#: Where ``get`` keeps partial downloads of a repository, inside its cache folder (never under snapshots/).
INCOMPLETE = ".modelreg-incomplete"
_CHUNK = 4 << 20
_COMMIT = re.compile(r"^[0-9a-f]{40}$")


def hub_cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder ``huggingface_hub`` uses (``explicit`` first, like its ``cache_dir`` argument)."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(os.path.expandvars(env)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def repo_folder(cache: Path, repo_id: str) -> Path:
    """``<cache>/models--Org--Name``."""
    return cache / ("models--" + repo_id.replace("/", "--"))


def file_hashes(path: Path, sha256: bool = True, git_sha1: bool = True) -> tuple[str | None, str | None]:
    """The file's SHA-256 (an LFS file's etag) and git blob SHA-1 (another file's etag), hex, each only if
    asked for, from one read. hashlib releases the GIL: callers may hash several files on threads.

    Raises:
        OSError: the file cannot be read.
    """
    size = os.path.getsize(path)
    digests = [hashlib.sha256() if sha256 else None, hashlib.sha1(b"blob %d\0" % size) if git_sha1 else None]
    with open(path, "rb", buffering=0) as f:
        while chunk := f.read(_CHUNK):
            for d in digests:
                if d is not None:
                    d.update(chunk)
    return digests[0].hexdigest() if digests[0] else None, digests[1].hexdigest() if digests[1] else None


def lfs_patterns(gitattributes: str) -> tuple[str, ...]:
    """The patterns a ``.gitattributes`` stores in LFS (``filter=lfs``)."""
    patterns = []
    for line in gitattributes.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return tuple(patterns)


def looks_lfs(path: str, size: int, patterns: Iterable[str] = DEFAULT_LFS_PATTERNS) -> bool:
    """Whether the hub stores ``path`` in LFS, by size and by the ``.gitattributes`` patterns (git's rules:
    a pattern without '/' matches the file name in any folder)."""
    if size > LFS_SIZE:
        return True
    name = path.rsplit("/", 1)[-1]
    for pattern in patterns:
        pattern = pattern.lstrip("/")
        if "/" in pattern:
            if fnmatch.fnmatchcase(path, pattern.replace("**/", "*")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def check_relpath(path: str) -> tuple[str, ...]:
    """A repository path's parts, refused if it could leave the snapshot folder.

    Raises:
        SwarmError: an empty, absolute or ``..`` component.
    """
    parts = tuple(path.split("/"))
    if not path or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise SwarmError(f"refusing the file path {path!r}: it would leave the snapshot folder")
    return parts


def place_blob(repo: Path, etag: str, source: Path) -> Path:
    """Put ``source`` at ``blobs/<etag>`` as a hard link (no second copy), or by renaming it where hard links
    are not possible. An existing blob of the same size is kept (the etag names its content).

    Raises:
        OSError: the blob cannot be made.
    """
    blobs = repo / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    blob = blobs / etag
    if blob.is_file() and blob.stat().st_size == source.stat().st_size:
        return blob
    tmp = blobs / f".{etag}.modelreg-tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.link(source, tmp)
    except OSError:
        os.rename(source, tmp)
    os.replace(tmp, blob)
    return blob


def link_snapshot(repo: Path, commit: str, path: str, etag: str) -> Path:
    """Make ``snapshots/<commit>/<path>`` a relative symlink to ``blobs/<etag>`` (replacing what was there).

    Raises:
        SwarmError: a bad commit or path.
        OSError: the link cannot be made.
    """
    if not _COMMIT.match(commit):
        raise SwarmError(f"{commit!r} is not a commit hash: a snapshot folder is named by the full commit")
    parts = check_relpath(path)
    link = repo.joinpath("snapshots", commit, *parts)
    link.parent.mkdir(parents=True, exist_ok=True)
    target = os.path.join(*([".."] * (len(parts) + 1)), "blobs", etag)
    tmp = link.parent / f".{link.name}.modelreg-tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, link)
    return link


def write_ref(repo: Path, branch: str, commit: str) -> None:
    """``refs/<branch>`` := commit (written whole, like ``huggingface_hub``: no trailing newline).

    Raises:
        SwarmError: a branch name that would leave the refs folder.
    """
    parts = check_relpath(branch)
    ref = repo.joinpath("refs", *parts)
    ref.parent.mkdir(parents=True, exist_ok=True)
    tmp = ref.parent / f".{ref.name}.modelreg-tmp"
    tmp.write_text(commit)
    os.replace(tmp, ref)


def snapshot_file(repo: Path, commit: str, path: str) -> Path | None:
    """The real file (blob) behind ``snapshots/<commit>/<path>``, or None where it is missing or dangling."""
    try:
        link = repo.joinpath("snapshots", commit, *check_relpath(path))
    except SwarmError:
        return None
    try:
        real = link.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return real if real.is_file() else None
