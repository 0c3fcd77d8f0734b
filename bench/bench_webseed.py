"""The web-seed gateway on loopback (``python bench/bench_webseed.py`` or ``python bench/run.py webseed``).

1. mirror mode serving cached files to 32 concurrent range-requesting clients (wrk, 1 MiB random ranges)
   vs nginx serving the same files from disk in the same run (target: >= 70% of nginx's bytes/s);
2. redirect mode: requests/s and p99 latency of 302s for an LFS file (target: >= 3,000 req/s, p99 < 50 ms);
3. a ~32 MB hybrid torrent downloaded by libtorrent and by aria2c with the CDN answering 500 to every 7th
   request (the 2nd, 9th, ...), per mode (redirect: the client meets the errors; mirror: the gateway retries them);
4. the same torrent with no faults, libtorrent at its default ``urlseed_wait_retry`` (30 s), per mode;
5. filling the mirror (what ``modelreg mirror`` does: every piece fetched from the hub on loopback,
   SHA-1 checked and written) vs SHA-1 of the same bytes on one core, in the same run (target >= 0.8);
6. the cost of checking cached pieces when read from disk: serving right after a start (every piece
   hashed again on its first read) vs serving pieces already checked, same wrk load as 1.

The gateway runs in this process (one event loop thread), nginx with one worker: one process each.
Serving alternates gateway and nginx runs (3 rounds of 5 s each) and compares the medians.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fakehub import FakeHub, Fault
from webseed_harness import (
    aria2c_download,
    downloaded,
    libtorrent_download,
    make_files,
    make_model,
    start_gateway,
)

SERVE_TARGET = 0.70
FILL_TARGET = 0.80
FILL_SIZES = {"model-00001-of-00002.safetensors": 400 << 20, "model-00002-of-00002.safetensors": 368 << 20 | 4321}
RPS_TARGET = 3000
P99_TARGET_MS = 50
DURATION = 5
ROUNDS = 3
CONNECTIONS = 32
RANGE = 1 << 20

_WRK_SCRIPT = """
local paths = {%(paths)s}
local sizes = {%(sizes)s}
math.randomseed(%(seed)d)
request = function()
  local i = math.random(1, #paths)
  local off = math.random(0, sizes[i] - %(range)d - 1)
  return wrk.format("GET", paths[i], {["Range"] = "bytes=" .. off .. "-" .. (off + %(range)d - 1)})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%d\\n", summary.bytes, summary.requests, summary.duration,
    latency:percentile(99), summary.errors.status))
