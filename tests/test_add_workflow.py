"""The create-torrent workflow's add step, run as written against the fake hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from fakehub import fake_hub

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "create-torrent.yml"


def add_step() -> str:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["add"]["steps"]
    return next(s["run"] for s in steps if s.get("id") == "add")


def run_step(tmp_path: Path, endpoint: str, repos: str, trending: str) -> tuple[subprocess.CompletedProcess, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "modelreg"  # the installed console script, pointing at this checkout
    shim.write_text(f"#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                    "from modelreg.cli import main\nsys.exit(main())\n")
    shim.chmod(0o755)
    output = tmp_path / "github-output"
    output.write_text("")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HF_ENDPOINT": endpoint,
           "REPOS": repos, "TRENDING": trending, "GITHUB_OUTPUT": str(output), "HF_TOKEN": ""}
    done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", add_step()],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    return done, output.read_text()


def test_workflow_adds_named_and_trending_models_once(tmp_path):
    for hub in fake_hub():
        hub.add_repo("Named/Model", {"config.json": b"{}", "model.safetensors": b"x" * 5000})
        hub.add_repo("Hot/Model", {"config.json": b"{}"}, trending_score=9)
        hub.add_repo("Cold/Model", {"config.json": b"{}"}, trending_score=1)
        done, output = run_step(tmp_path, hub.endpoint, "Named/Model", "1")
        assert done.returncode == 0, done.stderr
        assert output == "status=0\n"
        made = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.torrent"))
        assert made == ["registry/hot/model/Model.torrent", "registry/named/model/Model.torrent"]
        # The next scheduled run finds them in the registry and skips them.
        done, output = run_step(tmp_path, hub.endpoint, "", "1")
        assert output == "status=0\n"
        assert "skipped Hot/Model: already in" in done.stdout
        # A failing model fails the run (after the others are committed).
        done, output = run_step(tmp_path, hub.endpoint, "Missing/Model", "0")
        assert output == "status=1\n"
        assert "Missing/Model: no such repository" in done.stderr
