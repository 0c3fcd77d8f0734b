"""An adversarial pass over the web-seed gateway over real HTTP on 127.0.0.1: encoding tricks in paths,
odd revisions, every shape of Range, redirects an upstream may try to smuggle out, and a mirror cache
that is raced, abandoned mid-response or damaged on disk."""

from __future__ import annotations

import logging
import socket
import threading
import time
import unicodedata
from urllib.parse import quote

import pytest
from aiohttp import web
from fakehub import fake_hub
from webseed_harness import (
    FAST_RETRY,
    AppThread,
    GatewayThread,
    Model,
    fetch,
    make_files,
    make_model,
    raw_exchange,
    start_gateway,
)

from modelreg.torrent.create import LocalSource, create_torrent
from modelreg.torrent.metainfo import Torrent
from modelreg.webseed import Gateway, GatewaySettings, ServeSet

FILES = {
    "config.json": 1_000,
    "model.safetensors": 300_007,
    "caf\u00e9/notes.txt": 2_000,
}
LFS = "model.safetensors"
SIZE = FILES[LFS]


@pytest.fixture(scope="module")
def hub():
    yield from fake_hub()


@pytest.fixture(scope="module")
def model(hub, tmp_path_factory):
    return make_model(hub, tmp_path_factory.mktemp("m"), "TestOrg/Tiny-Model", make_files(FILES, seed=11))


@pytest.fixture(scope="module")
def redirect_gw(hub, model):
    with start_gateway(model, "redirect", hub) as gw:
        yield gw


@pytest.fixture(scope="module")
def mirror_gw(hub, model, tmp_path_factory):
    with start_gateway(model, "mirror", hub, cache=tmp_path_factory.mktemp("cache")) as gw:
        yield gw


def base(model) -> str:
    return f"/v1/{model.repo_id}/{model.revision}/{model.torrent.name}"


# -- paths ---------------------------------------------------------------------------------------

TRICKS = [
    "/../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/%252e%252e/config.json",
    "/..%5cconfig.json",
    "/%5c..%5cconfig.json",
    "/config.json%00",
    "/config.json%00.png",
    "/./config.json",
    "/config.json/",
    "//config.json",
    "/CONFIG.JSON",
    "/config.json.",
    "/" + "a" * 4000,
    "/" + "/".join(["x"] * 500),
    "/caf%C3%A9/../config.json",
    "/.pad/999",
    "/.pad/-1",
    "/.pad/%2e%2e",
]


@pytest.mark.parametrize("tail", TRICKS)
@pytest.mark.parametrize("gw_name", ["redirect_gw", "mirror_gw"])
def test_path_tricks_name_nothing(tail, gw_name, request, hub, model):
    gw = request.getfixturevalue(gw_name)
    before = len(hub.find_requests(origin="cdn"))
    status, headers, body = fetch(gw, base(model) + tail)
    assert status in (400, 404) and "Location" not in headers, (tail, status)
    assert len(hub.find_requests(origin="cdn")) == before
    assert b"root:" not in body


def test_torrent_name_and_unicode_form_must_match_exactly(redirect_gw, model):
    gw, rev = redirect_gw, model.revision
    assert fetch(gw, f"/v1/{model.repo_id}/{rev}/tiny-model/config.json")[0] == 404
    nfc = "caf\u00e9/notes.txt"
    nfd = unicodedata.normalize("NFD", nfc)
    status, headers, _ = fetch(gw, base(model) + "/" + quote(nfc))
    assert status == 302 and headers["Location"].endswith(quote(nfc))
    assert fetch(gw, base(model) + "/" + quote(nfd))[0] == 404


def test_query_strings_are_ignored_and_org_name_case_does_not_matter(redirect_gw, hub, model):
    status, headers, _ = fetch(redirect_gw, base(model) + "/config.json?x=../../secret&y=%2f")
    assert status == 302 and headers["Location"] == hub.url(model.repo_id, "config.json", model.revision)
    status, headers, _ = fetch(redirect_gw, f"/v1/testorg/TINY-MODEL/{model.revision}/{model.torrent.name}/config.json")
    # The Location is built from the registry's spelling, never from the request's.
    assert status == 302 and headers["Location"] == hub.url(model.repo_id, "config.json", model.revision)


