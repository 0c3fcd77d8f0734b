"""Put models on the fake hub: test models with their torrents, and the bundled example registry's models.

``python tests/examples_hub.py`` regenerates the example registry's metadata cache
(``registry/.metadata/``): it serves the models defined in ``scripts/examples.py`` from a fake hub and
runs modelreg's refresh against it, so the offline build of the examples shows their metadata.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "tests")) if p not in sys.path]

from fakehub import FakeHub, Repo  # noqa: E402
from ltutil import make_torrent  # noqa: E402

CARD = "# {name}\n\nA test model served by the fake hub.\n"


def publish(
    hub: FakeHub,
    registry: Path,
    repo_id: str,
    files: dict[str, bytes],
    *,
    torrent_files: dict[str, bytes] | None = None,
    pin: bool = True,
    single_file: bool = False,
    **meta,
) -> Repo:
    """Add ``repo_id`` with ``files`` (and a card) to ``hub``, and a torrent of the same files to ``registry``.

    ``torrent_files`` makes the torrent from other files (a stale torrent); ``pin`` writes a sidecar with the
    commit, else the revision is unknown (main branch); ``single_file`` makes a torrent of the one file.
    """
    org, name = repo_id.split("/")
    meta.setdefault("card", CARD.format(name=name))
    repo = hub.add_repo(repo_id, files, **meta)
    content = torrent_files
    if content is None:
        content = dict(files) if single_file else {p: e.content for p, e in repo.files.items() if p != ".gitattributes"}
    folder = registry / org / name
    folder.mkdir(parents=True, exist_ok=True)
    src = registry.parent / "src" / org / name
    if single_file:
        (path, data), = content.items()
        torrent = make_torrent(src, {path: data})
    else:
        torrent = make_torrent(src, {f"{name}/{p}": data for p, data in content.items()})
    (folder / f"{name}.torrent").write_bytes(torrent)
    if pin:
        (folder / f"{name}.json").write_text(json.dumps({"repo_id": repo_id, "revision": repo.sha}))
    return repo


def example_definitions():
    """The ``EXAMPLES`` of ``scripts/examples.py`` (the bundled registry's made-up models)."""
    spec = importlib.util.spec_from_file_location("modelreg_examples", ROOT / "scripts" / "examples.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being defined
    spec.loader.exec_module(module)
    return module.EXAMPLES


def serve_examples(hub: FakeHub) -> list[Repo]:
    """Add every example model to ``hub`` at the commit its sidecar pins, with its card and metadata."""
    repos = []
    for ex in example_definitions():
        meta = dict(ex.meta)
        parameters = meta.pop("parameters", None)
        if parameters is not None and any(p.endswith(".gguf") for p in ex.files):
            meta["gguf"] = {"total": parameters}
        elif parameters is not None:
            meta["safetensors"] = {"parameters": {"F16": parameters}, "total": parameters}
        files = {**ex.files, "README.md": ex.card.encode()}
        repos.append(hub.add_repo(ex.repo_id, files, sha=ex.revision, gitattributes=True, **meta))
    return repos


def main() -> int:
    from modelreg.hf.client import HubClient
    from modelreg.registry.catalog import load_catalog
    from modelreg.registry.metacache import MetaCache
    from modelreg.registry.refresh import RefreshSettings, refresh

    registry = ROOT / "registry"
    with FakeHub() as hub:
        serve_examples(hub)
        catalog = load_catalog(registry)
        examples = tuple(m.repo_id for m in catalog.models if m.sidecar.get("example"))
        settings = RefreshSettings(max_age=timedelta(0), only=examples, progress=False)
        report = refresh(catalog.models, MetaCache.for_registry(registry), HubClient(hub.endpoint), settings)
    print(report.summary())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
