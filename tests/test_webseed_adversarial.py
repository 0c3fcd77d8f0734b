"""An adversarial pass over the web-seed gateway over real HTTP on 127.0.0.1: encoding tricks in paths,
odd revisions, every shape of Range, redirects an upstream may try to smuggle out, and a mirror cache
that is raced, abandoned mid-response or damaged on disk."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading
import unicodedata

import pytest
from aiohttp import web
from fakehub import fake_hub
from webseed_harness import make_files, make_model, start_gateway

from modelreg.webseed import GatewaySettings, Served, ServeSet
from modelreg.webseed.hosts import RedirectPolicy
from modelreg.webseed.metrics import Metrics
from modelreg.webseed.upstream import Upstream
from webseed_harness import FAST_RETRY

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


def fetch(gw, path: str, method: str = "GET", headers: dict | None = None) -> tuple[int, dict, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, dict(resp.headers), resp.read()
    finally:
        conn.close()


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
    from urllib.parse import quote

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