@pytest.mark.parametrize(
    "revision, status",
    [
        ("main", 400),
        ("{short}", 400),
        ("{upper}", 400),
        ("{rev}0", 400),
        ("%20{rev}", 400),
        ("{rev}%00", 400),
        ("refs%2Fpr%2F1", 400),
        ("0" * 40, 404),
    ],
)
def test_revisions_must_be_the_registered_full_commit(revision, status, redirect_gw, model):
    revision = revision.format(rev=model.revision, short=model.revision[:7], upper=model.revision.upper())
    got, headers, _ = fetch(redirect_gw, f"/v1/{model.repo_id}/{revision}/{model.torrent.name}/config.json")
    assert got == status and "Location" not in headers


@pytest.mark.parametrize("repo", ["TestOrg/Other", "Other/Tiny-Model", "TestOrg%2FTiny-Model/x", "..%2FTestOrg/Tiny-Model"])
def test_repositories_outside_the_registry_are_404(repo, redirect_gw, model):
    got, headers, _ = fetch(redirect_gw, f"/v1/{repo}/{model.revision}/{model.torrent.name}/config.json")
    assert got == 404 and "Location" not in headers


# -- ranges --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header, span",
    [
        ("bytes=0-0", (0, 1)),
        ("bytes=0-", (0, SIZE)),
        (f"bytes={SIZE - 1}-", (SIZE - 1, SIZE)),
        (f"bytes=100-{SIZE * 10}", (100, SIZE)),
        ("bytes=100-" + "9" * 19, (100, SIZE)),
        ("bytes=100-" + "9" * 20, (100, SIZE)),  # issue 15.18: 20 digits and more are clamped too
        ("bytes=0-" + "7" * 4000, (0, SIZE)),
        ("bytes=-" + "9" * 30, (0, SIZE)),
        ("bytes=-1", (SIZE - 1, SIZE)),
        ("bytes=-" + "9" * 19, (0, SIZE)),
        ("bytes=\t70000 - 140000 ", (70000, 140001)),
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_every_satisfiable_range_is_206_with_exact_headers(header, span, method, mirror_gw, model):
    status, headers, body = fetch(mirror_gw, base(model) + "/" + LFS, method=method, headers={"Range": header})
    start, end = span
    assert status == 206
    assert headers["Content-Range"] == f"bytes {start}-{end - 1}/{SIZE}"
    assert int(headers["Content-Length"]) == end - start
    assert body == (model.files[LFS][start:end] if method == "GET" else b"")


@pytest.mark.parametrize(
    "header",
    [
        "bytes=-0",
        "bytes=5-2",
        f"bytes={SIZE}-",
        f"bytes={SIZE}-{SIZE + 5}",
        "bytes=" + "9" * 20 + "-",
        "bytes=0-1, 3-4",
        "bytes=0-1,",
        "bytes=--1",
        "bytes=+1-2",
        "bytes=0x10-0x20",
        "bytes=\u0661-\u0662",
        "bytes=\uff11-\uff12",
        "bytes=1\u00a0-2",
        "bytes 0-1",
        "bytes=0-1;q=1",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_every_unservable_range_is_416_with_the_size(header, method, mirror_gw, model):
    status, headers, body = fetch(
        mirror_gw, base(model) + "/" + LFS, method=method, headers={"Range": header.encode("utf-8").decode("latin-1")}
    )
    assert status == 416 and headers["Content-Range"] == f"bytes */{SIZE}"
    if method == "GET":
        assert b"Range" in body


def test_ranges_of_pad_files_and_whole_answers(mirror_gw, model):
    pad = next(e for e in model.torrent.layout if e.is_pad)
    path = base(model) + "/" + pad.path_str
    status, headers, body = fetch(mirror_gw, path, headers={"Range": "bytes=-3"})
    assert status == 206 and body == bytes(3) and headers["Content-Range"] == f"bytes {pad.size - 3}-{pad.size - 1}/{pad.size}"
    status, headers, _ = fetch(mirror_gw, path, headers={"Range": f"bytes={pad.size}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{pad.size}"
    status, headers, body = fetch(mirror_gw, base(model) + "/config.json")
    assert status == 200 and "Content-Range" not in headers
    assert int(headers["Content-Length"]) == len(body) == FILES["config.json"] and body == model.files["config.json"]


# -- mirror cache --------------------------------------------------------------------------------


def _fresh_mirror(hub, model, tmp_path, **settings):
    return start_gateway(model, "mirror", hub, cache=tmp_path / "cache", **settings)


def test_concurrent_overlapping_ranges_all_get_their_exact_bytes(hub, model, tmp_path):
    data = model.files[LFS]
    spans = [(0, 100_000), (50_000, 200_000), (199_999, SIZE), (64 * 1024 - 1, 64 * 1024 + 1), (10, 11), (0, SIZE)]
    spans = spans * 3
    results: dict[int, tuple] = {}
    before = len(hub.find_requests(origin="cdn", method="GET"))
    with _fresh_mirror(hub, model, tmp_path) as gw:

        def get(k, start, end):
            results[k] = fetch(gw, base(model) + "/" + LFS, headers={"Range": f"bytes={start}-{end - 1}"})

        threads = [threading.Thread(target=get, args=(k, *s)) for k, s in enumerate(spans)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        fetched = gw.gateway.metrics.pieces_fetched
    for k, (start, end) in enumerate(spans):
        status, headers, body = results[k]
        assert status == 206 and headers["Content-Range"] == f"bytes {start}-{end - 1}/{SIZE}"
        assert body == data[start:end]
    entry = model.served.files[LFS]
    pl = model.torrent.piece_length
    # Every piece of the file was fetched exactly once however the requests overlapped.
    assert fetched == (entry.offset + SIZE - 1) // pl - entry.offset // pl + 1
    cdn = hub.find_requests(origin="cdn", method="GET")[before:]
    assert sum(r.bytes_sent for r in cdn) == SIZE  # no byte of the file was downloaded twice


def test_a_client_leaving_mid_response_harms_nobody(hub, model, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    with _fresh_mirror(hub, model, tmp_path) as gw:
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
            sock.sendall(f"GET {base(model)}/{LFS} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            sock.close()  # an RST, mid-body
        status, _, body = fetch(gw, base(model) + "/" + LFS)
        assert status == 200 and body == model.files[LFS]
        status, _, body = fetch(gw, base(model) + "/" + LFS)  # now a sendfile hit; leave it too
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        sock.sendall(f"GET {base(model)}/{LFS} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        sock.close()
        status, _, body = fetch(gw, base(model) + "/" + LFS, headers={"Range": "bytes=1000-1999"})
        assert status == 206 and body == model.files[LFS][1000:2000]
        assert fetch(gw, "/healthz")[0] == 200
        deadline = time.monotonic() + 5
        while gw.gateway._active and time.monotonic() < deadline:  # every abandoned slot is given back
            time.sleep(0.02)
        assert gw.gateway._active == 0
    # A client hanging up is not an error of the gateway: no "Error handling request" tracebacks.
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize("damage", ["truncate", "truncate-to-zero", "delete"])
def test_a_cache_file_damaged_on_disk_is_never_served_short_or_wrong(damage, hub, model, tmp_path):
    data = model.files[LFS]
    with _fresh_mirror(hub, model, tmp_path) as gw:
        assert fetch(gw, base(model) + "/" + LFS)[2] == data
        store = next(iter(gw.gateway.cache.stores.values()))
        path = store.path_of(model.served.files[LFS])
        if damage == "delete":
            path.unlink()
        else:
            with open(path, "r+b") as f:
                f.truncate(0 if damage == "truncate-to-zero" else 1000)
        for header in (None, "bytes=150000-150099", "bytes=-10"):
            status, headers, body = fetch(gw, base(model) + "/" + LFS, headers={"Range": header} if header else {})
            start, end = (0, SIZE) if header is None else (150000, 150100) if "150000" in header else (SIZE - 10, SIZE)
            assert status == (200 if header is None else 206) and body == data[start:end], (damage, header)
            assert int(headers["Content-Length"]) == end - start
        assert path.stat().st_size == SIZE and store.complete(model.served.files[LFS])


def test_a_piece_written_into_a_truncated_file_does_not_revive_the_lost_ones(hub, model, tmp_path):
    """``modelreg mirror`` fills pieces without a request in between: the regrown file must not count."""
    entry = model.served.files[LFS]
    pl = model.torrent.piece_length
    first, last = entry.offset // pl, (entry.offset + entry.size - 1) // pl
    with _fresh_mirror(hub, model, tmp_path) as gw:
        store = gw.call(_store(gw.gateway, model))
        gw.call(gw.gateway.fetcher.ensure(store, [first]))
        assert store.has(first)
        with open(store.path_of(entry), "r+b") as f:
            f.truncate(10)
        gw.call(gw.gateway.fetcher.ensure(store, [last]))
        assert store.has(last) and not store.has(first)
        status, _, body = fetch(gw, base(model) + "/" + LFS)
    assert status == 200 and body == model.files[LFS]


async def _store(gateway, model):
    return gateway.cache.store(model.served)


# -- open redirects ------------------------------------------------------------------------------

REPO, REV = "EvilOrg/Bouncer", "ab" * 20


class BouncingHub:
    """A hub on 127.0.0.1 whose every ``resolve`` (and CDN) answer is a redirect to ``self.location``."""

    def __init__(self):
        self.location = ""
        self.hits: list[str] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/api/models/{REPO}/revision/{REV}", self.listing)
        app.router.add_route("*", "/{tail:.*}", self.bounce)
        return app

    async def listing(self, request: web.Request) -> web.Response:
        return web.json_response({"siblings": [{"rfilename": "w.bin", "lfs": {"size": 10}}, {"rfilename": "r.txt"}]})

    async def bounce(self, request: web.Request) -> web.Response:
        self.hits.append(request.path_qs)
        if request.path.startswith("/hop/"):  # an allowed first hop that bounces on
            return web.Response(status=302, headers={"Location": request.query["to"]})
        if request.path.startswith("/ok/"):
            return web.Response(body=b"0123456789")
        return web.Response(status=302, headers={"Location": self.location})


@pytest.fixture(scope="module")
def bouncer():
    hub = BouncingHub()
    with AppThread(web.AppRunner(hub.app())) as upstream:
        hub.endpoint = f"http://127.0.0.1:{upstream.port}"
        serve = ServeSet.build(allow=[f"{REPO}@{REV}"])
        gateway = Gateway(GatewaySettings(mode="redirect", hf_endpoint=hub.endpoint, retry=FAST_RETRY), serve)
        with GatewayThread(gateway) as gw:
            yield hub, gw


EVIL = [
    "http://evil.example/w.bin",
    "https://evil.example/w.bin",
    "//evil.example/w.bin",
    "http://{hub}@evil.example/w.bin",
    "http://user@{hub}/ok/w.bin",
    "http://{hub}\\@evil.example/w.bin",
    "http://{host}.evil.example/w.bin",
    "http://{host}:1/ok/w.bin",
    "http://localhost:{port}/ok/w.bin",
    "http://[::1]:{port}/ok/w.bin",
    "ftp://{hub}/ok/w.bin",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "http://{hub}:99999/ok/w.bin",
    "/hop/x?to=http://evil.example/w.bin",
    "/hop/x?to=//evil.example/w.bin",
]


@pytest.mark.parametrize("location", EVIL)
def test_no_upstream_redirect_leads_a_client_off_the_allow_list(location, bouncer):
    hub, gw = bouncer
    host, port = hub.endpoint.split("://")[1].split(":")
    hub.location = location.format(hub=f"{host}:{port}", host=host, port=port)
    status, headers, body = fetch(gw, f"/v1/{REPO}/{REV}/Bouncer/w.bin?fresh={quote(location)}")
    assert status == 502 and "Location" not in headers, body
    assert b"not an allowed redirect host" in body or b"too many redirects" in body


@pytest.mark.parametrize("location", ["/ok/w.bin?sig=1", "http://{hub}/ok/w.bin", "/hop/x?to=/ok/w.bin"])
def test_redirects_within_the_hub_are_followed_and_answered_absolute(location, bouncer):
    hub, gw = bouncer
    netloc = hub.endpoint.split("://")[1]
    hub.location = location.format(hub=netloc)
    status, headers, _ = fetch(gw, f"/v1/{REPO}/{REV}/Bouncer/w.bin")
    assert status == 302 and headers["Location"].startswith(hub.endpoint + "/")


# -- an upstream that sends other bytes than asked -----------------------------------------------


class LyingHub:
    """A hub on 127.0.0.1 serving a model's files (none LFS) with a chosen way of answering ranges wrong."""

    def __init__(self, model):
        self.model, self.lie = model, ""

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(f"/api/models/{self.model.repo_id}/revision/{self.model.revision}", self.listing)
        app.router.add_get(f"/{self.model.repo_id}/resolve/{self.model.revision}/{{path:.+}}", self.resolve)
        return app

    async def listing(self, request: web.Request) -> web.Response:
        return web.json_response({"siblings": [{"rfilename": p} for p in self.model.files]})

    async def resolve(self, request: web.Request) -> web.Response:
        data = self.model.files[request.match_info["path"]]
        first, last = request.headers["Range"].removeprefix("bytes=").split("-")
        start, end = int(first), int(last) + 1
        size = len(data)
        if self.lie == "ignores-range":
            return web.Response(body=data + b"trailing junk")
        if self.lie == "sends-more":  # the rest of the file, and says so
            return web.Response(status=206, body=data[start:], headers={"Content-Range": f"bytes {start}-{size - 1}/{size}"})
        if self.lie == "caps-at-100k":  # at most 100 KiB per answer, honestly labelled (resumed)
            end = min(end, start + 100 * 1024)
        elif self.lie == "halves":  # half of what was asked, honestly labelled, forever
            end = start + max(1, (end - start) // 2)
        elif self.lie == "wrong-offset":  # the label is right, the bytes come from elsewhere
            return web.Response(
                status=206, body=data[start + 1 : end + 1].ljust(end - start, b"\0"),
                headers={"Content-Range": f"bytes {start}-{end - 1}/{size}"},
            )
        elif self.lie == "wrong-label":
            return web.Response(status=206, body=data[start:end], headers={"Content-Range": f"bytes {start + 1}-{end}/{size}"})
        return web.Response(status=206, body=data[start:end], headers={"Content-Range": f"bytes {start}-{end - 1}/{size}"})


@pytest.mark.parametrize(
    "lie, status",
    [
        ("ignores-range", 502),  # a 200 to a range not starting at 0: refused, not skipped through
        ("sends-more", 206),
        ("caps-at-100k", 206),
        ("halves", 502),  # shrinking answers count as failures: bounded, then given up
        ("wrong-offset", 502),
        ("wrong-label", 502),
    ],
)
def test_mirror_serves_only_verified_bytes_whatever_upstream_sends(lie, status, model, tmp_path):
    liar = LyingHub(model)
    liar.lie = lie
    data = model.files[LFS]
    with AppThread(web.AppRunner(liar.app())) as upstream:
        settings = GatewaySettings(
            mode="mirror", hf_endpoint=f"http://127.0.0.1:{upstream.port}", cache_dir=tmp_path / "c", retry=FAST_RETRY
        )
        with GatewayThread(Gateway(settings, ServeSet([model.served]))) as gw:
            got, headers, body = fetch(gw, base(model) + "/" + LFS, headers={"Range": "bytes=70000-"})
            assert got == status
            if got == 206:
                assert body == data[70000:] and headers["Content-Range"] == f"bytes 70000-{SIZE - 1}/{SIZE}"
                liar.lie = "wrong-offset"  # now cached: what upstream says no longer matters
                assert fetch(gw, base(model) + "/" + LFS, headers={"Range": "bytes=70000-"})[2] == data[70000:]
            else:
                assert "Content-Range" not in headers and data[70000:70016] not in body
                if lie.startswith("wrong"):  # not one piece passed its hash check, so none was stored
                    assert gw.gateway.cache.used == 0
            # Fetching the whole file with an honest upstream afterwards still gives the exact bytes.
            liar.lie = ""
            assert fetch(gw, base(model) + "/" + LFS)[2] == data


# -- request heads -------------------------------------------------------------------------------


def test_two_range_fields_are_two_ranges_not_the_first_one(mirror_gw, model):
    # RFC 9110 §5.3: repeated field lines mean their comma-joined list, i.e. a multi-range request.
    answer = raw_exchange(
        mirror_gw,
        f"GET {base(model)}/config.json HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nRange: bytes=5-6\r\n"
        "Connection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 416") and b"Content-Range: bytes */1000" in answer


@pytest.mark.parametrize("gw_name", ["redirect_gw", "mirror_gw"])
def test_an_absolute_form_request_target_is_served_like_its_path(gw_name, request, hub, model):
    # RFC 9112 §3.2.2: a server MUST accept the absolute-form (what a client sends through a proxy).
    gw = request.getfixturevalue(gw_name)
    target = f"http://127.0.0.1:{gw.port}{base(model)}/config.json"
    answer = raw_exchange(gw, f"GET {target} HTTP/1.1\r\nHost: x\r\nRange: bytes=0-9\r\nConnection: close\r\n\r\n")
    if gw_name == "redirect_gw":
        assert answer.startswith(b"HTTP/1.1 302")
        assert f"Location: {hub.url(model.repo_id, 'config.json', model.revision)}\r\n".encode() in answer
    else:
        assert answer.startswith(b"HTTP/1.1 206") and answer.endswith(b"\r\n\r\n" + model.files["config.json"][:10])
    traversal = f"http://127.0.0.1:{gw.port}{base(model)}/%2e%2e/{model.torrent.name}/config.json"
    assert raw_exchange(gw, f"GET {traversal} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").startswith(b"HTTP/1.1 404")


def test_a_cache_hit_being_sent_holds_its_client_slot(hub, tmp_path):
    big = make_model(hub, tmp_path, "TestOrg/Big-Model", make_files({"w.bin": 16 << 20, "c.json": 100}, seed=5), 1 << 20)
    with start_gateway(big, "mirror", hub, cache=tmp_path / "cache", max_per_client=1) as gw:
        path = f"/v1/{big.repo_id}/{big.revision}/{big.torrent.name}/w.bin"
        assert fetch(gw, path)[2] == big.files["w.bin"]  # now a sendfile hit
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(10)
        slow.connect(("127.0.0.1", gw.port))
        try:
            slow.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            assert slow.recv(12) == b"HTTP/1.1 200"  # then stop reading: the send stalls
            deadline = time.monotonic() + 5
            while not gw.gateway._active and time.monotonic() < deadline:
                time.sleep(0.02)
            status, _, _ = fetch(gw, f"/v1/{big.repo_id}/{big.revision}/{big.torrent.name}/c.json")
            assert status == 429
        finally:
            slow.close()
        deadline = time.monotonic() + 5
        while gw.gateway._active and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fetch(gw, f"/v1/{big.repo_id}/{big.revision}/{big.torrent.name}/c.json")[0] == 200


def test_a_single_file_torrent_answers_only_its_exact_name(hub, tmp_path):
    data = make_files({"x": 100_001}, seed=9)["x"]
    repo = hub.add_repo("TestOrg/Single-Adv", {"weights.gguf": data})
    (tmp_path / "weights.gguf").write_bytes(data)
    torrent = Torrent.from_bytes(create_torrent(LocalSource.open(tmp_path / "weights.gguf"), piece_length=16384))
    single = Model("TestOrg/Single-Adv", repo.sha, {"weights.gguf": data}, torrent)
    root = f"/v1/{single.repo_id}/{single.revision}"
    with start_gateway(single, "mirror", hub, cache=tmp_path / "cache") as gw:
        status, headers, body = fetch(gw, f"{root}/weights.gguf", headers={"Range": "bytes=-5"})
        assert status == 206 and body == data[-5:]
        assert headers["Content-Range"] == f"bytes {len(data) - 5}-{len(data) - 1}/{len(data)}"
        for tail in ("weights.gguf/", "Weights.gguf", "weights.gguf/weights.gguf", "weights.gguf%2f", "./weights.gguf", ""):
            status, headers, _ = fetch(gw, f"{root}/{tail}")
            assert status == 404 and "Location" not in headers, tail
