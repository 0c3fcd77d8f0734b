"""Refreshing metadata: 100 models from the fake hub with 20 ms of latency per request, --jobs 8 against
--jobs 1 in the same run (target: at least 5x faster), and the offline join of the cache into the catalog
against loading the catalog alone (target: at most 3x its time).
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from examples_hub import publish  # noqa: E402
from fakehub import FakeHub  # noqa: E402

from modelreg.hf.client import HubClient  # noqa: E402
from modelreg.registry.catalog import load_catalog  # noqa: E402
from modelreg.registry.metacache import MetaCache  # noqa: E402
from modelreg.registry.refresh import RefreshSettings, refresh  # noqa: E402
from modelreg.site.build import join_metadata  # noqa: E402

MODELS, LATENCY = 100, 0.02


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp, FakeHub() as hub:
        registry = Path(tmp) / "registry"
        for i in range(MODELS):
            publish(hub, registry, f"Bench/model-{i:03d}", {"config.json": b"{}", "w.safetensors": bytes([i]) * 4096},
                    license="mit", downloads=i)
        hub.inject("any", delay=LATENCY, times=None)
        models, cache = load_catalog(registry).models, MetaCache.for_registry(registry)
        client = HubClient(hub.endpoint)

        def run(jobs: int) -> float:
            settings = RefreshSettings(max_age=timedelta(0), jobs=jobs, progress=False)
            return timed(lambda: refresh(models, cache, client, settings))

        serial, parallel = run(1), run(8)
        print(f"refresh {MODELS} models, 2 requests each at {LATENCY * 1000:.0f} ms: jobs=1 {serial:.2f} s, "
              f"jobs=8 {parallel:.2f} s, speedup {serial / parallel:.1f}x (target >= 5x); "
              f"max in flight {hub.max_in_flight['hub']}")

        load = min(timed(lambda: load_catalog(registry)) for _ in range(5))
        joined = min(timed(lambda: join_metadata(load_catalog(registry), cache)) for _ in range(5))
        print(f"offline join: load_catalog {load * 1000:.1f} ms, with join_metadata {joined * 1000:.1f} ms, "
              f"ratio {joined / load:.2f}x (target <= 3x)")


if __name__ == "__main__":
    main()
