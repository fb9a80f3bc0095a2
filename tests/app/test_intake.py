"""HTTP intake through Litestar's test client: token, storage before 2xx, duplicates, refusals."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from tests.support.data import TOKEN, body, sample
from tests.support.store import count_rows, select_rows

# The store and the worker on each backend (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")


def rows(settings: Settings, table: str) -> int:
    return count_rows(settings, table)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


def test_missed_chat_is_stored_with_its_planned_delivery(settings: Settings) -> None:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "accepted",
            "conversation": "208-55039",
            "version": 1,
            "category": "missed",
            "deliveries": 1,
        }
        # Stored by the time the answer arrives: read through a separate connection.
        assert rows(settings, "conversations") == 1
        assert rows(settings, "deliveries") == 1
    # The body's beginAt in seconds beside it, for the visitor's later history.
    begin = select_rows(settings, "SELECT begin_at FROM conversations")
    assert begin == [{"begin_at": data["beginAt"] / 1000.0}]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-www-form-urlencoded", None])
def test_body_is_json_whatever_the_content_type(settings: Settings, ctype: str | None) -> None:
    headers = {"Content-Type": ctype} if ctype else {}
    with TestClient(create_app(settings)) as client:
        response = client.post(
            f"/hooks/smartsupp/{TOKEN}", content=body(sample("v2")), headers=headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["category"] == "normal"


@pytest.mark.parametrize(
    "path", ["/hooks/smartsupp/wrong", "/hooks/smartsupp/", "/hooks/smartsupp/test-token-12"]
)
def test_wrong_or_missing_token_is_404_and_stores_nothing(settings: Settings, path: str) -> None:
    with TestClient(create_app(settings)) as client:
        response = client.post(path, content=body(sample("v1")))
        assert response.status_code == 404
    assert rows(settings, "conversations") == 0
    assert rows(settings, "quarantine") == 0


def test_exact_duplicate_is_answered_2xx_and_plans_nothing_new(settings: Settings) -> None:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    with TestClient(create_app(settings)) as client:
        first = client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
        again = client.post(
            f"/hooks/smartsupp/{TOKEN}", content=json.dumps(data, indent=4, sort_keys=True).encode()
        )
        assert first.json()["deliveries"] == 1
        assert again.status_code == 200
        assert again.json()["status"] == "duplicate"
        assert again.json()["deliveries"] == 0
    assert rows(settings, "conversations") == 1
    assert rows(settings, "deliveries") == 1


def test_changed_content_is_a_new_version_and_only_new_actions_run(settings: Settings) -> None:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    with TestClient(create_app(settings)) as client:
        client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
        data["messages"].append(
            {"type": "visitor", "content": "still there?", "sentAt": 1427470480000}
        )
        same_category = client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).json()
        data["channel"]["isMissed"] = False
        data["channel"]["rating"] = 1
        rated = client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).json()
    assert (same_category["version"], same_category["deliveries"]) == (2, 0)
    assert (rated["version"], rated["category"], rated["deliveries"]) == (3, "low-rated", 1)


def test_minimal_and_numeric_string_bodies_are_accepted(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        minimal = client.post(
            f"/hooks/smartsupp/{TOKEN}", content=b'{"accountId":1,"channel":{"id":2}}'
        )
        strings = client.post(
            f"/hooks/smartsupp/{TOKEN}",
            content=b'{"accountId":"7","channel":{"id":"9","isMissed":true}}',
        )
    assert minimal.status_code == 200
    assert minimal.json()["conversation"] == "1-2"
    assert strings.json()["conversation"] == "7-9"
    assert strings.json()["deliveries"] == 1


def test_a_begin_time_no_float_holds_is_accepted_with_no_finite_begin_time_beside_it(
    settings: Settings,
) -> None:
    # JSON integers have no limit; beginAt's seconds beside the body are a float (a double).
    huge = ("1" + "0" * 400, "-1" + "0" * 400)
    with TestClient(create_app(settings)) as client:
        answers = [
            client.post(
                f"/hooks/smartsupp/{TOKEN}",
                content=f'{{"accountId":1,"channel":{{"id":{n}}},"beginAt":{value}}}'.encode(),
            )
            for n, value in enumerate(huge)
        ]
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert rows(settings, "quarantine") == 0
    begin = select_rows(settings, "SELECT begin_at FROM conversations ORDER BY id")
    if settings.storage.url is None:
        # SQLite keeps its own reading of the number beside the body, as the visitor history
        # read it from the body before: beyond any double, +-Infinity.
        assert begin == [{"begin_at": float("inf")}, {"begin_at": float("-inf")}]
    else:
        # No begin time beside them: PostgreSQL's visitor history reads such a body.
        assert begin == [{"begin_at": None}, {"begin_at": None}]


def test_healthz(settings: Settings) -> None:
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}


def test_generated_token_is_kept_in_state_dir(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(server={"hook_token": None})
    app = create_app(settings)
    token = (Path(settings.storage.state_dir) / "hook_token").read_text().strip()
    assert len(token) >= 24
    with TestClient(app) as client:
        assert (
            client.post(f"/hooks/smartsupp/{token}", content=body(sample("v1"))).status_code == 200
        )
    assert create_app(settings).state.runtime.hook_token == token


def test_an_allowlist_refuses_a_caller_whose_address_is_no_ip_address(
    make_settings: Callable[..., Settings],
) -> None:
    # Litestar's test client reports its peer as "testclient", as a Unix-socket peer has no
    # IP address either: an allowlist cannot admit it.
    settings = make_settings(server={"hook_allowlist": ["127.0.0.0/8"]})
    with TestClient(create_app(settings)) as client:
        response = client.post(f"/hooks/smartsupp/{TOKEN}", content=body(sample("v1")))
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden", "message": "address testclient may not post"}
    assert rows(settings, "conversations") == 0
