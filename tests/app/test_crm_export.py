"""HubSpot, Pipedrive, Freshdesk and Zendesk end to end: the hook in, the worker, a fake of
each API on 127.0.0.1 that checks every request, and the ids stored with the deliveries."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import DestinationSettings, Settings
from relay.intake.payload import parse
from relay.model.category import Category
from relay.model.errors import RateLimited
from relay.render.crm import render_crm
from relay.routing.rules import Rule
from relay.senders.crm.registry import crm_senders
from tests.support.app import wait_settled
from tests.support.crm_fake import FakeApi
from tests.support.crm_systems import SYSTEMS, System
from tests.support.data import TOKEN, body
from tests.support.paths import SAMPLES
from tests.support.store import select_rows


def missed_chat() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "missed-chat.json").read_text("utf-8"))
    return data


@pytest.fixture(params=sorted(SYSTEMS))
def system(request: pytest.FixtureRequest) -> System:
    return SYSTEMS[request.param]


@pytest.fixture
def api(system: System) -> Iterator[FakeApi]:
    fake = system.make().start()
    yield fake
    fake.stop()


def crm_settings(
    make_settings: Callable[..., Settings],
    system: System,
    api: FakeApi,
    *,
    state: Path | None = None,
    **destination: Any,
) -> Settings:
    action: dict[str, Any] = {
        "type": system.name,
        "destination": "main",
        "link": "https://support.example.com/chats/{{ account_id }}/{{ chat_id }}",
    }
    if system.name in ("freshdesk", "zendesk"):
        action |= {"tags": ["smartsupp", "missed"], "priority": "high"}
    extra = {"storage": {"state_dir": str(state)}} if state else {}
    return make_settings(
        destinations={system.name: {"main": {**system.destination(api), **destination}}},
        rules=[{"name": "export", "actions": [action]}],
        **extra,
    )


def post(client: TestClient[Any], data: dict[str, Any]) -> None:
    response = client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
    assert response.status_code == 200, response.text


def deliveries(settings: Settings) -> list[dict[str, Any]]:
    return select_rows(
        settings, "SELECT id, status, last_error, external_ref, sent_to FROM deliveries ORDER BY id"
    )


def run(settings: Settings, *conversations: dict[str, Any]) -> list[dict[str, Any]]:
    with TestClient(create_app(settings)) as client:
        for data in conversations:
            post(client, data)
            wait_settled(client)
    return deliveries(settings)


def test_a_missed_chat_with_an_email_makes_one_object_with_the_transcript(
    make_settings: Callable[..., Settings], system: System, api: FakeApi
) -> None:
    rows = run(crm_settings(make_settings, system, api), missed_chat())
    assert [r["status"] for r in rows] == ["sent"]
    assert api.problems == []
    assert set(system.counts(api).values()) == {1}, system.counts(api)
    [text] = system.texts(api)
    assert "Hello, do you ship to Slovakia? I need 40 units by Friday." in text
    assert "smartsupp-208-55041" in text
    link = "https://support.example.com/chats/208/55041"
    assert f'Conversation: <a href="{link}">{link}</a>' in text
    assert rows[0]["external_ref"] is not None


def test_hubspot_contact_gets_the_visitor_and_the_mapped_variables(
    make_settings: Callable[..., Settings],
) -> None:
    system = SYSTEMS["hubspot"]
    api = system.make().start()
    try:
        run(crm_settings(make_settings, system, api), missed_chat())
    finally:
        api.stop()
    [contact] = api.contacts.values()  # type: ignore[attr-defined]
    props = contact["properties"]
    assert props["email"] == "dusan@domain.com"
    assert (props["firstname"], props["lastname"]) == ("Dusan", "Kmet")
    assert props["smartsupp_package"] == "pro"
    [note] = api.notes.values()  # type: ignore[attr-defined]
    assert note["contacts"] == [contact["id"]]


def test_the_same_conversation_again_and_from_a_relay_without_the_id_keeps_one(
    make_settings: Callable[..., Settings], system: System, api: FakeApi, tmp_path: Path
) -> None:
    settings = crm_settings(make_settings, system, api)
    run(settings, missed_chat(), missed_chat())
    # A relay with a fresh store has no stored id: it must find the object by a search.
    other = crm_settings(make_settings, system, api, state=tmp_path / "other")
    rows = run(other, missed_chat())
    assert [r["status"] for r in rows] == ["sent"]
    assert api.problems == []
    assert set(system.counts(api).values()) == {1}, system.counts(api)
    assert len(system.texts(api)) == 1
    assert rows[0]["external_ref"] == deliveries(settings)[0]["external_ref"]


@pytest.mark.usefixtures("backend")  # on each store: the id found through known_external_ref
def test_a_new_version_adds_to_the_same_object(
    make_settings: Callable[..., Settings], system: System, api: FakeApi
) -> None:
    first = missed_chat()  # answered after all: "normal"; rated low later: "low-rated"
    first["channel"]["isMissed"] = False
    rated = copy.deepcopy(first)
    rated["channel"]["rating"] = 2
    rated["channel"]["ratingDesc"] = "Nobody answered"
    rows = run(crm_settings(make_settings, system, api), first, rated)
    assert [r["status"] for r in rows] == ["sent", "sent"]
    assert rows[0]["external_ref"] == rows[1]["external_ref"]
    assert api.problems == []
    assert set(system.counts(api).values()) == {1}, system.counts(api)
    texts = system.texts(api)
    assert any("Rating: 2: Nobody answered" in t for t in texts)
    # HubSpot rewrites its one note; the others add a note or comment to the object.
    assert len(texts) == (1 if system.name == "hubspot" else 2)


def test_without_an_email_crms_skip_and_help_desks_use_the_placeholder(
    make_settings: Callable[..., Settings], system: System, api: FakeApi
) -> None:
    data = missed_chat()
    data["visitor"]["email"] = None
    rows = run(crm_settings(make_settings, system, api), data)
    assert api.problems == []
    [row] = rows
    assert row["status"] == "sent"
    if system.needs_email:
        assert row["sent_to"] == "skipped"
        assert "left no email address" in row["last_error"]
        assert api.requests == []
    else:
        assert row["sent_to"] is None
        assert set(system.counts(api).values()) == {1}
        requesters = [
            t.get("email") or t.get("requester", {}).get("email")
            for t in api.tickets.values()  # type: ignore[attr-defined]
        ]
        assert requesters == ["smartsupp-visitor@example.com"]


def test_429_with_retry_after_is_retried_and_still_makes_one(
    make_settings: Callable[..., Settings], system: System, api: FakeApi
) -> None:
    api.faults.append(api.rate_limited(1))
    rows = run(crm_settings(make_settings, system, api), missed_chat())
    assert [r["status"] for r in rows] == ["sent"]
    assert api.problems == []
    assert set(system.counts(api).values()) == {1}
    assert len(api.requests) >= 2


def test_401_is_dead_with_the_api_error_text(
    make_settings: Callable[..., Settings], system: System, api: FakeApi
) -> None:
    api.faults.append(api.unauthorized())
    [row] = run(crm_settings(make_settings, system, api), missed_chat())
    assert row["status"] == "dead"
    assert "HTTP 401" in row["last_error"]
    assert system.unauthorized_text in row["last_error"]
    assert len(api.requests) == 1
    for secret in (system.destination(api).get(k) for k in ("token", "api_token", "api_key")):
        if secret:
            assert secret not in row["last_error"]


HOSTILE_NAME = "<script>alert(1)</script> {{ 7*7 }} {% for x in y %}" + "N" * 600


def test_hostile_content_arrives_inert_and_within_the_field_limits(
    make_settings: Callable[..., Settings], system: System, api: FakeApi
) -> None:
    data = missed_chat()
    data["visitor"]["name"] = HOSTILE_NAME
    data["messages"][0]["content"] = (
        "<img src=x onerror=alert(1)>{{ config.items() }}\r\nSubject: injected\n<@U123>"
    )
    data["messages"][1]["content"] = "x" * 400_000
    rows = run(crm_settings(make_settings, system, api), data)
    assert [r["status"] for r in rows] == ["sent"], rows
    assert api.problems == []  # every field within the fake's (the API's) limits
    [text] = system.texts(api)
    assert "<img" not in text and "<script>" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;{{ config.items() }}" in text
    assert "smartsupp-208-55041" in text  # the marker survives the cut
    for title in system.titles(api):
        assert len(title) <= 255
        assert "\n" not in title and "\r" not in title
        assert "{{ 7*7 }}" in title and "49" not in title


async def test_a_sender_reports_429_with_the_servers_retry_after(
    system: System, api: FakeApi
) -> None:
    """What the worker schedules the retry by: the seconds the API asked for, and its text."""
    named = DestinationSettings(**{system.name: {"main": system.destination(api)}})
    [sender] = crm_senders(named).values()
    api.faults.append(api.rate_limited(37))
    rule = Rule(name="r", actions=[{"type": system.name, "destination": "main"}])
    raw = body(missed_chat())
    content = render_crm(rule.actions[0], raw, parse(raw), Category.MISSED)  # type: ignore[arg-type]
    with pytest.raises(RateLimited) as caught:
        await sender.send(content, delivery_id=1)
    assert caught.value.retry_after == 37.0
    assert "HTTP 429" in caught.value.message
    assert api.problems == []


def test_zendesk_a_later_version_of_a_closed_ticket_opens_a_follow_up(
    make_settings: Callable[..., Settings],
) -> None:
    system = SYSTEMS["zendesk"]
    api = system.make().start()
    first = missed_chat()
    first["channel"]["isMissed"] = False
    rated = copy.deepcopy(first)
    rated["channel"]["rating"] = 1
    try:
        settings = crm_settings(make_settings, system, api)
        with TestClient(create_app(settings)) as client:
            post(client, first)
            wait_settled(client)
            [ticket] = api.tickets.values()  # type: ignore[attr-defined]
            ticket["status"] = "closed"  # an agent solved and closed it meanwhile
            post(client, rated)
            wait_settled(client)
    finally:
        api.stop()
    rows = deliveries(settings)
    assert [r["status"] for r in rows] == ["sent", "sent"]
    assert api.problems == []  # no update of the closed ticket was tried
    closed, follow_up = api.tickets.values()  # type: ignore[attr-defined]
    assert follow_up["via_followup_source_id"] == closed["id"]
    assert follow_up["external_id"] == closed["external_id"] == "smartsupp-208-55041"
    assert rows[1]["external_ref"] == str(follow_up["id"])
