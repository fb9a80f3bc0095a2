"""``relay send-test`` through XOAUTH2, Microsoft Graph and a Teams webhook, against the
loopback fakes, printing what each answered."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from relay.cli import main
from tests.support.config import to_toml
from tests.support.data import base_sections
from tests.support.drip import DripServer
from tests.support.graph import GRAPH_SCOPE, FakeGraph
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET, SCOPE, FakeTokenEndpoint, XOAuth2Handler
from tests.support.slack import FakeSlack, Reply
from tests.support.smtp import SmtpServer, free_port
from tests.support.teams import FakeTeams

MAILBOX = "relay@shop.test"


@pytest.fixture
def token_endpoint() -> Iterator[FakeTokenEndpoint]:
    endpoint = FakeTokenEndpoint()
    endpoint.start()
    yield endpoint
    endpoint.stop()


def send_test(tmp_path: Path, secret: str, *args: str, **sections: dict[str, Any]) -> Any:
    data = {**base_sections(tmp_path / "state"), **sections}
    config = tmp_path / "relay.toml"
    config.write_text(to_toml(data), encoding="utf-8")
    credentials = tmp_path / "credentials"
    credentials.mkdir(exist_ok=True)
    (credentials / "smtp__oauth2_client_secret").write_text(secret, encoding="utf-8")
    return CliRunner().invoke(
        main,
        ["send-test", "--config", str(config), "--to", "owner@shop.test", *args],
        env={"CREDENTIALS_DIRECTORY": str(credentials)},
    )


def oauth_smtp(**extra: Any) -> dict[str, Any]:
    return {
        "from_address": f"Relay <{MAILBOX}>",
        "username": MAILBOX,
        "auth": "oauth2",
        "oauth2_client_id": CLIENT_ID,
        **extra,
    }


def test_send_test_logs_in_with_xoauth2_and_prints_each_reply(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint
) -> None:
    handler = XOAuth2Handler(endpoint=token_endpoint, user=MAILBOX)
    server = SmtpServer(handler, auth_require_tls=False)
    server.start()
    try:
        smtp = oauth_smtp(
            host="127.0.0.1",
            port=server.port,
            oauth2_token_url=token_endpoint.url(),
            oauth2_scope=SCOPE,
        )
        result = send_test(tmp_path, CLIENT_SECRET, smtp=smtp)
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    assert "AUTH XOAUTH2 235 " in result.output
    [received] = handler.messages
    assert received.rcpt_tos == ["owner@shop.test"]
    assert handler.logins == ["tok-1"]


def test_send_test_prints_the_token_endpoints_refusal(
    tmp_path: Path, token_endpoint: FakeTokenEndpoint
) -> None:
    smtp = oauth_smtp(
        host="127.0.0.1", port=9, oauth2_token_url=token_endpoint.url(), oauth2_scope=SCOPE
    )
    handler = XOAuth2Handler(endpoint=token_endpoint, user=MAILBOX)
    server = SmtpServer(handler, auth_require_tls=False)
    server.start()
    try:
        smtp["port"] = server.port
        result = send_test(tmp_path, "not-the-secret", smtp=smtp)
    finally:
        server.stop()
    assert result.exit_code == 1
    assert "FAILED" in result.output
    assert "invalid_client: AADSTS7000215: Invalid client secret provided." in result.output
    assert handler.messages == []


def test_send_test_submits_through_graph_and_posts_a_teams_card(tmp_path: Path) -> None:
    tokens = FakeTokenEndpoint(scope=GRAPH_SCOPE)
    graph = FakeGraph(tokens, MAILBOX)
    teams = FakeTeams()
    for fake in (tokens, graph, teams):
        fake.start()
    try:
        smtp = oauth_smtp(
            transport="graph",
            graph_sender=MAILBOX,
            graph_url=graph.url,
            oauth2_token_url=tokens.url(),
            oauth2_scope=GRAPH_SCOPE,
        )
        result = send_test(
            tmp_path, CLIENT_SECRET, "--teams", smtp=smtp, teams={"webhook_url": teams.url()}
        )
    finally:
        for fake in (tokens, graph, teams):
            fake.stop()
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(
        f"ok     email to owner@shop.test via Microsoft Graph sendMail as {MAILBOX}"
    )
    assert lines[1] == "ok     Teams card via the Workflows webhook: the webhook accepted the card"
    [submitted] = graph.submitted
    assert submitted.message["To"] == "owner@shop.test"
    assert submitted.message["Subject"] == "relay test message"
    assert teams.invalid == [] and len(teams.cards) == 1


def test_send_test_teams_without_a_url_says_nothing_was_sent(tmp_path: Path) -> None:
    result = send_test(tmp_path, CLIENT_SECRET, "--teams")
    assert result.exit_code == 1
    assert "FAILED Teams card: NOT sent: [teams] has no webhook_url" in result.output


# --- Slack, Teams and the address, against loopback fakes (no SMTP needed: the email line is
# the outbox's "NOT sent") ---------------------------------------------------------------------


def send_test_slack(tmp_path: Path, *args: str, **slack: Any) -> Any:
    data = {**base_sections(tmp_path / "state"), "slack": slack}
    config = tmp_path / "relay.toml"
    config.write_text(to_toml(data), encoding="utf-8")
    command = ["send-test", "--config", str(config), "--to", "owner@shop.test", *args]
    return CliRunner().invoke(main, command)


def slack_line(result: Any) -> str:
    email, slack = result.output.splitlines()
    assert email.startswith("FAILED email to owner@shop.test: NOT sent: [smtp] has no host")
    return str(slack)


def test_send_test_posts_to_slack_with_the_bot_token(tmp_path: Path, fake_slack: FakeSlack) -> None:
    fake_slack.replies = [Reply(body={"ok": True, "channel": "C1", "ts": "1.2"})]
    result = send_test_slack(
        tmp_path, "--channel", "#sales", token="xoxb-test", api_url=fake_slack.url
    )
    assert slack_line(result) == (
        "ok     Slack message to #sales (chat.postMessage): ok=True channel=C1 ts=1.2"
    )
    [call] = fake_slack.calls
    assert (call.path, call.body["channel"]) == ("/chat.postMessage", "#sales")


def test_send_test_posts_to_a_slack_incoming_webhook(tmp_path: Path, fake_slack: FakeSlack) -> None:
    fake_slack.replies = [Reply(body="ok")]
    result = send_test_slack(tmp_path, "--channel", "#x", webhook_url=f"{fake_slack.url}hook")
    assert slack_line(result) == "ok     Slack incoming webhook: HTTP 200 ok"


def test_send_test_prints_slacks_refusal(tmp_path: Path, fake_slack: FakeSlack) -> None:
    fake_slack.replies = [Reply(body={"ok": False, "error": "channel_not_found"})]
    result = send_test_slack(
        tmp_path, "--channel", "#gone", token="xoxb-test", api_url=fake_slack.url
    )
    assert result.exit_code == 1
    assert slack_line(result) == (
        "FAILED Slack message to #gone: Slack refused: {'ok': False, 'error': 'channel_not_found'}"
    )


def test_send_test_says_when_slack_cannot_be_reached(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    result = send_test_slack(tmp_path, "--channel", "#x", webhook_url=url)
    assert result.exit_code == 1
    assert slack_line(result).startswith("FAILED Slack message to #x: connection failed: ")


def test_send_test_says_when_the_teams_webhook_cannot_be_reached(tmp_path: Path) -> None:
    data = {**base_sections(tmp_path / "state"), "teams": {"webhook_url": "http://127.0.0.1:9/x"}}
    config = tmp_path / "relay.toml"
    config.write_text(to_toml(data), encoding="utf-8")
    command = ["send-test", "--config", str(config), "--to", "owner@shop.test", "--teams"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    teams = result.output.splitlines()[1]
    assert teams.startswith("FAILED Teams card via the Workflows webhook: ")
    assert "connection failed" in teams


def test_send_test_gives_up_on_a_dripping_teams_webhook_at_its_deadline(tmp_path: Path) -> None:
    """A webhook that answers a byte at a time, each well within any per-read timeout: the
    whole post is bounded by ``[teams] timeout_seconds``, as the worker's sends are."""
    drip = DripServer(interval=0.2)
    drip.start()
    try:
        teams = {"webhook_url": drip.url("/teams"), "timeout_seconds": 1.0}
        data = {**base_sections(tmp_path / "state"), "teams": teams}
        config = tmp_path / "relay.toml"
        config.write_text(to_toml(data), encoding="utf-8")
        command = ["send-test", "--config", str(config), "--to", "owner@shop.test", "--teams"]
        result = CliRunner().invoke(main, command)
        finished = drip.finished
    finally:
        drip.stop()
    assert result.exit_code == 1
    assert result.output.splitlines()[1] == (
        "FAILED Teams card via the Workflows webhook: no complete answer within the 1 s deadline"
    )
    assert finished == 0


def test_send_test_refuses_an_address_that_is_not_one(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(to_toml(base_sections(tmp_path / "state")), encoding="utf-8")
    command = ["send-test", "--config", str(config), "--to", "not an address"]
    result = CliRunner().invoke(main, command)
    assert result.exit_code == 1
    assert result.output.startswith("FAILED email: --to: ")
