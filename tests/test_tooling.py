"""The project's own checks: ruff (lint and import order) and the import-linter layers contract."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def tool(name: str) -> str:
    path = BIN / name if (BIN / name).exists() else shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return str(path)


def test_ruff_is_clean():
    run = subprocess.run([tool("ruff"), "check", "--no-cache", "."], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


def test_layers_only_import_downward():
    run = subprocess.run([tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout


def test_python_dash_m_modelreg_runs_the_cli():
    run = subprocess.run([sys.executable, "-m", "modelreg", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "usage: modelreg" in run.stdout and "build" in run.stdout


def _sh_blocks(text: str) -> list[str]:
    return [block.strip() for block in text.split("```sh\n")[1:] for block in [block.split("```")[0]]]


def test_the_readme_sets_up_without_test_extras_and_ci_runs_its_test_command():
    blocks = _sh_blocks((ROOT / "README.md").read_text())
    setup, tests = blocks[0], blocks[1]
    assert "pip install -e ." in setup and "[test]" not in setup  # building needs no Playwright or libtorrent
    assert "'.[test]'" in tests and "pytest" in tests  # the test command installs its extras itself
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests in ci, f"{tests!r} is not a line of .ci/run"
    assert ci.index("python3 -m venv .venv") < ci.index(tests)
    assert any("apt-get install" in line for line in ci)


def test_no_build_artefacts_are_committed_at_the_top_level():
    assert not list(ROOT.glob("*.whl")) and not list(ROOT.glob("*.tar.gz"))
