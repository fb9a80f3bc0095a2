"""Teams delivery: an Adaptive Card 1.4 per delivery, checked against the schema by a fake
Workflows webhook; rate limits and refusals; hostile conversation content stays inert."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings, load_settings
from relay.intake.payload import parse
from relay.model.category import Category
from relay.model.content import TeamsContent
from relay.render.i18n import Translator
from relay.render.teams import CARD_BYTES, build_card
from relay.render.view import build_view
from tests.support.app import wait_settled
from tests.support.config import to_toml
from tests.support.data import TOKEN, base_sections, sample
from tests.support.store import deliveries
from tests.support.teams import FakeTeams, TeamsAnswer, card_validator

HOOK = f"/hooks/smartsupp/{TOKEN}"
TEAMS_RULE = [{"name": "to-teams", "actions": [{"type": "teams"}]}]
HOSTILE = (
    "<b>bold</b><script>alert(1)</script> **stars** [click](https://evil.test) "
    "<at>General</at> {{DATE(2017-02-14T06:08:39Z, SHORT)}} ${secret} @channel"
)


@pytest.fixture
def fake_teams() -> Iterator[FakeTeams]:
    teams = FakeTeams()
    teams.start()
    yield teams
    teams.stop()


def low_rated(**changes: Any) -> bytes:
    data = sample("v2")
    data["channel"]["rating"] = 1
    data["channel"]["ratingDesc"] = "Nobody answered my question"
    for message in data["messages"]:
        if message.get("type") == "visitor":
            message["content"] = "Can I return the blue jacket? Order 1234"
            break
    data.update(changes)
    return json.dumps(data).encode()


def texts(node: Any) -> list[str]:
    """Every string a Teams host shows: TextRun and TextBlock texts, fact titles and values."""
    if isinstance(node, list):
        return [t for item in node for t in texts(item)]
    if not isinstance(node, dict):
        return []
    found = [node["text"]] if node.get("type") in ("TextRun", "TextBlock") else []
    return found + [t for value in node.values() for t in texts(value)]


def all_text(card: dict[str, Any]) -> str:
    return "\n".join(texts(card))


def deliver(settings: Settings, *bodies: bytes) -> None:
    with TestClient(create_app(settings)) as client:
        for body in bodies:
            assert client.post(HOOK, content=body).json()["deliveries"] == 1
        wait_settled(client)


def test_one_valid_card_per_delivery_with_header_ask_contact_and_facts(
    make_settings: Callable[..., Settings], fake_teams: FakeTeams
) -> None:
    settings = make_settings(teams={"webhook_url": fake_teams.url()}, rules=TEAMS_RULE)
    second = json.loads(low_rated())
    second["channel"]["id"] = 4242
    deliver(settings, low_rated(), json.dumps(second).encode())
    assert fake_teams.invalid == []
    assert len(fake_teams.cards) == 2
    assert [row.status for row in deliveries(settings)] == ["sent", "sent"]
    card = fake_teams.cards[0]
    assert card["version"] == "1.4"
    header = texts(card["body"][0])
    assert header[0] == f"Low-rated chat: {json.loads(low_rated())['visitor']['name']}"
    assert "★☆☆☆☆" in header[1]
    shown = all_text(card)
    assert "Can I return the blue jacket? Order 1234" in shown
    assert "Nobody answered my question" in shown
    visitor = json.loads(low_rated())["visitor"]
    assert visitor["email"] in shown
    assert "Rating: " in shown and "Visitor: " in shown
    assert fake_teams.paths[0].startswith("/workflows/flow-1/triggers/manual/paths/invoke?sig=")


def test_hostile_content_is_plain_text_in_the_card(
    make_settings: Callable[..., Settings], fake_teams: FakeTeams
) -> None:
    data = json.loads(low_rated())
    data["visitor"]["name"] = HOSTILE
    data["visitor"]["note"] = HOSTILE
    data["channel"]["ratingDesc"] = HOSTILE
    for message in data["messages"]:
        message["content"] = HOSTILE
    settings = make_settings(teams={"webhook_url": fake_teams.url()}, rules=TEAMS_RULE)
    deliver(settings, json.dumps(data).encode())
    assert fake_teams.invalid == []
    [card] = fake_teams.cards
    raw = json.dumps(card, ensure_ascii=False)
    # Only TextRuns carry conversation text: hosts never read their text as Markdown.
    assert '"TextBlock"' not in raw and '"FactSet"' not in raw
    assert "actions" not in card and "msteams" not in card
    shown = all_text(card)
    for active in ("{{", "${", "<at>", "</at>"):
        assert active not in raw
    # The words themselves are still there, to be read.
    assert "<b>bold</b><script>alert(1)</script> **stars** [click](https://evil.test)" in shown
    assert "{\u200b{DATE(2017-02-14T06:08:39Z, SHORT)}}" in shown
    assert "$\u200b{secret}" in shown and "<\u200bat>General<\u200b/at>" in shown


def test_429_waits_for_retry_after_and_5xx_is_retried_then_delivered_once(
    make_settings: Callable[..., Settings], fake_teams: FakeTeams
) -> None:
    fake_teams.answers = [
        TeamsAnswer(429, b"Too many requests", {"Retry-After": "0"}),
        TeamsAnswer(502, b"Bad gateway"),
    ]
    settings = make_settings(teams={"webhook_url": fake_teams.url()}, rules=TEAMS_RULE)
    deliver(settings, low_rated())
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("sent", 3)
    assert len(fake_teams.cards) == 1 and fake_teams.posts == 3


def test_a_429_retry_after_is_kept_as_the_next_attempt(
    make_settings: Callable[..., Settings], fake_teams: FakeTeams
) -> None:
    fake_teams.answers = [TeamsAnswer(429, b"Too many requests", {"Retry-After": "120"})]
    settings = make_settings(teams={"webhook_url": fake_teams.url()}, rules=TEAMS_RULE)
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=low_rated()).json()["deliveries"] == 1

        async def attempted() -> None:
            await client.app.state.runtime.worker.attempted(1)

        client.blocking_portal.call(attempted)
        [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("retrying", 1)
    assert row.next_attempt_at - row.updated_at >= 120.0
    assert row.last_error == "Teams rate limit: retry after 120 s"
    assert fake_teams.cards == []


def test_a_refused_card_is_dead_and_the_error_hides_the_url_signature(
    make_settings: Callable[..., Settings], fake_teams: FakeTeams
) -> None:
    fake_teams.answers = [TeamsAnswer(404, b"Flow not found")]
    settings = make_settings(teams={"webhook_url": fake_teams.url()}, rules=TEAMS_RULE)
    deliver(settings, low_rated())
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error == "Teams refused the card: HTTP 404: Flow not found"


def test_a_named_destination_reads_its_webhook_url_from_a_credential(
    tmp_path: Path, fake_teams: FakeTeams
) -> None:
    sections = base_sections(tmp_path / "state")
    path = tmp_path / "relay.toml"
    path.write_text(
        to_toml(sections)
        + '[destinations.teams.support]\ntimeout_seconds = 5\n\n[[rules]]\nname = "t"\n'
        '[[rules.actions]]\ntype = "teams"\ndestination = "support"\n',
        encoding="utf-8",
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    secret = credentials / "destinations__teams__support__webhook_url"
    secret.write_text(fake_teams.url("support"), encoding="utf-8")
    settings = load_settings(path, secrets_dir=credentials)
    deliver(settings, low_rated())
    assert len(fake_teams.cards) == 1
    assert fake_teams.paths == ["/workflows/support/triggers/manual/paths/invoke?sig=s3cr3t"]


def test_without_a_webhook_url_cards_go_to_the_outbox(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(rules=TEAMS_RULE)
    deliver(settings, low_rated())
    [row] = deliveries(settings)
    assert row.status == "sent"
    [written] = (Path(settings.storage.state_dir) / "outbox").glob("*-teams.json")
    body = json.loads(written.read_text(encoding="utf-8"))
    assert not list(card_validator().iter_errors(body))


def test_a_long_conversation_keeps_the_newest_messages_within_the_size_limit() -> None:
    data = sample("v1")
    template = data["messages"][0]
    data["messages"] = [
        {**template, "type": "visitor", "content": f"message {i} " + "x" * 5000} for i in range(200)
    ]
    conversation = parse(json.dumps(data).encode())
    view = build_view(conversation, Category.MISSED, Translator("en", UTC))
    body = TeamsContent(build_card(view, Translator("en", UTC))).body()
    assert not list(card_validator().iter_errors(body))
    assert len(json.dumps(body["attachments"][0]["content"]).encode()) <= CARD_BYTES
    shown = all_text(body["attachments"][0]["content"])
    excerpt = shown.split("Last messages", 1)[1]
    assert "message 199 " in excerpt and "message 189 " not in excerpt
    assert "earlier" in shown


def test_a_lead_card_has_a_claim_button_and_open_in_smartsupp(
    make_settings: Callable[..., Settings], fake_teams: FakeTeams
) -> None:
    from tests.support.leads import PUBLIC_URL, follow_up  # noqa: PLC0415

    settings = make_settings(
        teams={"webhook_url": fake_teams.url()},
        rules=[{"name": "missed-to-teams", "actions": [{"type": "teams"}]}],
        render={"conversation_url": "https://app.smartsupp.com/chats/{chat_id}"},
        follow_up=follow_up(),
    )
    data = json.loads(low_rated())
    data["channel"]["isMissed"] = True
    deliver(settings, json.dumps(data).encode())
    assert fake_teams.invalid == []
    [card] = fake_teams.cards
    claim, smartsupp = card["actions"]
    assert claim["type"] == smartsupp["type"] == "Action.OpenUrl"
    assert claim["url"].startswith(f"{PUBLIC_URL}/leads/")
    assert smartsupp == {
        "type": "Action.OpenUrl",
        "title": "Open in Smartsupp",
        "url": f"https://app.smartsupp.com/chats/{data['channel']['id']}",
    }


def test_a_card_for_a_bare_conversation_is_valid_and_has_only_what_is_known() -> None:
    conversation = parse(b'{"accountId":1,"channel":{"id":2,"isMissed":true}}')
    view = build_view(conversation, Category.MISSED, Translator("en", UTC))
    body = TeamsContent(build_card(view, Translator("en", UTC))).body()
    assert not list(card_validator().iter_errors(body))
    card = body["attachments"][0]["content"]
    texts = ["".join(run["text"] for run in block.get("inlines", [])) for block in card["body"]]
    # The header (in its container), the one fact known, no messages, the chat's ids.
    assert texts == [
        "",
        "Visitor: Unknown visitor",
        "The conversation has no messages.",
        "Chat 2 · account 1",
    ]
    assert "actions" not in card


def test_messages_that_grow_when_encoded_shrink_the_excerpt_from_the_oldest() -> None:
    data = sample("v1")
    template = data["messages"][0]
    # Each "ř" is six bytes in the card's JSON (\u0159): ten messages would not fit.
    data["messages"] = [
        {**template, "type": "visitor", "content": f"message {i} " + "ř" * 5000} for i in range(12)
    ]
    view = build_view(parse(json.dumps(data).encode()), Category.MISSED, Translator("en", UTC))
    body = TeamsContent(build_card(view, Translator("en", UTC))).body()
    card = body["attachments"][0]["content"]
    assert not list(card_validator().iter_errors(body))
    assert len(json.dumps(card).encode()) <= CARD_BYTES
    excerpt = all_text(card).split("Last messages", 1)[1]
    kept = [i for i in range(12) if f"message {i} " in excerpt]
    assert kept == list(range(12 - len(kept), 12)) and 0 < len(kept) < 10  # the newest ones
    assert excerpt.startswith(f" (… {12 - len(kept)} earlier messages not shown)\n")
