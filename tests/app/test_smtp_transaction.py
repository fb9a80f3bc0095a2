"""relay.senders.smtp.sendmail against a real aiosmtpd server: the SIZE it declares, the bytes
that arrive, refused recipients, and an envelope reset after a refusal so that the same
connection carries the next message."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import pytest

from relay.senders.smtp import sendmail
from tests.support.smtp import RecordingHandler, SmtpServer

SENDER = "relay@example.test"


@dataclass
class OptionsHandler(RecordingHandler):
    """Also records each MAIL command's options and every session that sent one."""

    mail_options: list[list[str]] = field(default_factory=list)
    sessions: list[Any] = field(default_factory=list)
    mail_replies: list[str] = field(default_factory=list)  # the next MAIL commands' replies

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: Any
    ) -> str:
        if self.mail_replies:
            return self.mail_replies.pop(0)
        self.mail_options.append(list(mail_options))
        if not any(known is session for known in self.sessions):
            self.sessions.append(session)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


@pytest.fixture
def server() -> Any:
    started = SmtpServer(OptionsHandler(rcpt_replies={"gone@example.test": "550 no such user"}))
    started.start()
    yield started
    started.stop()


def message(subject: str) -> bytes:
    lines = [
        f"Subject: {subject}",
        "To: team@example.test",
        "",
        ".a line that starts with a dot",
        "..and one with two",
        "end",
    ]
    return "".join(line + "\r\n" for line in lines).encode()


async def connected(server: SmtpServer) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=10)
    await client.connect()
    await client.ehlo()
    return client


async def test_the_declared_size_is_the_bytes_sent_and_they_arrive_unchanged(
    server: SmtpServer,
) -> None:
    client = await connected(server)
    data = message("one")
    refused = await sendmail(client, SENDER, ["team@example.test"], data, ["BODY=8BITMIME"])
    await client.quit()
    assert refused == {}
    handler = server.handler
    assert isinstance(handler, OptionsHandler)
    assert handler.mail_options == [[f"SIZE={len(data)}", "BODY=8BITMIME"]]
    [received] = handler.wait_for(1)
    assert received.data == data
    assert received.mail_from == SENDER
    assert received.rcpt_tos == ["team@example.test"]


async def test_a_refused_recipient_is_reported_and_the_others_get_the_message(
    server: SmtpServer,
) -> None:
    client = await connected(server)
    recipients = ["team@example.test", "gone@example.test"]
    refused = await sendmail(client, SENDER, recipients, message("two"), [])
    await client.quit()
    assert list(refused) == ["gone@example.test"]
    assert refused["gone@example.test"].code == 550
    [received] = server.handler.wait_for(1)
    assert received.rcpt_tos == ["team@example.test"]


async def test_after_every_recipient_refused_the_same_connection_sends_the_next_message(
    server: SmtpServer,
) -> None:
    client = await connected(server)
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await sendmail(client, SENDER, ["gone@example.test"], message("three"), [])
    assert [r.recipient for r in refused.value.recipients] == ["gone@example.test"]
    refused_again = await sendmail(client, SENDER, ["team@example.test"], message("four"), [])
    await client.quit()
    assert refused_again == {}
    handler = server.handler
    assert isinstance(handler, OptionsHandler)
    [received] = handler.wait_for(1)
    assert received.data == message("four")
    assert received.rcpt_tos == ["team@example.test"]
    assert len(handler.sessions) == 1  # one connection carried both envelopes


async def test_a_refused_message_resets_the_envelope_for_the_next_one(server: SmtpServer) -> None:
    server.handler.data_replies.append("554 refused")
    client = await connected(server)
    with pytest.raises(aiosmtplib.SMTPDataError):
        await sendmail(client, SENDER, ["team@example.test"], message("five"), [])
    assert await sendmail(client, SENDER, ["team@example.test"], message("six"), []) == {}
    await client.quit()
    [received] = server.handler.wait_for(1)
    assert received.data == message("six")


async def test_a_message_with_bare_line_ends_arrives_as_aiosmtplib_itself_sends_it(
    server: SmtpServer,
) -> None:
    data = b"Subject: bare\nTo: team@example.test\n\n.dot after LF\r.dot after CR\rend"
    client = await connected(server)
    refused = await sendmail(client, SENDER, ["team@example.test"], data, [])
    await client.sendmail(SENDER, ["team@example.test"], data)
    await client.quit()
    assert refused == {}
    ours, theirs = server.handler.wait_for(2)
    assert ours.data == theirs.data
    assert b".dot after LF\r\n.dot after CR\r\nend" in ours.data
    handler = server.handler
    assert isinstance(handler, OptionsHandler)
    assert handler.mail_options[0] == handler.mail_options[1]  # the same SIZE


async def test_a_refused_sender_is_raised_and_the_connection_sends_the_next_message(
    server: SmtpServer,
) -> None:
    handler = server.handler
    assert isinstance(handler, OptionsHandler)
    handler.mail_replies.append("550 5.7.1 sender not allowed")
    client = await connected(server)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await sendmail(client, SENDER, ["team@example.test"], message("seven"), [])
    assert (refused.value.code, refused.value.sender) == (550, SENDER)
    assert await sendmail(client, SENDER, ["team@example.test"], message("eight"), []) == {}
    await client.quit()
    [received] = handler.wait_for(1)
    assert received.data == message("eight")
    assert len(handler.sessions) == 1
