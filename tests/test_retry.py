"""The one retry policy (modelreg.hf.retry) that the hub client, the streaming source and the gateway share."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

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
