"""The project's own checks: ruff (lint and import order) and the import-linter layers contract."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tomllib
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
    assert "2 kept, 0 broken" in run.stdout


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


def _third_party_imports(package: Path) -> dict[str, set[str]]:
    """Top-level modules imported anywhere under ``package`` that are neither the stdlib nor the project's."""
    found: dict[str, set[str]] = {}
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names and top != package.name:
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_runtime_import_is_a_declared_dependency():
    declared = {_normalized(re.split(r"[<>=!~;\[ ]", dep, maxsplit=1)[0])
                for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]}
    providers = importlib.metadata.packages_distributions()
    undeclared = {module: sorted(where) for module, where in _third_party_imports(ROOT / "modelreg").items()
                  if not declared & {_normalized(dist) for dist in providers.get(module, [])}}
    assert not undeclared, f"imported by modelreg/ but not in pyproject.toml's dependencies: {undeclared}"
