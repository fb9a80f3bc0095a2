"""Slack's Claim and Done buttons: signed interactivity requests claim the lead and update the
post once (chat.update on the fake Slack API); anything unsigned, stale or replayed gets 401."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from relay.leads.model import Lead, LeadState
from relay.leads.slack import CLAIM, DONE, ButtonPress, button_press, signature_problem
from relay.store.opening import open_store
from tests.support.app import wait_settled
from tests.support.data import TOKEN, base_sections, body, sample
from tests.support.leads import follow_up
from tests.support.slack import FakeSlack, Reply

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def sign(raw: bytes, timestamp: str, secret: str = SECRET) -> str:
    base = b"v0:" + timestamp.encode() + b":" + raw
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def test_signature_checks_follow_slacks_v0_scheme() -> None:
    raw, now = b"payload=%7B%7D", 1_800_000_000.0
    ts = str(int(now))
    assert signature_problem(SECRET.encode(), ts, raw, sign(raw, ts), now) is None
    assert signature_problem(SECRET.encode(), ts, raw + b"x", sign(raw, ts), now)
    assert signature_problem(SECRET.encode(), ts, raw, sign(raw, ts, "other"), now)
    old = str(int(now) - 301)
    assert "five minutes" in str(signature_problem(SECRET.encode(), old, raw, sign(raw, old), now))
    assert signature_problem(SECRET.encode(), "nan", raw, sign(raw, "nan"), now)
    assert signature_problem(b"", ts, raw, sign(raw, ts), now)
    assert signature_problem(SECRET.encode(), "soon", raw, sign(raw, "soon"), now) == (
        "no usable X-Slack-Request-Timestamp"
    )


def form(payload: object) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


PRESS = {"type": "block_actions", "actions": [{"action_id": CLAIM, "value": "7"}]}


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe",  # not UTF-8
        b"text=hello",  # no payload field
        urlencode({"payload": "{not json"}).encode(),
        form(["block_actions"]),  # JSON, not an object
        form({**PRESS, "type": "view_submission"}),
        form({**PRESS, "actions": []}),
        form({**PRESS, "actions": ["claim"]}),
        form({**PRESS, "actions": [{"action_id": "someone_elses_button", "value": "7"}]}),
        form({**PRESS, "actions": [{"action_id": CLAIM, "value": "seven"}]}),
        form({**PRESS, "actions": [{"action_id": CLAIM, "value": "1" * 19}]}),
    ],
    ids=[
        "not-utf8", "no-payload", "not-json", "not-object", "other-type", "no-actions",
        "action-not-object", "other-button", "value-not-a-number", "value-too-long",
    ],
)  # fmt: skip
def test_anything_but_a_lead_button_press_is_no_press(raw: bytes) -> None:
    assert button_press(raw) is None


def test_a_bare_lead_button_press_is_read_with_defaults() -> None:
    assert button_press(form(PRESS)) == ButtonPress("claim", 7, "Slack", None, None, ())


def leads(settings: Settings) -> list[Lead]:
    store = open_store(settings)
    try:
        return store.leads()
    finally:
        store.close()


def interaction(lead_id: int, blocks: list[dict[str, Any]], action_id: str = CLAIM) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": "U123", "username": "jana", "name": "jana"},
        "container": {"type": "message", "channel_id": "C42", "message_ts": "1700000000.000100"},
        "message": {"ts": "1700000000.000100", "blocks": blocks},
        "actions": [{"action_id": action_id, "value": str(lead_id), "type": "button"}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def post(client: TestClient[Any], raw: bytes, timestamp: str, signature: str) -> Any:
    return client.post(
        "/slack/interactivity",
        content=raw,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": timestamp,
            "X-Slack-Signature": signature,
        },
    )


@pytest.fixture
def settings(tmp_path: Path, fake_slack: FakeSlack, storage_section: dict[str, Any]) -> Settings:
    """On each backend: the Slack buttons' replay check and lead changes are the store's."""
    sections = base_sections(tmp_path / "state")
    sections["storage"] = {**sections["storage"], **storage_section}
    return Settings(
        **sections,
        slack={"token": "xoxb-test", "api_url": fake_slack.url, "signing_secret": SECRET},
        follow_up=follow_up(),
        rules=[
            {
                "name": "missed-to-slack",
                "match": {"category": "missed"},
                "actions": [{"type": "slack", "channel": "#sales"}],
            }
        ],
    )


def test_a_signed_claim_updates_the_post_once_and_bad_requests_change_nothing(
    settings: Settings, fake_slack: FakeSlack
) -> None:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    with TestClient(create_app(settings)) as client:
        client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
        (posted,) = fake_slack.wait_for(1)
        assert posted.path == "/chat.postMessage"
        buttons = posted.body["blocks"][-1]
        assert [e["action_id"] for e in buttons["elements"]] == [CLAIM, DONE]
        (lead,) = leads(settings)
        assert {e["value"] for e in buttons["elements"]} == {str(lead.id)}

        raw = interaction(lead.id, posted.body["blocks"])
        now = str(int(time.time()))
        stale = str(int(time.time()) - 301)
        refused = [
            post(client, raw, now, sign(raw, now, "wrong-secret")),
            post(client, raw, now, "v0=" + "0" * 64),
            post(client, raw, now, ""),
            post(client, raw, stale, sign(raw, stale)),
            post(client, raw + b"&x=1", now, sign(raw, now)),
        ]
        assert [r.status_code for r in refused] == [401] * 5
        assert leads(settings)[0].state is LeadState.OPEN

        accepted = post(client, raw, now, sign(raw, now))
        assert accepted.status_code == 200
        (claimed,) = leads(settings)
        assert (claimed.state, claimed.claimed_by) == (LeadState.CLAIMED, "jana")

        replayed = post(client, raw, now, sign(raw, now))
        assert replayed.status_code == 401
        wait_settled(client)
    assert leads(settings) == [claimed]
    updates = [call for call in fake_slack.calls if call.path == "/chat.update"]
    assert len(updates) == 1
    update = updates[0].body
    assert (update["channel"], update["ts"]) == ("C42", "1700000000.000100")
    assert "Already taken by jana at" in update["text"]
    # The buttons gave way to who took it; Done stays until it is done.
    last = update["blocks"][-1]
    assert [e["action_id"] for e in last["elements"]] == [DONE]
    assert len(fake_slack.calls) == 2


def test_done_from_slack_finishes_the_lead(settings: Settings, fake_slack: FakeSlack) -> None:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    with TestClient(create_app(settings)) as client:
        client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
        (posted,) = fake_slack.wait_for(1)
        (lead,) = leads(settings)
        raw = interaction(lead.id, posted.body["blocks"], DONE)
        now = str(int(time.time()))
        assert post(client, raw, now, sign(raw, now)).status_code == 200
        calls = fake_slack.wait_for(2)
        # A Claim pressed later (a stale message elsewhere) changes nothing and posts nothing.
        late = interaction(lead.id, posted.body["blocks"], CLAIM)
        assert post(client, late, now, sign(late, now)).status_code == 200
        wait_settled(client)
    (done,) = leads(settings)
    assert (done.state, done.done_by) == (LeadState.DONE, "jana")
    assert "Already done by jana" in calls[1].body["text"]
    assert not any(b.get("type") == "actions" for b in calls[1].body["blocks"])
    assert len(fake_slack.calls) == 2


def test_signed_presses_of_other_buttons_or_leads_change_nothing_and_a_failed_update_is_logged(
    settings: Settings, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    with TestClient(create_app(settings)) as client:
        client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
        (posted,) = fake_slack.wait_for(1)
        (lead,) = leads(settings)
        now = str(int(time.time()))
        other = form({"type": "block_actions", "actions": [{"action_id": "poll", "value": "1"}]})
        answer = post(client, other, now, sign(other, now))
        assert (answer.status_code, answer.content) == (200, b"")
        unknown = interaction(lead.id + 1000, posted.body["blocks"])
        answer = post(client, unknown, now, sign(unknown, now))
        assert (answer.status_code, answer.json()) == (200, {"text": "no such lead"})
        assert leads(settings)[0].state is LeadState.OPEN

        # Slack refuses the update of its message: the claim stands, the failure is logged.
        fake_slack.replies = [Reply(body={"ok": False, "error": "message_not_found"})]
        claim = interaction(lead.id, posted.body["blocks"])
        assert post(client, claim, now, sign(claim, now)).status_code == 200
        fake_slack.wait_for(2)
    assert leads(settings)[0].state is LeadState.CLAIMED
    assert f"lead {lead.id}: chat.update failed" in caplog.text
    assert "message_not_found" in caplog.text
