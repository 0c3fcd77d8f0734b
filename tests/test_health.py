"""modelreg health on loopback: real trackers' scrapes (HTTP and UDP) of a swarm of two libtorrent sessions,
trackers that answer garbage or nothing, web seeds that answer, lie about the length, refuse or redirect,
and the site and API built from what was recorded."""

from __future__ import annotations

import json
import time
from pathlib import Path

import libtorrent as lt
import pytest

from modelreg.cli import main
from modelreg.config import Config
from modelreg.health.check import HealthSettings, check_health
from modelreg.registry.catalog import load_catalog
from modelreg.registry.health import HealthStore
from modelreg.site.build import build_site
from tests.ltutil import make_torrent
from tests.trackers import HttpTracker, UdpTracker, WebseedServer

FILES = {"alive/config.json": b'{"a": 1}\n' * 50, "alive/model.safetensors": bytes(range(256)) * 400}
LONELY = {"lonely/weights.bin": b"\x07" * 5000}
AT = "2026-11-29T12:00:00Z"
LATER = "2026-11-29T18:00:00Z"


def _session(**extra) -> lt.session:
    settings = {"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False, "enable_upnp": False,
                "enable_natpmp": False, "announce_to_all_trackers": True, "announce_to_all_tiers": True,
                "allow_multiple_connections_per_ip": True, "alert_mask": 0, "stop_tracker_timeout": 1}
    settings.update(extra)
    return lt.session(settings)


