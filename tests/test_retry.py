"""The one retry policy (modelreg.hf.retry) that the hub client, the streaming source and the gateway share."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from modelreg.errors import UpstreamError
from modelreg.hf import client, source
from modelreg.hf.retry import RETRY_STATUS, Pause, RetryPolicy, retry_after, retryable_status
from modelreg.webseed import settings, upstream

NOW = datetime(2026, 11, 29, 20, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize("value, seconds", [
    ("0", 0.0), ("2.5", 2.5), (" 7 ", 7.0), ("-3", 0.0),
    (format_datetime(NOW + timedelta(seconds=90), usegmt=True), 90.0),
    ("Sun, 29 Nov 2026 20:02:00 GMT", 120.0),
    ("Sunday, 29-Nov-26 20:00:30 GMT", 30.0),  # RFC 850, obsolete but allowed by RFC 9110
    ("Sun Nov 29 20:00:10 2026", 10.0),  # asctime: no zone, read as GMT
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: ask again now
])
def test_retry_after_reads_seconds_and_http_dates(value, seconds):
    assert retry_after({"retry-after": value}, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["soon", "", "nan", "inf", "Sun, 99 Nov 2026 20:02:00 GMT"])
def test_unreadable_retry_after_is_none(value):
    assert retry_after({"retry-after": value}, now=NOW) is None
    assert retry_after({}, now=NOW) is None


def test_backoff_doubles_with_jitter_up_to_the_cap():
    policy = RetryPolicy(retries=10, base_delay=1.0, max_delay=8.0)
    for attempt, full in enumerate([1, 2, 4, 8, 8, 8]):
        waits = [policy.wait(attempt) for _ in range(200)]
        assert all(full / 2 <= w <= full for w in waits)
        assert max(waits) - min(waits) > full / 10  # jittered, so that clients do not ask in step


def test_gives_up_after_the_retries():
    policy = RetryPolicy(retries=2, base_delay=0.01)
    assert policy.wait(0) is not None and policy.wait(1) is not None
    assert policy.wait(2) is None
    assert policy.why_not(2) == "gave up after 3 attempts"


def test_retry_after_is_obeyed_up_to_the_limit_then_gives_up_at_once():
    policy = RetryPolicy(retries=3, base_delay=0.01, max_retry_after=60)
    assert policy.wait(0, retry_after=45) == 45  # not the 10 ms backoff
    assert policy.wait(0, retry_after=60) == 60
    assert policy.wait(0, retry_after=61) is None  # on the first failure already
    assert policy.why_not(0, 3600) == "asks to wait 3600 s; try again later"
    assert policy.wait(3, retry_after=1) is None  # and the retries still run out


def test_which_statuses_are_asked_again():
    assert RETRY_STATUS == {408, 429, 500, 502, 503, 504}
    assert all(retryable_status(s) for s in RETRY_STATUS)
    assert not any(retryable_status(s) for s in (200, 206, 301, 400, 401, 403, 404, 416, 501, 505, None))


def test_pause_holds_every_worker_and_stops_when_told():
    pause = Pause()
    assert pause.wait() is True  # nothing to wait for
    pause.extend(30)
    stop = threading.Event()
    threading.Timer(0.05, stop.set).start()
    assert pause.wait(stop) is False


def test_one_policy_for_the_hub_client_the_source_and_the_gateway():
    assert client.RetryPolicy is source.RetryPolicy is upstream.RetryPolicy is RetryPolicy
    assert isinstance(settings.GatewaySettings().retry, RetryPolicy)


# -- the gateway's upstream reads Retry-After dates too (it read only seconds before the policy was shared) --


async def _gateway_listing(retry_after_value: str) -> tuple[list[float], object]:
    from aiohttp import web

    from modelreg.webseed.hosts import RedirectPolicy
    from modelreg.webseed.metrics import Metrics
    from modelreg.webseed.routes import Served

    asked: list[float] = []

    async def listing(request: web.Request) -> web.Response:
        asked.append(time.monotonic())
        if len(asked) == 1:
            return web.Response(status=503, headers={"Retry-After": retry_after_value()})
        return web.json_response({"siblings": [{"rfilename": "model.bin", "lfs": {"size": 1}}]})

    app = web.Application()
    app.router.add_get("/api/models/{tail:.*}", listing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    endpoint = f"http://127.0.0.1:{runner.addresses[0][1]}"
    gateway = upstream.Upstream(endpoint, RedirectPolicy.for_endpoint(endpoint), Metrics(),
                                retry=RetryPolicy(retries=3, base_delay=0.01, max_retry_after=10))
    await gateway.start()
    try:
        result: object = await gateway.lfs_index(Served.of("Org/Model", "c" * 40, None))
    except Exception as exc:  # noqa: BLE001 - the test looks at what came out
        result = exc
    finally:
        await gateway.close()
        await runner.cleanup()
    return asked, result


def test_the_gateway_waits_for_a_retry_after_date():
    in_two_seconds = lambda: format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)  # noqa: E731
    asked, result = asyncio.run(_gateway_listing(in_two_seconds))
    assert result == {"model.bin": True}
    assert len(asked) == 2 and asked[1] - asked[0] >= 0.9  # the date (whole seconds) was waited for


def test_the_gateway_gives_up_at_once_on_a_retry_after_date_beyond_its_limit():
    in_an_hour = lambda: format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)  # noqa: E731
    asked, result = asyncio.run(_gateway_listing(in_an_hour))
    assert len(asked) == 1 and isinstance(result, UpstreamError) and result.status == 502
    assert "asks to wait" in str(result) and "try again later" in str(result)
