"""Hook calls with a wrong token: the first is logged, a flood costs one summary line per
minute (by an injected clock), and every call is still counted in the metrics."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from relay.ops.logthrottle import Throttle
from tests.support.app import runtime


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_logs_the_first_then_one_summary_per_interval() -> None:
    clock = Clock()
    throttle = Throttle("call refused", "calls refused", interval=60.0, clock=clock)
    assert throttle.flush() is None
    assert throttle.occurred("from a") == (
        "call refused from a (more are counted and logged once per 60 s)"
    )
    clock.now += 10
    assert [throttle.occurred(f"from {n}") for n in "bcd"] == [None, None, None]
    clock.now += 50
    assert throttle.occurred("from e") == "4 calls refused in the last 60 s, the latest from e"
    clock.now += 30
    assert throttle.occurred("from f") is None
    assert throttle.flush() == "1 calls refused in the last 30 s, the latest from f"
    assert throttle.flush() is None
    # After a quiet interval, the next one is logged on its own again.
    clock.now += 600
    assert throttle.occurred("from g") == (
        "call refused from g (more are counted and logged once per 60 s)"
    )


def test_a_thousand_wrong_tokens_cost_one_log_line_and_a_summary_per_minute(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.api")
    clock = Clock()
    with TestClient(create_app(make_settings())) as client:
        runtime(client).wrong_tokens.clock = clock
        for _ in range(1000):
            assert client.post("/hooks/smartsupp/wrong", content=b"{}").status_code == 404
        logged = [r.getMessage() for r in caplog.records if r.name == "relay.api"]
        assert logged == [
            "hook called with a wrong token from testclient"
            " (more are counted and logged once per 60 s)"
        ]
        clock.now += 60  # a minute after the first line
        assert client.post("/hooks/smartsupp/wrong", content=b"{}").status_code == 404
        logged = [r.getMessage() for r in caplog.records if r.name == "relay.api"]
        assert logged[1:] == [
            "1000 hook calls with a wrong token in the last 60 s, the latest from testclient"
        ]
        metrics = client.get("/metrics").text
    assert 'relay_conversations_rejected_total{reason="wrong_token"} 1001.0' in metrics


def test_wrong_tokens_not_yet_summarised_are_summarised_when_the_relay_stops(
    make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="relay.api")
    clock = Clock()
    with TestClient(create_app(make_settings())) as client:
        runtime(client).wrong_tokens.clock = clock
        for _ in range(3):
            assert client.post("/hooks/smartsupp/wrong", content=b"{}").status_code == 404
        clock.now += 12  # the relay stops 12 s after the first, within the minute
    logged = [r.getMessage() for r in caplog.records if r.name == "relay.api"]
    assert len(logged) == 1  # the first call's line; the stop's summary is the app's
    stopped = [r.getMessage() for r in caplog.records if r.name == "relay.app"]
    assert stopped == [
        "2 hook calls with a wrong token in the last 12 s, the latest from testclient"
    ]