end
"""


FLAKY_SIZES = {
    "config.json": 2_000,
    "tokenizer.json": 3_000_000,
    "model-00001-of-00003.safetensors": 10_000_000,
    "model-00002-of-00003.safetensors": 10_000_000,
    "model-00003-of-00003.safetensors": 9_000_000,
}


class EverySeventhCdn500(FakeHub):
    """The fake hub whose CDN answers 500 to every 7th request: the 2nd, 9th, 16th... (a client that makes
    few, large range requests meets one too)."""

    cdn_requests = 0

    def _take_fault(self, kind: str, path: str):
        if kind == "cdn":
            with self._lock:
                self.cdn_requests += 1
                if self.cdn_requests % 7 == 2:
                    return Fault("cdn", 500)
        return super()._take_fault(kind, path)


def wrk(url: str, script: str | None = None, connections: int = CONNECTIONS) -> dict:
    """Run wrk for DURATION seconds; bytes/s, requests/s and p99 (ms)."""
    args = ["wrk", "-t2", f"-c{connections}", f"-d{DURATION}s", "--latency"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script or _WRK_SCRIPT.replace("request = function", "local unused = function") % {
            "paths": "", "sizes": "", "seed": 1, "range": 1})
    out = subprocess.run([*args, "-s", f.name, url], capture_output=True, text=True, timeout=DURATION + 30)
    os.unlink(f.name)
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+)", out.stdout)
    if not m:
        raise RuntimeError(f"wrk failed: {out.stdout} {out.stderr}")
    nbytes, requests, micros, p99, bad = map(int, m.groups())
    return {"bytes_s": nbytes / micros * 1e6, "req_s": requests / micros * 1e6, "p99_ms": p99 / 1000, "bad": bad}


def _median(results: list[dict]) -> dict:
    ordered = sorted(results, key=lambda r: r["bytes_s"])
    middle = ordered[len(ordered) // 2]
    return {**middle, "bad": sum(r["bad"] for r in results)}


def start_nginx(root: Path, tmp: Path) -> tuple[subprocess.Popen, int]:
    port = _free_port()
    conf = tmp / "nginx.conf"
    conf.write_text(textwrap.dedent(f"""
        worker_processes 1;
        daemon off;
        error_log {tmp}/nginx-error.log;
        pid {tmp}/nginx.pid;
        events {{ worker_connections 1024; }}
        http {{
            access_log {tmp}/nginx-access.log;
            client_body_temp_path {tmp}/body; proxy_temp_path {tmp}/proxy; fastcgi_temp_path {tmp}/fcgi;
            uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
            sendfile on; tcp_nopush on; keepalive_requests 100000;
            server {{ listen 127.0.0.1:{port}; root {root}; }}
        }}
    """))
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(tmp)], stderr=subprocess.PIPE)
    for _ in range(100):
        try:
            import socket

            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("nginx did not start")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_serving(tmp: Path) -> dict:
    sizes = {"model-00001-of-00002.safetensors": 48 << 20, "model-00002-of-00002.safetensors": 40 << 20 | 12345}
    files = make_files(sizes, seed=2)
    with FakeHub() as hub:
        model = make_model(hub, tmp, "Bench/Serve-Model", files, piece_length=1 << 20)
        with start_gateway(model, "mirror", hub, cache=tmp / "cache", max_per_client=1024) as gw:
            import http.client

            started = time.monotonic()
            for path in files:  # fill the cache: every piece fetched from the hub and verified once
                conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=60)
                conn.request("GET", f"/v1/{model.repo_id}/{model.revision}/Serve-Model/{path}")
                assert conn.getresponse().read() == files[path]
            fill_s = time.monotonic() - started
        # A fresh start on the filled cache: the first round pays for checking every piece again from disk.
        with start_gateway(model, "mirror", hub, cache=tmp / "cache", access_log=str(tmp / "access.log"),
                           max_per_client=1024) as gw:
            store = gw.call(_store_of(gw.gateway, model))
            data_root = store.root / "data"
            prefix = f"/v1/{model.repo_id}/{model.revision}/Serve-Model/"
            script = _WRK_SCRIPT % {
                "paths": ", ".join(f'"{prefix}{p}"' for p in files),
                "sizes": ", ".join(str(s) for s in sizes.values()),
                "seed": 7,
                "range": RANGE,
            }
            nginx_proc, port = start_nginx(data_root, tmp)
            nginx_script = script.replace(prefix, "/")
            rounds: dict[str, list[dict]] = {"gateway": [], "nginx": []}
            try:  # alternate, so that a neighbour's load on the machine hits both sides alike
                for _ in range(ROUNDS):
                    rounds["gateway"].append(wrk(gw.url, script))
                    rounds["nginx"].append(wrk(f"http://127.0.0.1:{port}", nginx_script))
            finally:
                nginx_proc.terminate()
                nginx_proc.wait(10)
            checked = gw.gateway.metrics.pieces_checked
    gateway, nginx = (_median(rounds[k]) for k in ("gateway", "nginx"))
    for k in ("gateway", "nginx"):
        print(f"  {k}: " + ", ".join(f"{r['bytes_s'] / 1e9:.2f}" for r in rounds[k]) + " GB/s")
    if gateway["bad"] or nginx["bad"]:
        raise RuntimeError(f"error answers during the run: gateway {gateway['bad']}, nginx {nginx['bad']}")
    ratio = gateway["bytes_s"] / nginx["bytes_s"]
    total = sum(sizes.values())
    print(f"mirror fill from the fake hub: {total / 1e6:.0f} MB in {fill_s:.2f} s ({total / fill_s / 1e6:.0f} MB/s, "
          "every piece SHA-1 checked)")
    print(f"mirror serving, {CONNECTIONS} clients, 1 MiB ranges: gateway {gateway['bytes_s'] / 1e9:.2f} GB/s "
          f"(p99 {gateway['p99_ms']:.1f} ms), nginx {nginx['bytes_s'] / 1e9:.2f} GB/s (p99 {nginx['p99_ms']:.1f} ms)"
          f"; ratio {ratio:.2f} (target >= {SERVE_TARGET}) {'OK' if ratio >= SERVE_TARGET else 'MISSED'}; "
          f"{checked} pieces checked again from disk (first round)")
    return {"gateway": gateway, "nginx": nginx, "ratio": ratio, "fill_s": fill_s, "checked": checked}


def bench_redirect(tmp: Path) -> dict:
    files = make_files({"config.json": 1000, "model.safetensors": 100_000}, seed=3)
    with FakeHub() as hub:
        model = make_model(hub, tmp / "redirect", "Bench/Redirect-Model", files)
        with start_gateway(model, "redirect", hub, access_log=str(tmp / "redirect-access.log"),
                           max_per_client=1024) as gw:
            path = f"/v1/{model.repo_id}/{model.revision}/Redirect-Model/model.safetensors"
            script = f"""
