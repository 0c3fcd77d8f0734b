"""Run every benchmark in this folder: ``python bench/run.py [name ...]`` (e.g. ``read site``).

Each ``bench_<name>.py`` has a ``main()`` that measures against a reference in the same run and prints
the ratio to its target. Results are recorded by hand in BENCHMARKS.md.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names: list[str]) -> int:
    modules = sorted(HERE.glob("bench_*.py"))
    if names:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in names]
    for path in modules:
        print(f"== {path.stem}")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
