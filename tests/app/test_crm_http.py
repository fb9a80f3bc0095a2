"""The CRM senders' shared pieces: the status and exception tables, the API's error text in
the message, Retry-After, and the external id stored with a delivery (schema version 3)."""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from relay.model.errors import (
    DeliveryConnectionError,
    DeliveryTimeout,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.senders.answers import transport_failure
from relay.senders.crm.http import Api, classify, failure_kind
from relay.store import Store
from relay.store.base import MIGRATIONS, SCHEMA_VERSION
from tests.support.silent import SilentServer
from tests.support.webhook import Answer, FakeEndpoint

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (201, None),
        (204, None),
        (429, RateLimited),
        (408, TransientDeliveryError),
        (425, TransientDeliveryError),
        (500, TransientDeliveryError),
        (503, TransientDeliveryError),
        (301, PermanentDeliveryError),
        (400, PermanentDeliveryError),
        (401, PermanentDeliveryError),
        (404, PermanentDeliveryError),
        (422, PermanentDeliveryError),
    ],
)
def test_each_status_has_one_kind(status: int, kind: type[Exception] | None) -> None:
    assert failure_kind(status) is kind


def response(
    status: int, json: object = None, headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.Response(status, json=json, headers=headers)


def test_a_body_that_is_no_json_is_quoted_as_text() -> None:
    failure = classify("X", httpx.Response(502, text="<h1>Bad gateway</h1>"), str, now=NOW)
    assert isinstance(failure, TransientDeliveryError)
    assert "<h1>Bad gateway</h1>" in failure.message


def test_429_carries_retry_after_or_the_reset_header() -> None:
    failure = classify("X", response(429, {}, {"Retry-After": "7"}), str, now=NOW)
    assert isinstance(failure, RateLimited) and failure.retry_after == 7.0
    reset = response(429, {}, {"x-ratelimit-reset": "3"})
    failure = classify("X", reset, str, now=NOW, reset_header="x-ratelimit-reset")
    assert isinstance(failure, RateLimited) and failure.retry_after == 3.0
    failure = classify("X", response(429, {}), str, now=NOW)
    assert isinstance(failure, RateLimited) and failure.retry_after == 10.0


def test_transport_failures_are_sorted_and_never_quote_the_url() -> None:
    url = "https://api.pipedrive.com/v1/leads?api_token=SECRET123"
    request = httpx.Request("GET", url)
    cases = [
        (httpx.ConnectTimeout(f"timeout {url}", request=request), DeliveryTimeout),
        (httpx.ConnectError(f"refused {url}", request=request), DeliveryConnectionError),
        (httpx.UnsupportedProtocol(f"bad {url}", request=request), PermanentDeliveryError),
    ]
    for exc, kind in cases:
        failure = transport_failure("Pipedrive", exc)
        assert type(failure) is kind
        assert "SECRET123" not in failure.message


async def test_a_closed_port_is_a_transient_connection_failure() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = Api("X", f"http://127.0.0.1:{port}", error_text=str, timeout=5,
              params={"api_token": "SECRET123"})  # fmt: skip
    async with api.client() as client:
        with pytest.raises(DeliveryConnectionError) as caught:
            await api.call(client, "GET", "/v1/leads")
    assert "SECRET123" not in caught.value.message


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint()
    fake.start()
    yield fake
    fake.stop()


async def test_answers_without_json_are_empty_when_allowed_and_transient_otherwise(
    endpoint: FakeEndpoint,
) -> None:
    endpoint.answers = [
        Answer(204, b""),
        Answer(404, b"<h1>Not found</h1>"),
        Answer(200, b"<html>a proxy's page</html>"),
    ]
    api = Api("X", endpoint.url(""), error_text=str, timeout=5)
    async with api.client() as client:
        assert await api.call(client, "POST", "/v1/a") == (204, None)
        assert await api.call(client, "POST", "/v1/b", allow=(404,)) == (404, None)
        with pytest.raises(TransientDeliveryError) as caught:
            await api.call(client, "POST", "/v1/c")
    assert not isinstance(caught.value, PermanentDeliveryError)
    assert caught.value.message == "X answered HTTP 200 with a body that is no JSON"


async def test_an_api_that_never_answers_times_out() -> None:
    with SilentServer() as silent:
        api = Api("X", silent.url(""), error_text=str, timeout=0.5)
        async with api.client() as client:
            with pytest.raises(DeliveryTimeout) as caught:
                await api.call(client, "GET", "/v1/me")
    assert caught.value.message == "X timed out: ReadTimeout"


def test_a_status_outside_the_table_is_permanent_and_an_unknown_transport_error_transient() -> None:
    assert failure_kind(199) is PermanentDeliveryError
    request = httpx.Request("GET", "https://api.example.test/")
    failure = transport_failure("X", httpx.DecodingError("bad gzip", request=request))
    assert (type(failure), failure.message) == (
        TransientDeliveryError,
        "X request failed: DecodingError",
    )


def two_versions(path: Path) -> None:
    """Version 2 of the store (before migrations 3 and 4): one conversation in two versions,
    a delivery each, same action, and a delivery of another action."""
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    conn.execute("PRAGMA user_version = 2")
    for cid, hash_ in ((1, "a"), (2, "b")):
        conn.execute(
            "INSERT INTO conversations VALUES (?, '208-1', 208, 1, ?, ?, 'missed', 1.0, x'7b7d',"
            " x'7b7d')",
            (cid, cid, hash_),
        )
    rows = ((1, 1, '{"type":"zendesk","destination":"a"}'),
            (2, 2, '{"type":"zendesk","destination":"a"}'),
            (3, 2, '{"type":"zendesk","destination":"b"}'))  # fmt: skip
    for did, cid, action in rows:
        conn.execute(
            "INSERT INTO deliveries (id, conversation_id, dedupe_key, rule, channel, action,"
            " category, created_at, next_attempt_at, updated_at)"
            " VALUES (?, ?, ?, 'r', 'zendesk', ?, 'missed', 1.0, 1.0, 1.0)",
            (did, cid, f"k{did}", action),
        )
    conn.commit()
    conn.close()


def test_the_external_id_is_stored_and_found_by_a_later_version(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    two_versions(path)
    store = Store(path)
    try:
        assert [store.known_external_ref(i) for i in (1, 2, 3)] == [None, None, None]
        store.record_external_ref(1, "4711")
        # The later version, same action: the same ticket; another destination: none.
        assert [store.known_external_ref(i) for i in (1, 2, 3)] == ["4711", "4711", None]
        store.record_external_ref(2, "4712")
        assert store.known_external_ref(2) == "4712"
        store.mark_sent(3, 2.0, sent_to="skipped")
        store.record_external_ref(3, None, "skipped: no email")
        [row] = store.deliveries(("sent",))
        assert (row.sent_to, row.last_error) == ("skipped", "skipped: no email")
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
