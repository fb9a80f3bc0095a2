"""`relay preview` prints the decision and writes what would be sent, sending nothing."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from relay.cli.main import main
from tests.support.paths import SAMPLES


def test_preview_of_a_missed_chat_writes_the_email(tmp_path: Path) -> None:
    out = tmp_path / "preview"
    result = CliRunner().invoke(
        main, ["preview", str(SAMPLES / "missed-chat.json"), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "category missed" in result.output
    assert "rule missed-and-offline-to-sales: email to sales@localhost" in result.output
    (eml,) = out.glob("*.eml")
    assert b"Subject: [Missed chat] Dusan Kmet (CZ)" in eml.read_bytes()


def test_preview_of_a_low_rated_chat_writes_the_slack_message(tmp_path: Path) -> None:
    data = json.loads((SAMPLES / "doc-example-v2.json").read_text())
    data["channel"]["rating"] = 1
    payload = tmp_path / "low.json"
    payload.write_text(json.dumps(data))
    result = CliRunner().invoke(main, ["preview", str(payload), "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    assert "category low-rated" in result.output
    (slack,) = (tmp_path / "p").glob("*.json")
    assert json.loads(slack.read_text())["channel"] == "#customer-feedback"


def test_preview_of_a_normal_chat_sends_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["preview", str(SAMPLES / "doc-example-v1.json"), "--out", str(tmp_path / "p")]
    )
    assert result.exit_code == 0
    assert "no rule matches" in result.output


def test_preview_of_a_bad_body_names_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"accountId": 1}')
    result = CliRunner().invoke(main, ["preview", str(bad)])
    assert result.exit_code == 1
    assert "missing_field" in result.output


EVERY_KIND = """
[destinations.webhook.crm]
url = "http://127.0.0.1:9/hook"

[destinations.hubspot.sales]
token = "pat-test"

[[rules]]
name = "everywhere"
actions = [
    { type = "teams" },
    { type = "webhook", url = "https://user:secret@hooks.example.test/in?token=secret" },
    { type = "webhook", destination = "crm" },
    { type = "hubspot", destination = "sales" },
    { type = "archive", path = "chats.jsonl" },
]
"""


def test_preview_writes_each_kind_of_action_and_names_where_it_would_go(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(
        f'[storage]\nstate_dir = "{tmp_path / "state"}"\n' + EVERY_KIND, encoding="utf-8"
    )
    out = tmp_path / "p"
    args = ["preview", str(SAMPLES / "doc-example-v1.json"), "--config", str(config)]
    result = CliRunner().invoke(main, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1:6] == [
        f"rule everywhere: teams to (Teams webhook) -> {out}/01-everywhere-teams.json",
        "rule everywhere: webhook to https://user:***@hooks.example.test/in?token=***"
        f" -> {out}/02-everywhere-webhook.json",
        f"rule everywhere: webhook to destination 'crm' -> {out}/03-everywhere-webhook.json",
        f"rule everywhere: hubspot to destination 'sales' -> {out}/04-everywhere-hubspot.html",
        f"rule everywhere: archive to chats.jsonl -> {out}/05-everywhere-archive.jsonl",
    ]
    assert "secret" not in result.output
    card = json.loads((out / "01-everywhere-teams.json").read_text(encoding="utf-8"))
    assert card["type"] == "message"
    posted = json.loads((out / "03-everywhere-webhook.json").read_text(encoding="utf-8"))
    assert posted["accountId"] == 208  # the conversation as received
    note = (out / "04-everywhere-hubspot.html").read_text(encoding="utf-8")
    assert note.startswith("<h1>")
    line = json.loads((out / "05-everywhere-archive.jsonl").read_text(encoding="utf-8"))
    assert (line["conversation_key"], line["conversation"]["accountId"]) == ("208-55039", 208)
