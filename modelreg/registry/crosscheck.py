"""Compare a torrent's files with the repository's files on Hugging Face at the revision it pins.

The rule, stated once (the site and the build summary show the results as the model's problems):

- a torrent file that HF does not have at that revision, or whose size differs from HF's, is an
  **error**: the torrent is stale or was made from another revision, and its web seed cannot serve it;
- an HF file that the torrent leaves out is a softer **note**: torrents may carry only the weights.
  ``.gitattributes`` is never noted (it is git plumbing, not part of a model), and nothing is noted for a
  single-file torrent, which by design carries one file of a repository (e.g. one GGUF quantisation).

A single-file torrent's file is matched by path, else by a unique file of the same name in a subfolder.
"""

from __future__ import annotations

from modelreg.hf.metadata import ModelMeta, RepoFile
from modelreg.torrent.metainfo import Torrent

IGNORED = frozenset({".gitattributes"})
SHOWN = 5  # file names listed in one message before "and N more"


def compare_files(torrent: Torrent, meta: ModelMeta) -> tuple[list[str], list[str]]:
    """(errors, notes) about how the torrent's files differ from HF's list in ``meta``."""
    if not meta.files:
        return [], []
    hf = {f.path: f for f in meta.files}
    errors, matched = [], set()
    missing, differ = [], []
    for entry in torrent.files:
        found = match_file(entry.path_str, hf, torrent.single_file)
        if found is None:
            missing.append(entry.path_str)
            continue
        matched.add(found.path)
        if found.size is not None and found.size != entry.size:
            differ.append(f"{entry.path_str} ({entry.size} bytes in the torrent, {found.size} on HF)")
    at = f"at {meta.commit[:12]}" if meta.commit else "at this revision"
    if missing:
        errors.append(f"{_count(missing, 'torrent file')} not in the Hugging Face repository {at}: {_names(missing)}")
    if differ:
        errors.append(f"{_count(differ, 'file')} with a different size on Hugging Face {at}: {_names(differ)}")
    notes = []
    if not torrent.single_file:
        left_out = sorted(p for p in hf if p not in matched and p not in IGNORED)
        if left_out:
            notes.append(f"note: {_count(left_out, 'file')} of the Hugging Face repository not in the torrent: "
                         f"{_names(left_out)}")
    return errors, notes


def match_file(path: str, hf: dict[str, RepoFile], single: bool) -> RepoFile | None:
    """HF's file (``hf`` keyed by path) for a torrent file's ``path``, matched as the module says."""
    if path in hf:
        return hf[path]
    if single:
        same_name = [f for p, f in hf.items() if p.rsplit("/", 1)[-1] == path]
        if len(same_name) == 1:
            return same_name[0]
    return None


def _count(items: list[str], what: str) -> str:
    return f"{len(items)} {what}{'s' if len(items) != 1 else ''}"


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")