def _add(ses: lt.session, data: bytes, save: Path, seed: bool) -> lt.torrent_handle:
    """Add the torrent as a seed, or as a leecher that stays one (upload mode: it downloads nothing)."""
    atp = lt.add_torrent_params()
    atp.ti = lt.torrent_info(data)
    atp.save_path = str(save)
    atp.flags |= lt.torrent_flags.seed_mode if seed else lt.torrent_flags.upload_mode
    return ses.add_torrent(atp)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Four trackers, a web-seed server, a registry of two torrents and a seeder and a leecher of the first."""
    tmp = tmp_path_factory.mktemp("health")
    registry = tmp / "registry"
    served = {**FILES, **LONELY}
    with HttpTracker() as http, UdpTracker() as udp, HttpTracker("garbage") as junk, UdpTracker("silent") as mute, \
            HttpTracker("silent") as slow, UdpTracker("garbage") as noise, WebseedServer(served) as web:
        trackers = [http.announce_url, udp.announce_url, junk.announce_url, mute.announce_url, slow.announce_url,
                    noise.announce_url]
        alive = make_torrent(tmp / "src", FILES, webseeds=tuple(web.url(k) for k in ("good", "wrong", "refuse", "moved")),
                             trackers=tuple((url, tier) for tier, url in enumerate(trackers)))
        lonely = make_torrent(tmp / "src", LONELY, webseeds=(web.url("refuse"),),
                              trackers=((http.announce_url, 0), (udp.announce_url, 1)))
        for name, data in (("alive", alive), ("lonely", lonely)):
            (registry / "org" / name).mkdir(parents=True)
            (registry / "org" / name / f"{name}.torrent").write_bytes(data)
        hashes = lt.torrent_info(alive).info_hashes()
        v1, v2 = hashes.v1.to_bytes(), hashes.v2.to_bytes()[:20]
        seeder, leecher = _session(), _session()
        _add(seeder, alive, tmp / "src", seed=True)
        _add(leecher, alive, tmp / "leech", seed=False)
        deadline = time.monotonic() + 30
        while any(t.counts(h)[:2] != (1, 1) for t in (http, udp) for h in (v1, v2)):
            assert time.monotonic() < deadline, f"the swarm did not reach the trackers: {http.swarms} {udp.swarms}"
            time.sleep(0.1)
        yield {"registry": registry, "http": http, "udp": udp, "junk": junk, "mute": mute, "slow": slow,
               "noise": noise, "web": web,
               "v1": v1, "v2": v2, "tmp": tmp}
        del seeder, leecher


def _check(registry: Path, at: str) -> None:
    models = load_catalog(registry).models
    check_health(models, HealthStore.for_registry(registry), HealthSettings(timeout=1.0, dht=None, now=lambda: at))


@pytest.fixture(scope="module")
def checked(world):
    _check(world["registry"], AT)
    store = HealthStore.for_registry(world["registry"])
    return {name: store.load(f"org/{name}", None).data for name in ("alive", "lonely")}


def test_trackers_counts_and_failures(world, checked):
    alive, lonely = checked["alive"], checked["lonely"]
    swarm = {"complete": 1, "incomplete": 1, "downloaded": 0}
    for tracker in (world["http"], world["udp"]):
        entry = alive["trackers"][tracker.announce_url]
        assert entry == {"v1": swarm, "v2": swarm, "checked_at": AT, "failure": None}
        empty = {"complete": 0, "incomplete": 0, "downloaded": 0}
        assert lonely["trackers"][tracker.announce_url] == {"v1": empty, "v2": empty, "checked_at": AT,
                                                            "failure": None}
    junk = alive["trackers"][world["junk"].announce_url]
    assert junk["failure"]["reason"] == "bad-response" and junk["v1"] is None and junk["checked_at"] is None
    mute = alive["trackers"][world["mute"].announce_url]
    assert mute["failure"]["reason"] == "timeout" and mute["failure"]["at"] == AT
    assert alive["trackers"][world["slow"].announce_url]["failure"]["reason"] == "timeout"
    assert alive["trackers"][world["noise"].announce_url]["failure"]["reason"] == "bad-response"
    # both torrents' four infohashes went in one scrape request per tracker
    assert world["http"].scrapes == 1


def test_webseed_states(world, checked):
    web = {url.split("/")[3]: entry for url, entry in checked["alive"]["webseeds"].items()}
    assert web["good"]["ok"] and web["good"]["status"] == 206 and web["good"]["length_ok"]
    assert web["moved"]["ok"] and web["moved"]["status"] == 206  # the redirect's target has the right length
    assert not web["wrong"]["ok"] and web["wrong"]["length_ok"] is False and "bytes" in web["wrong"]["error"]
    assert not web["refuse"]["ok"] and web["refuse"]["status"] == 403 and web["refuse"]["failing_since"] == AT
    assert all(w["failing_since"] is None for w in (web["good"], web["moved"]))
    assert "/good/alive/config.json" in world["web"].requests
    lonely = HealthStore.for_registry(world["registry"]).load("org/lonely", None).summary()
    assert lonely["webseed_ok"] is False and lonely["webseed_failing_since"] == AT


def test_summary_picks_best_source(world, checked):
    summary = HealthStore.for_registry(world["registry"]).load("org/alive", None).summary()
    assert (summary["seeders"], summary["leechers"], summary["downloaded"]) == (1, 1, 0)
    assert summary["source"] in (world["http"].announce_url, world["udp"].announce_url)
    assert summary["webseed_ok"] is True and summary["checked_at"] == AT
    assert {s["source"] for s in summary["sources"] if s["failure"]} == {
        world[k].announce_url for k in ("junk", "mute", "slow", "noise")}


def test_failed_check_keeps_previous_result(world, checked, tmp_path):
    """A second run where the HTTP tracker is gone: its figures stay, with the failure beside them."""
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / "org").symlink_to(world["registry"] / "org")
    store = HealthStore.for_registry(registry)
    store.store(dict(checked["alive"], trackers={"http://127.0.0.1:9/announce": {
        "v1": {"complete": 7, "incomplete": 2, "downloaded": 30}, "v2": None, "checked_at": AT, "failure": None}}))
    models = [m for m in load_catalog(registry).models if m.name == "alive"]
    settings = HealthSettings(timeout=1.0, dht=None, now=lambda: LATER, trackers=("http://127.0.0.1:9/announce",))
    report = check_health(models, store, settings)
    data = store.load("org/alive", None).data
    gone = data["trackers"]["http://127.0.0.1:9/announce"]
    assert gone["v1"] == {"complete": 7, "incomplete": 2, "downloaded": 30} and gone["checked_at"] == AT
    assert gone["failure"]["at"] == LATER and gone["failure"]["reason"] == "unreachable"
    assert data["trackers"][world["udp"].announce_url]["checked_at"] == LATER
    refuse = next(w for u, w in data["webseeds"].items() if "/refuse/" in u)
    assert refuse["failing_since"] == AT and refuse["checked_at"] == LATER  # failing since the first failure
    assert any(src == "http://127.0.0.1:9/announce" for _, src, _ in report.failures)
    summary = store.load("org/alive", None).summary()
    assert summary["seeders"] == 7 and summary["source"] == "http://127.0.0.1:9/announce"


def test_command_and_site(world, checked, tmp_path, capsys):
    registry = world["registry"]
    assert main(["health", "--registry", str(registry), "--no-dht", "--timeout", "1", "--only", "org/lonely"]) == 0
    assert "checked 1 models" in capsys.readouterr().out
    assert main(["health", "--registry", str(registry), "--jobs", "0"]) == 1
    assert main(["health", "--registry", str(registry), "--only", "org/nothere", "--no-dht"]) == 1
    out = tmp_path / "site"
    build_site(Config(registry=str(registry), out=str(out)))
    records = {r["id"]: r for r in json.loads((out / "api/models.json").read_text())}
    health = records["org/alive"]["health"]
    assert (health["seeders"], health["leechers"], health["webseed_ok"]) == (1, 1, True)
    assert records["org/lonely"]["health"]["webseed_ok"] is False
    page = (out / "models/org/alive/index.html").read_text()
    assert 'id="h-health"' in page and f'datetime="{AT}"' in page and "1 seeder" in page
    row = (out / "index.html").read_text()
    assert "1 seeder" in row


def test_damaged_health_file_is_the_models_problem(tmp_path, world):
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / "org").symlink_to(world["registry"] / "org")
    bad = HealthStore.for_registry(registry).path("org/alive", None)
    bad.parent.mkdir(parents=True)
    bad.write_text('{"format": 1, "repo_id": "org/alive", "checked_at": 5}')
    out = tmp_path / "site"
    report = build_site(Config(registry=str(registry), out=str(out)))
    assert any(repo == "org/alive" and "health" in problem for repo, problem in report.model_problems)
    records = {r["id"]: r for r in json.loads((out / "api/models.json").read_text())}
    assert records["org/alive"]["health"] is None


def test_model_page_and_row_in_chromium(world, checked, tmp_path, browser):
    """A visitor sees the seeders and leechers with their source, the web-seed badge, and "checked 3 h ago"
    written by the page's script from the date in the HTML (the browser's clock set 3 h after the check)."""
    import datetime as dt

    from loopback import serve_folder

    out = tmp_path / "site"
    build_site(Config(registry=str(world["registry"]), out=str(out), base_url="/sub/"))
    (tmp_path / "sub").symlink_to(out)
    server = serve_folder(tmp_path).start()
    base = f"{server.url}sub/"
    three_hours_later = dt.datetime(2026, 11, 29, 15, 0, tzinfo=dt.UTC)
    context = browser.new_context()
    try:
        context.clock.set_fixed_time(three_hours_later)
        page = context.new_page()
        page.goto(base + "models/org/alive/")
        panel = page.locator("#health")
        assert panel.locator(".health-line .seeders").inner_text() == "1 seeder"
        assert panel.locator(".health-line .leechers").inner_text() == "1 leecher"
        assert panel.locator(".health-line time[data-ago]").inner_text() == "checked 3 h ago"
        assert panel.locator(".health-line .badge.ok").inner_text() == "web seed answers"
        failed = panel.locator("tr.failed code").all_inner_texts()
        assert sorted(failed) == sorted(world[k].announce_url for k in ("junk", "mute", "slow", "noise"))
        assert panel.locator(".health-webseeds .badge.bad").count() == 2  # wrong length, refused
        page.goto(base + "models/org/lonely/")
        assert "web seed failing since" in page.locator("#health .health-line").inner_text()
        page.goto(base)
        row = page.locator("li[data-model-id='org/alive'] .r-health")
        assert row.locator(".seeders").inner_text() == "1 seeder"
        assert row.locator("time[data-ago]").inner_text() == "checked 3 h ago"
    finally:
        context.close()
        server.stop()


def test_a_changed_health_file_rerenders_its_model_only(world, checked, tmp_path):
    registry = tmp_path / "registry"
    registry.mkdir()
    (registry / "org").symlink_to(world["registry"] / "org")
    store = HealthStore.for_registry(registry)
    for name in ("alive", "lonely"):
        store.store(checked[name])
    config = Config(registry=str(registry), out=str(tmp_path / "site"))
    build_site(config)
    assert build_site(config).rendered == 0
    store.store(dict(checked["alive"], checked_at=LATER))
    again = build_site(config)
    assert (again.rendered, again.reused) == (1, 1)
    assert f'datetime="{LATER}"' in (tmp_path / "site/models/org/alive/index.html").read_text()
