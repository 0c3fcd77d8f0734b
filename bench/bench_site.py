"""Benchmark the site on a synthetic registry (bench/synth.py) at 10,000 or 100,000 models, against Pagefind.

    python bench/bench_site.py [--count 10000] [--work .bench/site-N] [--keep] [--no-pagefind]

Prints each row of issue 13's table, measured in this run: the first page's bytes (raw and gzip), the
search index, the API, page ready and search times in headless Chromium on loopback, full build, rebuild
with nothing changed and after one torrent changed, twice (time and peak RSS, each build in its own process).
Bytes a visitor downloads come from Chromium's network log (playwright's request sizes: headers and
body as sent by a server that gzips like GitHub Pages does). Then the same registry's model pages are
indexed by Pagefind (``pip install 'pagefind[extended]'``) and searched for the same queries through its
JS API, loading the first 50 results as the site shows 50 rows. A reference measured in the same run:
parsing every torrent once, which no build can avoid.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gzip
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from synth import CORPUS, generate  # noqa: E402

from modelreg.fsutil import versions_dir  # noqa: E402
from modelreg.torrent import bencode as bencoding  # noqa: E402
from modelreg.torrent.metainfo import Torrent  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]
#: Typical searches: (query string parameters, as typed by a visitor). The last ones are the costliest a
#: visitor commonly makes: a whole-registry sort and several filters at once.
QUERIES = [{"q": "qwen"}, {"q": "llama gguf"}, {"q": "instruct"}, {"q": "whisper onnx"}, {"q": "Qwen3.8-27B"},
           {"q": "mistral", "sort": "size"}, {"format": "GGUF", "min": "5"}, {"sort": "size"}, {"sort": "newest"},
           {"q": "instruct", "format": "safetensors", "min": "1", "max": "20", "sort": "newest"}]
TYPED = "qwen3 instruct"
BUILD = """
import json, sys, time
from modelreg.config import Config
from modelreg.site.build import build_site
start = time.perf_counter()
report = build_site(Config().replace(registry=sys.argv[1], out=sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - start, "rendered": report.rendered, "reused": report.reused,
                  "site_bytes": report.site_bytes}))
"""


def build(registry: Path, out: Path, cache: Path) -> dict:
    """One build in its own process: its report, wall time and peak RSS (from wait4)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), MODELREG_CACHE_DIR=str(cache))
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", BUILD, str(registry), str(out)], env=env, stdout=subprocess.PIPE)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"build failed ({status})")
    result = json.loads(output)
    # the build's own CPU time and its workers' (each waited for by the build): wall time alone is at the
    # mercy of the disk and of what the page cache kept
    result.update(wall=time.perf_counter() - start, rss_mb=usage.ru_maxrss / 1024,
                  cpu=f"{usage.ru_utime:.1f} s user, {usage.ru_stime:.1f} s system")
    return result


def settle(out: Path) -> float:
    """Wait until the old versions of the site that the last build left to a background process (renamed
    ``.trash-*``) are deleted, so that the next build is timed alone; the seconds waited, printed beside
    the builds (the deletion is the last build's cost, not the next one's)."""
    start = time.perf_counter()
    while any(versions_dir(out).glob(".trash-*")):
        time.sleep(0.5)
    return time.perf_counter() - start


def page_cache_reclaim() -> str:
    """What reclaims this machine's idle page cache behind the builds' backs, if anything: a DAMON scheme
    that pages out memory idle for a while (this machine has one: a registry read a minute ago is read
    from disk again)."""
    found = []
    for scheme in sorted(Path("/sys/kernel/mm/damon/admin/kdamonds").glob("*/contexts/*/schemes/*")):
        try:
            if (scheme.parent.parent.parent.parent / "state").read_text().strip() != "on":
                continue
            action = (scheme / "action").read_text().strip()
            age = int((scheme / "access_pattern/age/min").read_text())
            attrs = scheme.parent.parent / "monitoring_attrs/intervals/aggr_us"
            seconds = age * int(attrs.read_text()) / 1e6
            limit = int((scheme / "quotas/bytes").read_text()) / 1e6
            window = int((scheme / "quotas/reset_interval_ms").read_text()) / 1e3
        except (OSError, ValueError):
            continue
        found.append(f"DAMON {action} of memory idle {seconds:.0f} s, up to {limit:.0f} MB per {window:g} s")
    return "; ".join(found) or "none seen"


