"""Every class of bad body: a 4xx JSON answer naming the problem, a quarantine row, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from tests.support.data import TOKEN
from tests.support.store import StoreOpener, deliveries, quarantine

# The store and the worker on each backend (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

HOOK = f"/hooks/smartsupp/{TOKEN}"
DEEP = (
    b'{"accountId":1,"channel":{"id":2},"visitor":{"variables":{"v":{"value":'
    + (b"[" * 1500 + b"]" * 1500)
    + b"}}}}"
)

CASES = [
    # (name, body, status, error code, words the message must contain)
    ("invalid JSON", b'{"accountId": 1, "channel": {', 400, "invalid_json", "not valid JSON"),
    ("empty body", b"", 400, "empty_body", "empty"),
    ("blank body", b"  \r\n ", 400, "empty_body", "empty"),
    ("array", b"[1, 2]", 400, "not_an_object", "must be a JSON object, got list"),
    ("string", b'"hello"', 400, "not_an_object", "got str"),
    ("number", b"42", 400, "not_an_object", "got number"),
    ("null", b"null", 400, "not_an_object", "got null"),
    (
        "wrong type",
        b'{"accountId": 1, "channel": {"id": "abc"}}',
        400,
        "wrong_type",
        "Expected `int`, got `str` at `channel.id`",
    ),
    (
        "wrong nested type",
        b'{"accountId": 1, "channel": {"id": 2}, "messages": "hi"}',
        400,
        "wrong_type",
        "at `messages`",
    ),
    (
        "missing channel.id",
        b'{"accountId": 1, "channel": {"isMissed": true}}',
        400,
        "missing_field",
        "required field channel.id is missing",
    ),
    ("missing channel", b'{"accountId": 1}', 400, "missing_field", "field channel is"),
    ("absurd nesting", DEEP, 400, "too_deeply_nested", "nesting is too deep"),
    ("deep top-level array", b"[" * 4000, 400, "not_an_object", "got list"),
    (
        "valid JSON, not UTF-8",
        b'{"accountId": 1, "channel": {"id": 2}, "visitor": {"name": "\xff\xfe"}}',
        400,
        "invalid_utf8",
        "not valid UTF-8",
    ),
    (
        "not UTF-8 in a field the relay does not read",
        b'{"accountId": 1, "channel": {"id": 2}, "extra": "\xff\xfe"}',
        400,
        "invalid_utf8",
        "not valid UTF-8: invalid start byte at byte 49",
    ),
    (
        "id beyond 64 bits",
        b'{"accountId": 9223372036854775808, "channel": {"id": 2}}',
        400,
        "out_of_range",
        "accountId must be between 0 and",
    ),
    (
        "negative id",
        b'{"accountId": 1, "channel": {"id": -5}}',
        400,
        "out_of_range",
        "channel.id must be",
    ),
]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(server={"max_body_bytes": 4096})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient[object]]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.mark.parametrize(
    ("name", "raw", "status", "error", "words"), CASES, ids=[c[0] for c in CASES]
)
def test_refused_with_a_json_error_and_quarantined(  # noqa: PLR0917 -- pytest parameters
    settings: Settings,
    client: TestClient[object],
    name: str,
    raw: bytes,
    status: int,
    error: str,
    words: str,
) -> None:
    response = client.post(HOOK, content=raw)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    answer = response.json()
    assert answer["error"] == error
    assert words in answer["message"]
    [row] = quarantine(settings)
    assert row.id == answer["quarantine_id"]
    assert (row.reason, row.message) == (error, answer["message"])
    assert row.size == len(raw)
    assert row.body == raw[:4096]
    assert row.remote == "testclient"
    assert deliveries(settings) == []


def test_over_the_limit_is_413_and_keeps_the_first_bytes(
    settings: Settings, client: TestClient[object]
) -> None:
    raw = json.dumps({"accountId": 1, "channel": {"id": 2}, "pad": "x" * 10_000}).encode()
    response = client.post(HOOK, content=raw)
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert response.json()["message"] == "request body exceeds the limit of 4096 bytes"
    [row] = quarantine(settings)
    assert row.reason == "body_too_large"
    assert row.body == raw[:4096]


def test_a_chunked_body_over_the_limit_is_413(
    settings: Settings, client: TestClient[object]
) -> None:
    chunks = [b'{"accountId": 1, "channel": {"id": 2}, "pad": "'] + [b"y" * 1000] * 10
    response = client.post(HOOK, content=iter(chunks))
    assert response.status_code == 413
    [row] = quarantine(settings)
    assert row.body == b"".join(chunks)[:4096]


def test_the_default_limit_is_2_mb(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    assert settings.server.max_body_bytes == 2_000_000
    just_over = b'{"accountId": 1, "channel": {"id": 2}, "pad": "' + b"z" * 2_000_000 + b'"}'
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=just_over).status_code == 413
        fits = b'{"accountId": 1, "channel": {"id": 2}, "pad": "' + b"z" * 1_900_000 + b'"}'
        assert client.post(HOOK, content=fits).status_code == 200


def test_a_lying_content_length_is_not_a_server_error(client: TestClient[object]) -> None:
    response = client.post(
        HOOK,
        content=b'{"accountId": 1, "channel": {"id": 2}}',
        headers={"content-length": "99999999999"},
    )
    assert 200 <= response.status_code < 500


def test_quarantine_keeps_only_the_newest_rows(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(storage={"quarantine_max_rows": 3})
    with TestClient(create_app(settings)) as client:
        for n in range(5):
            assert client.post(HOOK, content=f"not json {n}".encode()).status_code == 400
    rows = quarantine(settings)
    assert [row.body for row in rows] == [b"not json 4", b"not json 3", b"not json 2"]


def test_nesting_a_hundred_thousand_levels_deep_is_a_400(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    deep = b'{"accountId": 1, "channel": {"id": 2}, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with TestClient(create_app(settings)) as client:
        response = client.post(HOOK, content=deep)
    assert response.status_code == 400
    assert response.json()["error"] == "too_deeply_nested"
    assert quarantine(settings)[0].body == deep


def test_the_quarantine_is_capped_in_bytes_and_drops_the_oldest(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        server={"max_body_bytes": 100_000}, storage={"quarantine_max_bytes": 250_000}
    )
    with TestClient(create_app(settings)) as client:
        answers = [client.post(HOOK, content=b"{" + b"x" * 99_999) for _ in range(10)]
    assert {a.json()["error"] for a in answers} == {"invalid_json"}
    kept = quarantine(settings)
    assert [row.id for row in kept] == [a.json()["quarantine_id"] for a in answers[-2:]][::-1]
    assert sum(len(row.body) for row in kept) <= 250_000


def test_a_body_larger_than_the_quarantine_is_kept_cut_to_it(
    open_test_store: StoreOpener,
) -> None:
    store = open_test_store()
    for _ in range(2):
        store.quarantine(
            "invalid_json", "x", b"a" * 5000, None, max_rows=10, max_bytes=3000, max_body=4000
        )
    rows = store.quarantined()
    assert [(row.size, row.body) for row in rows] == [(5000, b"a" * 3000)]  # the newest only


def test_the_hook_answers_only_post(client: TestClient[object]) -> None:
    for method in ("GET", "PUT", "DELETE"):
        answer = client.request(method, HOOK)
        assert answer.status_code == 405, method
        assert answer.headers["allow"] == "POST", method  # RFC 9110, 15.5.6
        assert answer.json() == {"status_code": 405, "detail": "Method Not Allowed"}


# 1,000 characters of 3 bytes each that hardly compress: no real visitor id or email is
# anywhere near as long (an address has at most 254), and PostgreSQL cannot index it (an
# index entry holds at most 2,704 bytes), which made the store refuse the whole chat.
HUGE = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(1000))


@pytest.mark.parametrize("field", ["id", "email"])
def test_a_visitor_id_or_email_longer_than_any_real_one_is_refused_on_every_store(
    make_settings: Callable[..., Settings], field: str
) -> None:
    settings = make_settings()
    raw = json.dumps({"accountId": 1, "channel": {"id": 2}, "visitor": {field: HUGE}}).encode()
    with TestClient(create_app(settings)) as client:
        response = client.post(HOOK, content=raw)
        fitting = {"accountId": 1, "channel": {"id": 3}, "visitor": {field: HUGE[:512]}}
        accepted = client.post(HOOK, content=json.dumps(fitting).encode())
    assert response.status_code == 400, response.text
    answer = response.json()
    assert f"visitor.{field}" in answer["message"] and "512" in answer["message"]
    [row] = quarantine(settings)
    assert row.id == answer["quarantine_id"] and row.body == raw
    assert accepted.status_code == 200, accepted.text