request = function()
  return wrk.format("GET", "{path}", {{["Range"] = "bytes=0-65535"}})
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.bytes, summary.requests, summary.duration,
    latency:percentile(99), summary.errors.status))
end
"""
            result = wrk(gw.url, script)
            redirects = gw.gateway.metrics.redirects["cdn"]
    ok = result["req_s"] >= RPS_TARGET and result["p99_ms"] < P99_TARGET_MS
    print(f"redirect mode, {CONNECTIONS} connections: {result['req_s']:.0f} req/s, p99 {result['p99_ms']:.1f} ms "
          f"(target >= {RPS_TARGET} req/s, p99 < {P99_TARGET_MS} ms) {'OK' if ok else 'MISSED'}; "
          f"{redirects} redirects to the CDN")
    return result


def bench_flaky_cdn(tmp: Path, timeout: float = 30) -> dict:
    sizes = FLAKY_SIZES
    files = make_files(sizes, seed=4)
    results = {}
    with EverySeventhCdn500() as hub:  # the counter restarts for each run
        model = make_model(hub, tmp / "flaky", "Bench/Flaky-Model", files, piece_length=1 << 20)
        for mode in ("redirect", "mirror"):
            for client, download in (("libtorrent", libtorrent_download), ("aria2c", aria2c_download)):
                dest = tmp / f"flaky-{mode}-{client}"
                hub.cdn_requests = 0
                with start_gateway(model, mode, hub, cache=tmp / f"flaky-cache-{mode}-{client}") as gw:
                    try:
                        seconds = download(model.torrent_bytes(gw.url), dest, timeout=timeout)
                        ok = downloaded(dest, model) == files
                        outcome = f"{seconds:.1f} s" + ("" if ok else " (WRONG BYTES)")
                    except (TimeoutError, subprocess.TimeoutExpired, RuntimeError) as exc:
                        outcome = f"did not finish in {timeout:.0f} s ({str(exc).splitlines()[0][:80]})"
                    retries = gw.gateway.metrics.upstream_retries
                errors = (hub.cdn_requests + 5) // 7
                results[(mode, client)] = outcome
                print(f"{sum(sizes.values()) / 1e6:.0f} MB torrent, CDN 500 every 7th request, {mode} mode, "
                      f"{client}: {outcome}; {hub.cdn_requests} CDN requests, {errors} answered 500, "
                      f"gateway retries {retries}")
    return results


def bench_libtorrent_defaults(tmp: Path, timeout: float = 90) -> dict:
    """libtorrent with its default urlseed_wait_retry (30 s), no faults: what redirects cost it."""
    files = make_files(FLAKY_SIZES, seed=4)
    results = {}
    with FakeHub() as hub:
        model = make_model(hub, tmp / "defaults", "Bench/Default-Model", files, piece_length=1 << 20)
        for mode in ("redirect", "mirror"):
            dest = tmp / f"defaults-{mode}"
            with start_gateway(model, mode, hub, cache=tmp / f"defaults-cache-{mode}") as gw:
                seconds = libtorrent_download(model.torrent_bytes(gw.url), dest, timeout=timeout, wait_retry=30)
            assert downloaded(dest, model) == files
            results[mode] = seconds
            print(f"{sum(FLAKY_SIZES.values()) / 1e6:.0f} MB torrent, no faults, libtorrent with urlseed_wait_retry "
                  f"30 s, {mode} mode: {seconds:.1f} s")
    return results


_HUB_PROCESS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from fakehub import FakeHub, Generated
sizes = json.loads(sys.argv[2])
hub = FakeHub().start()
repo = hub.add_repo("Bench/Fill-Model", {p: Generated(n, seed=k) for k, (p, n) in enumerate(sorted(sizes.items()))})
for entry in repo.files.values():
    entry.sha256()
print(json.dumps({"endpoint": hub.endpoint, "cdn_endpoint": hub.cdn_endpoint, "sha": repo.sha}), flush=True)
sys.stdin.read()
"""