def touch_one(registry: Path) -> Path:
    """Change one torrent's bytes (its creation date), as a re-made torrent would: a new file renamed
    over the old one, as git and editors do, so a hard-linked copy of the registry is left as it was."""
    path = sorted(registry.rglob("*.torrent"))[len(list(registry.iterdir())) // 2]
    top = bencoding.decode(path.read_bytes())
    top[b"creation date"] = top.get(b"creation date", 0) + 1
    fresh = path.with_name(path.name + ".new")
    fresh.write_bytes(bencoding.encode(top))
    os.replace(fresh, path)
    return path


#: The folder name suffix of the model :func:`add_one` adds (removed again by the next run).
ADDED = "-bench-added"


def add_one(registry: Path) -> Path:
    """Add one model in the middle of the name order (a copy of a torrent under a new id, named by its
    sidecar), as ``modelreg add`` would: every document after it moves one place in the search index."""
    path = sorted(registry.rglob("*.torrent"))[len(list(registry.iterdir())) // 3]
    folder = path.parent.with_name(path.parent.name + ADDED)
    folder.mkdir()
    top = bencoding.decode(path.read_bytes())
    top[b"info"][b"name"] += ADDED.encode()  # another info hash: not a duplicate of the model copied
    (folder / path.name).write_bytes(bencoding.encode(top))
    org = path.parent.parent.name
    (folder / path.name).with_suffix(".json").write_text(json.dumps({"repo_id": f"{org}/{folder.name}"}))
    return folder


def remove_added(registry: Path) -> None:
    """Remove what :func:`add_one` added."""
    for folder in registry.glob(f"*/*{ADDED}"):
        shutil.rmtree(folder)


class _Gzipping(SimpleHTTPRequestHandler):
    """Serves files gzipped (level 6, as static hosts do) when the client accepts it."""

    cache: dict[str, bytes] = {}

    def log_message(self, *args) -> None:
        pass

    def send_head(self):  # noqa: ANN201 - the base class's interface
        path = self.translate_path(self.path)
        if os.path.isdir(path):
            path = os.path.join(path, "index.html")
        if "gzip" not in self.headers.get("Accept-Encoding", "") or not os.path.isfile(path):
            return super().send_head()
        data = self.cache.get(path)
        if data is None:
            with open(path, "rb") as f:
                data = self.cache[path] = gzip.compress(f.read(), 6)
        self.send_response(200)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        return io.BytesIO(data)


class Server:
    def __init__(self, site: Path):
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Gzipping, directory=str(site)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.thread.join(5)


class Meter:
    """Bytes received by a page, from Chromium's network log (headers + encoded body per request)."""

    def __init__(self, page):
        self.bytes = self.requests = 0
        page.on("requestfinished", self._done)

    def _done(self, request) -> None:
        try:
            sizes = request.sizes()
        except Exception:  # noqa: BLE001 - the page closed while the request was being logged
            return
        self.bytes += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        self.requests += 1

    def take(self) -> tuple[int, int]:
        got = self.bytes, self.requests
        self.bytes = self.requests = 0
        return got


SET_STATE = """async params => {
    const form = document.getElementById('filters');
    for (const [k, v] of Object.entries(params)) form.elements[k].value = v;
    const t0 = performance.now();
    const n = await window.modelregSearch.apply();
    document.body.offsetHeight;
    const t1 = performance.now();
    if (window.modelregSearch.rendered) await window.modelregSearch.rendered();  // rows below the first screen
    document.body.offsetHeight;
    return [t1 - t0, n, performance.now() - t0];
}"""


def quiet(page, meter: Meter) -> None:
    """Wait until the network log has reported every finished request (its events come after the page's
    promises resolve; ``wait_for_load_state("networkidle")`` returns at once once the page reached it)."""
    last = -1
    while meter.requests != last:
        last = meter.requests
        page.wait_for_timeout(300)


def ours(browser, url: str) -> dict:
    results: dict = {}
    context = browser.new_context()
    page = context.new_page()
    meter = Meter(page)
    start = time.perf_counter()
    page.goto(url)
    page.wait_for_selector("html[data-search-ready]", state="attached", timeout=120_000)
    results["page ready"] = time.perf_counter() - start
    page.wait_for_load_state("networkidle")
    quiet(page, meter)
    results["first load bytes"], results["first load requests"] = meter.take()
    per_query, first_times = [], []
    for params in QUERIES:  # each in a fresh page of a fresh context: a cold cache, as a first visit
        ctx = browser.new_context()
        pg = ctx.new_page()
        m = Meter(pg)
        pg.goto(url)
        pg.wait_for_selector("html[data-search-ready]", state="attached")
        pg.wait_for_load_state("networkidle")
        quiet(pg, m)
        m.take()
        ms, _, _ = pg.evaluate(SET_STATE, params)
        quiet(pg, m)
        per_query.append(m.take()[0])
        first_times.append(ms / 1000)
        ctx.close()
    typed = [page.evaluate(SET_STATE, {"q": TYPED[:k]}) for k in range(1, len(TYPED) + 1)]
    results.update(query_results(per_query, first_times, [t[0] / 1000 for t in typed]))
    results["keystroke, all rows (median)"] = statistics.median(t[2] / 1000 for t in typed)
    context.close()
    return results


def query_results(per_query: list[int], first_times: list[float], keystrokes: list[float]) -> dict:
    """The search rows of the table, the same for ours and Pagefind's: bytes a cold query fetches, its time,
    and the time of each keystroke of :data:`TYPED` in a warm page."""
    return {
        "query bytes (median)": statistics.median(per_query),
        "query bytes (max)": max(per_query),
        "first search (median)": statistics.median(first_times),
        "keystroke (median)": statistics.median(keystrokes),
        "keystroke (max)": max(keystrokes),
    }


PAGEFIND_QUERY = """async q => {
    const t0 = performance.now();
    const search = await window.pf.search(q);
    await Promise.all(search.results.slice(0, 50).map(r => r.data()));
    return [performance.now() - t0, search.results.length];
}"""


def pagefind(browser, site: Path, url: str) -> dict:
    start = time.perf_counter()
    peak = run_capped([sys.executable, "-m", "pagefind", "--site", str(site), "--glob", "models/**/index.html",
                       "--output-subdir", "pagefind", "--quiet"])
    results = {"build (index only)": time.perf_counter() - start, "build peak RSS MB": peak / 1e6}
    if not (site / "pagefind" / "pagefind.js").is_file():
        print(f"Pagefind stopped: its RSS passed {PAGEFIND_CAP / 1e9:.0f} GB after "
              f"{results['build (index only)']:.0f} s (the machine is shared)", flush=True)
        return results
    results["index size MB"] = sum(p.stat().st_size for p in (site / "pagefind").rglob("*") if p.is_file()) / 1e6
    per_query, first_times = [], []
    init = "async () => { window.pf = await import('/pagefind/pagefind.js'); await window.pf.init(); }"
    for params in QUERIES:
        if "q" not in params:
            continue  # facets of ours have no Pagefind counterpart without extra markup
        ctx = browser.new_context()
        pg = ctx.new_page()
        m = Meter(pg)
        pg.goto(url + "api/")
        pg.evaluate(init)
        pg.wait_for_load_state("networkidle")
        m.take()
        ms, _ = pg.evaluate(PAGEFIND_QUERY, params["q"])
        per_query.append(m.take()[0])
        first_times.append(ms / 1000)
        ctx.close()
    ctx = browser.new_context()
    pg = ctx.new_page()
    pg.goto(url + "api/")
    pg.evaluate(init)
    times = [pg.evaluate(PAGEFIND_QUERY, TYPED[:k])[0] / 1000 for k in range(1, len(TYPED) + 1)]
    results.update(query_results(per_query, first_times, times))
    ctx.close()
    return results


#: Pagefind is stopped when its resident memory passes this (at 100,000 pages it grew past 20 GB).
PAGEFIND_CAP = 4e9


def run_capped(command: list[str]) -> int:
    """Run a command, killing it if its RSS passes ``PAGEFIND_CAP``; return the peak RSS seen (bytes)."""
    proc = subprocess.Popen(command)
    peak = 0
    while proc.poll() is None:
        rss = 0
        for pid in [proc.pid, *_children(proc.pid)]:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                rss += int(status.split("VmRSS:")[1].split()[0]) * 1024
            except (OSError, IndexError):
                pass
        peak = max(peak, rss)
        if rss > PAGEFIND_CAP:
            for pid in _children(proc.pid):
                with contextlib.suppress(OSError):
                    os.kill(pid, 9)
            proc.kill()
        time.sleep(0.2)
    return peak


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def gz(path: Path) -> int:
    return len(gzip.compress(path.read_bytes(), 6))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--work", type=Path)
    parser.add_argument("--keep", action="store_true", help="reuse a registry generated by an earlier run")
    parser.add_argument("--no-pagefind", action="store_true")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--corpus", type=Path, default=CORPUS, help="corpus whose torrents' shapes to copy")
    args = parser.parse_args(argv)
    work = args.work or ROOT / ".bench" / f"site-{args.count}"
    corpus = args.corpus if (args.corpus / "expected.json").is_file() else None
    registry, out, cache = work / "registry", work / "site", work / "cache"
    remove_added(registry)  # left by a run that was stopped
    if not (args.keep and registry.is_dir()):
        shutil.rmtree(work, ignore_errors=True)
        start = time.perf_counter()
        generate(registry, args.count, corpus)
        print(f"generated {args.count} torrents ({'corpus' if corpus else 'built-in'} shapes) "
              f"in {time.perf_counter() - start:.1f} s", flush=True)
    if out.is_symlink():  # the site is a link to its current version: remove them all
        out.unlink()
        shutil.rmtree(versions_dir(out), ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)

    paths = sorted(registry.rglob("*.torrent"))
    start = time.perf_counter()
    for p in paths:
        Torrent.read(p)
    reference = time.perf_counter() - start
    full = build(registry, out, cache)
    assert full["rendered"] == args.count, full
    deleted = [settle(out)]
    same = build(registry, out, cache)
    assert same["reused"] == args.count, same
    deleted.append(settle(out))
    touch_one(registry)
    one = build(registry, out, cache)
    assert (one["rendered"], one["reused"]) == (1, args.count - 1), one
    deleted.append(settle(out))
    # again: one rebuild of a few seconds varies by half a second on a shared machine; two tell more
    touch_one(registry)
    again = build(registry, out, cache)
    assert (again["rendered"], again["reused"]) == (1, args.count - 1), again
    deleted.append(settle(out))
    add_one(registry)
    try:
        added = build(registry, out, cache)
    finally:
        remove_added(registry)
    assert (added["rendered"], added["reused"]) == (1, args.count), added
    deleted.append(settle(out))

    def say(name: str, value: str, goal: str = "") -> None:
        print(f"{name:44} {value:44} {goal}", flush=True)

    print(f"\n{args.count} models, {sum(p.stat().st_size for p in paths) / 1e6:.0f} MB of torrents; "
          f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; page cache reclaim: {page_cache_reclaim()}")
    print(f"{'measure':44} {'measured':44} goal")
    say("reference: parse every torrent", f"{reference:.1f} s")
    say("full build", f"{full['wall']:.1f} s, peak RSS {full['rss_mb']:.0f} MB", "< 180 s, < 1024 MB")
    say("rebuild, nothing changed", f"{same['wall']:.1f} s, peak RSS {same['rss_mb']:.0f} MB")
    say("rebuild, one torrent changed", f"{one['wall']:.2f} s, then {again['wall']:.2f} s; peak RSS "
        f"{max(one['rss_mb'], again['rss_mb']):.0f} MB", "< 5 s")
    say("rebuild, one model added (search index anew)", f"{added['wall']:.1f} s, peak RSS {added['rss_mb']:.0f} MB")
    for name, result in (("full build", full), ("rebuild, nothing changed", same),
                         ("rebuild, one torrent changed", one), ("  then again", again),
                         ("rebuild, one model added", added)):
        say(f"  CPU: {name}", result["cpu"])
    say("  old versions deleted in the background", " / ".join(f"{s:.0f} s" for s in deleted) +
        " after each (waited for before the next)")
    say("index.html", f"{(out / 'index.html').stat().st_size / 1e3:.0f} KB ({gz(out / 'index.html') / 1e3:.0f} KB gzip)")
    say("api/models.json", f"{(out / 'api/models.json').stat().st_size / 1e6:.0f} MB "
                           f"({gz(out / 'api/models.json') / 1e6:.1f} MB gzip)", "complete")
    say("search/ (whole index, never loaded whole)",
        f"{sum(p.stat().st_size for p in (out / 'search').rglob('*') if p.is_file()) / 1e6:.1f} MB in "
        f"{sum(1 for _ in (out / 'search').rglob('*.json'))} files")
    say("site size", f"{one['site_bytes'] / 1e6:.0f} MB", "< 1 GB for Pages")
    if args.no_browser:
        return 0
    from playwright.sync_api import sync_playwright

    goals = {"first load bytes": "< 200 KB gzip", "query bytes (median)": "< 300 KB gzip", "page ready": "< 1 s",
             "keystroke (median)": "< 50 ms"}
    server = Server(out)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            mine = ours(browser, server.url)
            for name, value in mine.items():
                shown = f"{value / 1e3:.0f} KB" if "bytes" in name else (
                    f"{value:.3f} s" if "requests" not in name else str(value))
                say(name, shown, goals.get(name, ""))
            if not args.no_pagefind:
                print(f"\n{'Pagefind vs ours':44} {'Pagefind':>12} {'ours':>12}", flush=True)
                pf = pagefind(browser, out, server.url)
                mine["build (index only)"] = full["wall"]
                mine["build peak RSS MB"] = full["rss_mb"]
                for name, value in pf.items():
                    fmt = (lambda v: f"{v / 1e3:.0f} KB") if "bytes" in name else (lambda v: f"{v:.3f}")
                    print(f"{name:44} {fmt(value):>12} {fmt(mine[name]) if name in mine else '':>12}", flush=True)
            browser.close()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
