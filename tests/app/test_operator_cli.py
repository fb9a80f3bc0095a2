"""The operator commands (queue, retry, replay, quarantine, purge) on a store the app filled."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar.testing import TestClient

from relay.app import create_app, database_path
from relay.cli.main import main
from relay.config.settings import Settings
from relay.store.opening import open_store
from tests.support.app import wait_settled
from tests.support.config import write_config
from tests.support.data import TOKEN, sample
from tests.support.smtp import SmtpServer
from tests.support.store import deliveries, quarantine, select_rows

HOOK = f"/hooks/smartsupp/{TOKEN}"
RAW_BODIES = "SELECT raw FROM conversations"


def missed(channel_id: int, marker: str) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = channel_id
    data["channel"]["isMissed"] = True
    data["visitor"]["note"] = marker
    return json.dumps(data).encode()


def relay(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, [*args, "--config", str(config)], catch_exceptions=False)


def run_app_until_settled(settings: Settings, *bodies: bytes) -> None:
    with TestClient(create_app(settings)) as client:
        for raw in bodies:
            client.post(HOOK, content=raw)
        wait_settled(client)


@pytest.fixture
def filled(
    tmp_path: Path, smtp_server: SmtpServer, storage_section: dict[str, Any]
) -> tuple[Path, Settings]:
    """Conversation 1 refused with 550 (dead), conversation 2 sent, one quarantined body; on
    each store (tests/conftest.py: backend)."""
    config, settings = write_config(
        tmp_path,
        storage=storage_section,
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"},
        routing={"sales_inbox": "sales@shop.test"},
    )
    smtp_server.handler.data_replies = ["550 5.1.1 <sales@shop.test>: mailbox unknown"]
    run_app_until_settled(settings, missed(1, "PERSONAL-NOTE-ONE"))
    run_app_until_settled(settings, missed(2, "PERSONAL-NOTE-TWO"), b'{"broken": ')
    return config, settings


def test_queue_lists_counts_and_the_dead_delivery_with_the_server_reply(
    filled: tuple[Path, Settings],
) -> None:
    config, _ = filled
    result = relay(config, "queue")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "pending=0  sending=0  retrying=0  sent=1  outbox=0  dead=1"
    assert "dead" in lines[2] and "208-1" in lines[2] and "missed-and-offline-to-sales" in lines[2]
    assert lines[3].strip() == (
        "last error: SMTP server refused: 550 5.1.1 <sales@shop.test>: mailbox unknown"
    )
    assert "208-2" not in result.output
    assert "208-2" in relay(config, "queue", "--all").output
    limited = relay(config, "queue", "--all", "--limit", "1").output
    assert limited.splitlines()[-1] == "... 1 more not shown (--limit)"


def test_retry_by_id_requeues_a_dead_delivery_which_is_then_sent(
    filled: tuple[Path, Settings], smtp_server: SmtpServer
) -> None:
    config, settings = filled
    dead = next(row for row in deliveries(settings) if row.status == "dead")
    result = relay(config, "retry", str(dead.id))
    assert (result.exit_code, result.output) == (0, "1 deliveries scheduled for retry\n")
    requeued = next(row for row in deliveries(settings) if row.id == dead.id)
    assert (requeued.status, requeued.attempts) == ("pending", 0)
    run_app_until_settled(settings)
    assert {row.status for row in deliveries(settings)} == {"sent"}
    assert len(smtp_server.handler.messages) == 2


def test_retry_refuses_sent_and_unknown_ids_and_retries_all_dead(
    filled: tuple[Path, Settings],
) -> None:
    config, settings = filled
    sent = next(row for row in deliveries(settings) if row.status == "sent")
    result = CliRunner().invoke(main, ["retry", str(sent.id), "999", "--config", str(config)])
    assert result.exit_code == 1
    assert f"delivery {sent.id} is sent, not retried (relay replay" in result.output
    assert "no delivery 999" in result.output
    assert "0 deliveries scheduled for retry" in result.output
    assert relay(config, "retry", "--dead").output == "1 deliveries scheduled for retry\n"
    assert CliRunner().invoke(main, ["retry", "--config", str(config)]).exit_code == 2


@pytest.mark.parametrize("how", ["key", "id"])
def test_replay_delivers_a_conversation_again(
    filled: tuple[Path, Settings], smtp_server: SmtpServer, how: str
) -> None:
    config, settings = filled
    sent = next(row for row in deliveries(settings) if row.status == "sent")
    target = sent.conv_key if how == "key" else str(sent.conversation_id)
    result = relay(config, "replay", target)
    assert result.exit_code == 0
    assert result.output == (
        f"conversation 208-2 (id {sent.conversation_id}, missed): 1 deliveries planned\n"
    )
    run_app_until_settled(settings)
    first, again = smtp_server.handler.messages
    assert first.message["Subject"] == again.message["Subject"]
    # A deliberate resend gets its own Message-ID, so downstream deduplication keeps it.
    assert first.message["Message-ID"] != again.message["Message-ID"]
    assert (
        "no stored conversation 9-9"
        in CliRunner().invoke(main, ["replay", "9-9", "--config", str(config)]).output
    )


def test_quarantine_lists_and_shows_a_refused_body(filled: tuple[Path, Settings]) -> None:
    config, settings = filled
    [row] = quarantine(settings)
    listing = relay(config, "quarantine").output
    assert f"{row.id:>6}" in listing
    assert "invalid_json" in listing and "testclient" in listing
    shown = relay(config, "quarantine", "show", str(row.id)).output
    assert "reason: invalid_json" in shown
    assert "message: body is not valid JSON" in shown
    assert shown.rstrip().endswith('{"broken":')
    missing = CliRunner().invoke(main, ["quarantine", "--config", str(config), "show", "77"])
    assert missing.exit_code == 1 and "no quarantine entry 77" in missing.output


def test_purge_removes_old_conversations_and_their_personal_data(
    filled: tuple[Path, Settings], smtp_server: SmtpServer, backend: str
) -> None:
    config, settings = filled
    # Conversation 3 is greylisted, still waiting for delivery: it is kept.
    smtp_server.handler.data_replies = ["451 4.7.1 Greylisted"] * 1000
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=missed(3, "PERSONAL-NOTE-THREE"))
        smtp_server.handler.wait_for_attempts(3)
    kept_before = {row.conv_key for row in deliveries(settings)}
    result = relay(config, "purge", "--older-than", "0")
    assert result.exit_code == 0
    assert result.output == (
        "purged 2 conversations, 0 outbox files and 1 quarantined bodies older than 0 days\n"
    )
    assert [row.conv_key for row in deliveries(settings)] == ["208-3"]
    assert "208-1" in kept_before
    if backend == "sqlite":  # not even in the database's free pages or its log
        db = database_path(settings)
        stored = b"".join(p.read_bytes() for p in db.parent.glob("relay.db*"))
    else:
        stored = b"".join(bytes(row["raw"]) for row in select_rows(settings, RAW_BODIES))
    assert b"PERSONAL-NOTE-ONE" not in stored
    assert b"PERSONAL-NOTE-TWO" not in stored
    assert b"PERSONAL-NOTE-THREE" in stored
    assert relay(config, "quarantine").output == "quarantine is empty\n"


def test_purge_removes_the_outbox_files_of_purged_conversations(tmp_path: Path) -> None:
    config, settings = write_config(tmp_path)  # no SMTP: emails go to the outbox
    run_app_until_settled(settings, missed(1, "PERSONAL-NOTE-ONE"), missed(2, "PERSONAL-NOTE-TWO"))
    outbox = Path(settings.storage.state_dir) / "outbox"
    assert len(list(outbox.glob("*.eml"))) == 2
    result = relay(config, "purge", "--older-than", "0")
    assert result.output.startswith("purged 2 conversations, 2 outbox files")
    assert list(outbox.glob("*.eml")) == []


def test_purge_keeps_recent_conversations_by_default(filled: tuple[Path, Settings]) -> None:
    config, settings = filled
    assert relay(config, "purge").output.startswith("purged 0 conversations, 0 outbox files")
    assert len(deliveries(settings)) == 2


def test_operator_commands_explain_a_missing_store(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path)
    result = CliRunner().invoke(main, ["queue", "--config", str(config)])
    assert result.exit_code == 1
    assert "no store at" in result.output


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_purge_does_nothing_while_another_relay_is_purging(
    filled: tuple[Path, Settings], backend: str
) -> None:
    config, settings = filled
    before = {row.conv_key for row in deliveries(settings)}
    other = open_store(settings)  # another relay on the same database, purging now
    try:
        with other.exclusive("purge") as held:
            assert held
            result = relay(config, "purge", "--older-than", "0")
    finally:
        other.close()
    assert result.exit_code == 0
    assert result.output == "another relay is purging this store now; nothing to do\n"
    assert {row.conv_key for row in deliveries(settings)} == before != set()
    assert relay(config, "purge", "--older-than", "0").output.startswith("purged 2 conversations")
