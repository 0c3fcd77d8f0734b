"""Where a registry keeps a file per repository revision: ``<folder>/<org>/<name>/<revision>.json``.

The metadata cache (``.metadata``) and the health store (``.health``) both lay out their files this way, and
both get ids and revisions from sidecars, that is from anyone who can write to the registry: one rule keeps
every such file inside its folder.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Self

from modelreg.errors import FileProblem

#: The file name of a model with no known revision.
MAIN = "main"


class RevisionFolder:
    """A registry's folder of per-revision files (:data:`FOLDER` below the registry), whose :meth:`path` never
    names a file outside it."""

    #: The folder's name in a registry, and the error and the verb :meth:`path` refuses an outside file with.
    FOLDER: str
    OUTSIDE_ERROR: type[FileProblem]
    OUTSIDE_VERB: str

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @classmethod
    def for_registry(cls, registry: str | Path) -> Self:
        return cls(Path(registry) / cls.FOLDER)

    def path(self, repo_id: str, revision: str | None) -> Path:
        """The file of a repository revision, which always lies inside the folder, links resolved.

        Raises:
            FileProblem: (the subclass's :attr:`OUTSIDE_ERROR`) the repository id or revision would name a file
                outside the folder.
        """
        path, inside = revision_file(self.root, repo_id, revision)
        if not inside:
            raise self.OUTSIDE_ERROR(path, f"{repo_id}@{revision or MAIN} would be {self.OUTSIDE_VERB} outside "
                                           f"{self.root}")
        return path


def revision_file(root: Path, repo_id: str, revision: str | None) -> tuple[Path, bool]:
    """``<root>/<org>/<name>/<revision or main>.json`` and whether it lies inside ``root``: False for an id that
    is not two parts, an empty, ``.`` or ``..`` part, or a link below ``root`` that leads out of it."""
    parts = [*repo_id.split("/"), *(revision or MAIN).split("/")]
    path = root.joinpath(*parts[:-1], parts[-1] + ".json")
    inside = len(repo_id.split("/")) == 2 and not any(p in ("", ".", "..") for p in parts)
    return path, inside and not _escapes(root, path, parts)


def _escapes(root: Path, path: Path, parts: list[str]) -> bool:
    """Whether a link below ``root`` leads ``path`` out of it (a few ``lstat`` calls, and a full resolve only
    where there is a link: a build looks up thousands of entries)."""
    here = str(root)
    for part in parts[:-1] + [parts[-1] + ".json"]:
        here = os.path.join(here, part)
        try:
            if not stat.S_ISLNK(os.lstat(here).st_mode):
                continue
        except OSError:
            return False  # nothing exists from here on: no link to follow
        return not path.resolve().is_relative_to(root.resolve())
    return False
