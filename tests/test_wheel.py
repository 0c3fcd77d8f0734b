"""A wheel installed without ``-e`` in a fresh virtual environment builds the bundled example registry: the
theme is package data, nothing is read from the checkout. Skipped when no wheel can be built here."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _build_wheel(tmp_path: Path) -> Path:
    """The project's wheel, built by pip from a copy of its sources (so the checkout gets no build/)."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "modelreg", src / "modelreg", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    out = tmp_path / "dist"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=300,
    )
    wheels = list(out.glob("modelreg-*.whl"))
    if result.returncode != 0 or len(wheels) != 1:
        pytest.skip(f"cannot build a wheel here (pip wheel: {result.stderr.strip()[-300:]})")
    return wheels[0]


def test_a_wheel_installed_in_a_fresh_venv_builds_the_example_site(tmp_path):
    wheel = _build_wheel(tmp_path)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)  # fast and offline
    python = env_dir / "bin" / "python"
    site_packages = Path(subprocess.run(
        [python, "-I", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True).stdout.strip())
    subprocess.run(  # installed, not linked: pip copies the wheel's files into the fresh venv
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site_packages),
         str(wheel)], check=True, capture_output=True, timeout=120)
    # The dependencies (jinja2, huggingface_hub, ...) come from the test's own environment, after the wheel.
    paths = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site_packages / "zz-dependencies.pth").write_text("".join(f"{p}\n" for p in paths))

    where = subprocess.run([python, "-I", "-c", "import modelreg; print(modelreg.__file__)"], cwd=tmp_path,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(site_packages)  # the wheel, not the checkout

    site = tmp_path / "site"
    build = subprocess.run(
        [python, "-I", "-m", "modelreg", "build", "--strict", "--registry", str(ROOT / "registry"), "--out",
         str(site)], cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, build.stderr
    page = site / "models" / "modelreg-examples" / "tiny-llama-demo" / "index.html"
    assert page.is_file() and b"tiny-llama-demo" in page.read_bytes()
    assert (site / "index.html").is_file() and any((site / "static").iterdir())  # the packaged theme's files