def bench_fill(tmp: Path, rounds: int = 3) -> dict:
    """The mirror's fill speed against single-core SHA-1 of the same bytes, alternating, medians.

    The hub runs in its own process (as Hugging Face would be elsewhere), serving ``Generated`` files;
    the gateway fills its cache in this one, as ``modelreg mirror`` does (``Fetcher.ensure`` of every
    piece). The time stops when every piece is verified and written (servable), and again after the
    final fsync; the reference hashes the torrent's byte stream (pad files included) in 1 MiB pieces.
    What bounds the fill is measured in the same rounds: the bare upstream stream (the same runs of
    8 MiB, 8 at once, bytes dropped), ``pwrite`` of the same bytes into a new file, the CPU seconds the
    fill costs this process and the hub, and how busy the whole machine was meanwhile (other jobs).
    The CPU seconds of the parts no fill avoids (the hub's send and the receive, both from the bare
    stream, SHA-1, the fresh ``pwrite``) add up to a floor: the ratio cannot pass SHA-1's CPU seconds
    over the floor spread across the machine's cores, however well the fill overlaps them.
    """
    import hashlib
    import json
    import types

    from fakehub import Generated
    from webseed_harness import Model

    from modelreg.torrent.create import LocalSource, create_torrent
    from modelreg.torrent.metainfo import Torrent

    pl = 1 << 20
    names = sorted(FILL_SIZES)
    content = {p: Generated(FILL_SIZES[p], seed=k) for k, p in enumerate(names)}
    source = tmp / "fill-source" / "Fill-Model"
    source.mkdir(parents=True)
    for path, data in content.items():
        with open(source / path, "wb") as f:
            for chunk in data.chunks():
                f.write(chunk)
    torrent = Torrent.from_bytes(create_torrent(LocalSource.open(source), piece_length=pl, mode="hybrid"))
    stream = b"".join(content[p].read() + bytes(-FILL_SIZES[p] % pl if p != names[-1] else 0) for p in names)
    shutil.rmtree(tmp / "fill-source")
    total = sum(FILL_SIZES.values())
    hub_proc = subprocess.Popen([sys.executable, "-c", _HUB_PROCESS, str(ROOT / "tests"), json.dumps(FILL_SIZES)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    fills, flushes, hashes, writes, bares = [], [], [], [], []
    cpu = {"fill": [], "hub": [], "machine": [], "sha1": [], "write": [], "bare": [], "bare_hub": []}
    try:
        info = json.loads(hub_proc.stdout.readline())
        hub = types.SimpleNamespace(endpoint=info["endpoint"], cdn_endpoint=info["cdn_endpoint"])
        model = Model("Bench/Fill-Model", info["sha"], {}, torrent)
        for k in range(rounds):
            started, cpu0 = time.perf_counter(), time.process_time()
            for i in range(0, len(stream), pl):
                hashlib.sha1(memoryview(stream)[i : i + pl]).digest()
            hashes.append(time.perf_counter() - started)
            cpu["sha1"].append(time.process_time() - cpu0)
            cpu0 = time.process_time()
            writes.append(_write_fresh(tmp / f"fresh-{k}", stream, pl))
            cpu["write"].append(time.process_time() - cpu0)
            with start_gateway(model, "mirror", hub, cache=tmp / f"fill-cache-{k}") as gw:
                store = gw.call(_store_of(gw.gateway, model))
                before = (time.process_time(), _cpu_of(hub_proc.pid), _machine_busy())
                started = time.perf_counter()
                gw.call(gw.gateway.fetcher.ensure(store, range(store.map.num_pieces)))
                fills.append(time.perf_counter() - started)
                after = (time.process_time(), _cpu_of(hub_proc.pid), _machine_busy())
                for key, a, b in zip(("fill", "hub", "machine"), before, after, strict=True):
                    cpu[key].append(b - a)
                gw.call(store.flush())
                flushes.append(time.perf_counter() - started)
                assert store.stored_bytes == total and gw.gateway.metrics.pieces_corrupt == 0
                started, cpu0, hub0 = time.perf_counter(), time.process_time(), _cpu_of(hub_proc.pid)
                gw.call(_bare_stream(gw.gateway.fetcher.upstream, model.served))
                bares.append(time.perf_counter() - started)
                cpu["bare"].append(time.process_time() - cpu0)
                cpu["bare_hub"].append(_cpu_of(hub_proc.pid) - hub0)
            shutil.rmtree(tmp / f"fill-cache-{k}")
    finally:
        hub_proc.stdin.close()
        hub_proc.wait(10)
    fill, flush, sha1, write, bare = (sorted(v)[len(v) // 2] for v in (fills, flushes, hashes, writes, bares))
    med = {key: sorted(v)[len(v) // 2] for key, v in cpu.items()}
    ratio = sha1 / fill
    # What no fill avoids, in CPU seconds: the hub sending, receiving (the bare stream), SHA-1, writing new pages.
    floor = med["bare_hub"] + med["bare"] + med["sha1"] + med["write"]
    print("  fill: " + ", ".join(f"{total / t / 1e9:.2f}" for t in fills) + " GB/s; sha1: "
          + ", ".join(f"{len(stream) / t / 1e9:.2f}" for t in hashes) + " GB/s; fresh pwrite: "
          + ", ".join(f"{len(stream) / t / 1e9:.2f}" for t in writes) + " GB/s; bare upstream stream: "
          + ", ".join(f"{total / t / 1e9:.2f}" for t in bares) + " GB/s")
    print(f"  CPU seconds (medians): fill {med['fill']:.2f} in this process + {med['hub']:.2f} in the hub, "
          f"SHA-1 alone {med['sha1']:.2f}; whole machine busy {med['machine']:.2f} CPU-s during the fill "
          f"({med['machine'] / fill:.2f} of 2 cores)")
    print(f"  floor: hub sending {med['bare_hub']:.2f} + receiving (bare stream) {med['bare']:.2f} + SHA-1 "
          f"{med['sha1']:.2f} + writing new pages {med['write']:.2f} = {floor:.2f} CPU-s; spread perfectly over "
          f"{os.cpu_count()} cores, the ratio could not pass {med['sha1'] / (floor / (os.cpu_count() or 1)):.2f}")
    print(f"mirror fill, {total / 1e6:.0f} MB, 1 MiB pieces: {total / fill / 1e9:.2f} GB/s verified and stored "
          f"({total / flush / 1e9:.2f} GB/s with the final fsync), SHA-1 alone on one core "
          f"{len(stream) / sha1 / 1e9:.2f} GB/s; ratio {ratio:.2f} (target >= {FILL_TARGET}) "
          f"{'OK' if ratio >= FILL_TARGET else 'MISSED'}; writing the same bytes to a new file alone "
          f"{len(stream) / write / 1e9:.2f} GB/s (fill / write {write / fill:.2f}); the bare upstream stream "
          f"{total / bare / 1e9:.2f} GB/s")
    return {"fill_s": fill, "flush_s": flush, "sha1_s": sha1, "write_s": write, "bare_s": bare, "ratio": ratio,
            "cpu_s": med, "floor_cpu_s": floor}


async def _bare_stream(upstream, served, run: int = 8 << 20, parallel: int = 8) -> None:
    """Read every file from the hub in the fill's runs (8 MiB, 8 at once), dropping the bytes."""
    import asyncio

    gate = asyncio.Semaphore(parallel)

    async def one(path: str, start: int, end: int) -> None:
        async with gate:
            async for _ in upstream.iter_range(served, path, start, end):
                pass

    await asyncio.gather(*(one(path, a, min(size, a + run)) for path, size in FILL_SIZES.items()
                           for a in range(0, size, run)))


def _cpu_of(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _machine_busy() -> float:
    """CPU seconds all cores spent not idle so far (every process on the machine)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def _write_fresh(path: Path, data: bytes, step: int) -> float:
    """Seconds to pwrite ``data`` into a new file (page cache, no fsync): the floor of any fill."""
    view = memoryview(data)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, len(data))
        started = time.perf_counter()
        for i in range(0, len(data), step):
            os.pwrite(fd, view[i : i + step], i)
        return time.perf_counter() - started
    finally:
        os.close(fd)
        os.unlink(path)


async def _store_of(gateway, model):
    return gateway.cache.store(model.served)


def main() -> dict:
    missing = [tool for tool in ("wrk", "nginx", "aria2c") if shutil.which(tool) is None]
    if missing:
        print(f"bench_webseed: {', '.join(missing)} not installed; skipped")
        return {}
    with tempfile.TemporaryDirectory(prefix="bench-webseed-") as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o755)  # nginx's worker (nobody) reads the cached files below it
        return {
            "fill": bench_fill(tmp),
            "serving": bench_serving(tmp),
            "redirect": bench_redirect(tmp),
            "flaky": bench_flaky_cdn(tmp),
            "libtorrent_defaults": bench_libtorrent_defaults(tmp),
        }


if __name__ == "__main__":
    main()
