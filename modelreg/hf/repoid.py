"""A Hugging Face repository id, ``Org/Name``, and its two parts.

Every record that carries a repository id (the hub's :class:`~modelreg.hf.snapshot.Snapshot`, the
registry's :class:`~modelreg.registry.catalog.Model`, the gateway's served entries) takes its ``org`` and
``name`` from :class:`RepoIdParts`, so they split the id one way.
"""

from __future__ import annotations


class RepoIdParts:
    """Mixin for a class with a ``repo_id`` attribute holding a checked ``Org/Name`` id."""

    repo_id: str

    @property
    def org(self) -> str:
        return self.repo_id.split("/")[0]

    @property
    def name(self) -> str:
        return self.repo_id.split("/")[1]
