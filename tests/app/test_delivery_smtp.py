"""Email delivery against a real aiosmtpd server: outages, greylisting, refusals, recipients."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from relay.app import create_app
from relay.cli.main import main
from relay.config.settings import Settings
from tests.support.app import runtime, wait_settled
from tests.support.config import write_config
from tests.support.data import TOKEN, sample
from tests.support.smtp import RecordingHandler, SmtpServer, free_port
from tests.support.store import deliveries

# The store and the worker on each backend (tests/conftest.py: backend).
pytestmark = pytest.mark.usefixtures("backend")

HOOK = f"/hooks/smartsupp/{TOKEN}"


def missed(channel_id: int = 55039) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = channel_id
    data["channel"]["isMissed"] = True
    return json.dumps(data).encode()


def smtp_config(tmp_path: Path, port: int, **sections: dict[str, Any]) -> tuple[Path, Settings]:
    return write_config(
        tmp_path,
        smtp={"host": "127.0.0.1", "port": port, "from_address": "Relay <relay@shop.test>"},
        routing={"sales_inbox": "sales@shop.test"},
        **sections,
    )


def wait_attempts(client: TestClient[Any], count: int, timeout: float = 20.0) -> None:
    async def attempted() -> None:
        await asyncio.wait_for(runtime(client).worker.attempted(count), timeout)

    client.blocking_portal.call(attempted)


def test_smtp_down_at_first_then_started_delivers_exactly_once(
    tmp_path: Path, storage_section: dict[str, Any]
) -> None:
    port = free_port()
    _, settings = smtp_config(tmp_path, port, storage=storage_section)
    handler = RecordingHandler()
    server = SmtpServer(handler, port=port)
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=missed()).status_code == 200
        wait_attempts(client, 2)  # two refused connections, recorded as retrying
        [row] = deliveries(settings)
        assert row.status in ("retrying", "sending")  # the next attempt may have begun
        assert row.last_error is not None and "SMTP connection failed" in row.last_error
        server.start()
        try:
            handler.wait_for(1)
            wait_settled(client)
        finally:
            server.stop()
    [row] = deliveries(settings)
    assert (row.status, row.last_error) == ("sent", None)
    assert row.attempts >= 3
    assert len(handler.messages) == 1
    assert handler.messages[0].rcpt_tos == ["sales@shop.test"]


def test_greylisting_451_twice_then_250_is_delivered_on_the_third_attempt(
    tmp_path: Path, storage_section: dict[str, Any], smtp_server: SmtpServer
) -> None:
    handler = smtp_server.handler
    handler.data_replies = ["451 4.7.1 Greylisted, try again", "451 4.7.1 Greylisted, try again"]
    _, settings = smtp_config(tmp_path, smtp_server.port, storage=storage_section)
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=missed())
        handler.wait_for(1)
        wait_settled(client)
    assert handler.attempts == 3
    assert len(handler.messages) == 1
    [row] = deliveries(settings)
    assert (row.status, row.attempts, row.last_error) == ("sent", 3, None)


def test_550_is_dead_after_one_attempt_and_relay_queue_shows_the_reply(
    tmp_path: Path, storage_section: dict[str, Any], smtp_server: SmtpServer
) -> None:
    handler = smtp_server.handler
    handler.data_replies = ["550 5.7.1 Message rejected as spam"]
    config, settings = smtp_config(tmp_path, smtp_server.port, storage=storage_section)
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=missed())
        wait_settled(client)
    assert handler.attempts == 1
    assert handler.messages == []
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("dead", 1)
    assert row.last_error == "SMTP server refused: 550 5.7.1 Message rejected as spam"

    result = CliRunner().invoke(main, ["queue", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "dead=1" in result.output
    line = next(x for x in result.output.splitlines() if x.lstrip().startswith(str(row.id)))
    assert "dead" in line
    assert "208-55039" in line
    assert "550 5.7.1 Message rejected as spam" in result.output


@dataclass
class FlakyRecipient(RecordingHandler):
    """Answers RCPT for ``address`` with ``reply`` the first ``times`` times."""

    address: str = ""
    reply: str = ""
    times: int = 1
    refusals: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
    ) -> str:
        if address == self.address and len(self.refusals) < self.times:
            self.refusals.append(address)
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"


def two_recipients(make_settings: Callable[..., Settings], port: int) -> Settings:
    rule = {
        "name": "missed-to-two",
        "match": {"category": ["missed"]},
        "actions": [{"type": "email", "to": ["a@shop.test", "b@shop.test"]}],
    }
    return make_settings(
        smtp={"host": "127.0.0.1", "port": port, "from_address": "Relay <relay@shop.test>"},
        rules=[rule],
    )


def test_a_temporarily_refused_recipient_is_retried_alone(
    make_settings: Callable[..., Settings],
) -> None:
    handler = FlakyRecipient(address="b@shop.test", reply="450 4.2.1 Mailbox busy", times=1)
    server = SmtpServer(handler)
    server.start()
    try:
        settings = two_recipients(make_settings, server.port)
        with TestClient(create_app(settings)) as client:
            client.post(HOOK, content=missed())
            handler.wait_for(2)
            wait_settled(client)
    finally:
        server.stop()
    assert [m.rcpt_tos for m in handler.messages] == [["a@shop.test"], ["b@shop.test"]]
    [row] = deliveries(settings)
    assert (row.status, row.attempts) == ("sent", 2)


def test_a_permanently_refused_recipient_makes_the_delivery_dead_without_resending(
    make_settings: Callable[..., Settings],
) -> None:
    handler = FlakyRecipient(address="b@shop.test", reply="550 5.1.1 No such user", times=99)
    server = SmtpServer(handler)
    server.start()
    try:
        settings = two_recipients(make_settings, server.port)
        with TestClient(create_app(settings)) as client:
            client.post(HOOK, content=missed())
            wait_settled(client)
            [row] = deliveries(settings)
            assert row.status == "dead"
            assert row.last_error == "recipients refused: b@shop.test: 550 5.1.1 No such user"
            # An operator retry (once b exists) sends to b only: a already has it.
            handler.times = len(handler.refusals)
            store = runtime(client).store
            client.blocking_portal.call(store.call, lambda s: s.retry_now([row.id]))
            client.blocking_portal.call(runtime(client).worker.wake)
            handler.wait_for(2)
            wait_settled(client)
    finally:
        server.stop()
    assert [m.rcpt_tos for m in handler.messages] == [["a@shop.test"], ["b@shop.test"]]


def test_every_recipient_refused_temporarily_is_retried(
    tmp_path: Path, storage_section: dict[str, Any], smtp_server: SmtpServer
) -> None:
    smtp_server.handler.rcpt_replies = {"sales@shop.test": "451 4.3.0 Try later"}
    _, settings = smtp_config(tmp_path, smtp_server.port, storage=storage_section)
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=missed())
        wait_attempts(client, 2)
        [row] = deliveries(settings)
        assert row.status in ("retrying", "sending")
        assert row.last_error == "recipients deferred: sales@shop.test: 451 4.3.0 Try later"
        smtp_server.handler.rcpt_replies = {}
        smtp_server.handler.wait_for(1)
        wait_settled(client)
    assert len(smtp_server.handler.messages) == 1


def test_an_exact_duplicate_post_is_delivered_once(
    tmp_path: Path, storage_section: dict[str, Any], smtp_server: SmtpServer
) -> None:
    _, settings = smtp_config(tmp_path, smtp_server.port, storage=storage_section)
    with TestClient(create_app(settings)) as client:
        first = client.post(HOOK, content=missed())
        second = client.post(HOOK, content=missed())
        smtp_server.handler.wait_for(1)
        wait_settled(client)
    assert first.json()["status"] == "accepted"
    assert second.status_code == 200
    assert (second.json()["status"], second.json()["deliveries"]) == ("duplicate", 0)
    assert len(smtp_server.handler.messages) == 1


def test_a_changed_version_in_the_same_category_sends_nothing_new_and_keeps_message_id(
    tmp_path: Path, storage_section: dict[str, Any], smtp_server: SmtpServer
) -> None:
    _, settings = smtp_config(tmp_path, smtp_server.port, storage=storage_section)
    data = json.loads(missed())
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=json.dumps(data).encode())
        data["messages"].append({"type": "visitor", "content": "hello?", "sentAt": 1427470490000})
        changed = client.post(HOOK, content=json.dumps(data).encode()).json()
        smtp_server.handler.wait_for(1)
        wait_settled(client)
    assert (changed["status"], changed["version"], changed["deliveries"]) == ("accepted", 2, 0)
    assert len(smtp_server.handler.messages) == 1


def test_a_non_ascii_recipient_gets_the_email_through_a_server_with_smtputf8(
    tmp_path: Path, storage_section: dict[str, Any], smtp_server: SmtpServer
) -> None:
    """An inbox at an internationalised address: the To header carries it as UTF-8 (SMTPUTF8),
    which the check of the flattened headers reads as such, not as a changed address."""
    _, settings = write_config(
        tmp_path,
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "relay@shop.test"},
        routing={"sales_inbox": "Prodej <prodej@příklad.cz>"},
        storage=storage_section,
    )
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=missed())
        wait_settled(client)
    [row] = deliveries(settings)
    assert (row.status, row.last_error) == ("sent", None)
    [received] = smtp_server.handler.wait_for(1)
    assert received.rcpt_tos == ["prodej@příklad.cz"]
    # As UTF-8 on the wire (the stdlib's parser would read those bytes as surrogates).
    assert "\r\nTo: Prodej <prodej@příklad.cz>\r\n".encode() in received.data
