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
