"""relay.senders.smtp.sendmail's commands on the wire, byte for byte the ones aiosmtplib's own
sendmail writes, against a scripted SMTP server on a real socket that records every byte it
receives and answers each command from a script: the same transcript for the same message,
a recipient refused, a 421 that closes the connection, and hostile addresses (control
characters, an injected command): refused, or written, exactly as aiosmtplib does it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiosmtplib
import pytest

from relay.senders.smtp import sendmail

SENDER = "relay@example.test"
DATA = b"Subject: wire\r\nTo: team@example.test\r\n\r\n.a dot\r\nend\r\n"


@dataclass
class Scripted:
    """An SMTP server that answers EHLO with SIZE and 8BITMIME, MAIL and RCPT with 250 unless
    ``replies`` names a command ("MAIL", "RCPT TO:<x>") with another reply, DATA with 354
    and the message with 250; ``received``: the bytes of each connection, in order."""

    replies: dict[str, bytes] = field(default_factory=dict)
    received: list[bytearray] = field(default_factory=list)
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await self._session(reader, writer)
        finally:
            writer.close()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen = bytearray()
        self.received.append(seen)
        writer.write(b"220 scripted\r\n")
        in_data = False
        while line := await reader.readline():
            seen += line
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    writer.write(b"250 queued\r\n")
                continue
            command = line.rstrip(b"\r\n").decode(errors="replace")
            if command.startswith("EHLO"):
                writer.write(b"250-scripted\r\n250-SIZE 100000\r\n250 8BITMIME\r\n")
            elif command == "DATA":
                in_data = True
                writer.write(b"354 go on\r\n")
            elif command == "QUIT":
                writer.write(b"221 bye\r\n")
                return
            else:
                key = next((k for k in self.replies if command.startswith(k)), None)
                writer.write(self.replies[key] if key else b"250 OK\r\n")
                if key and self.replies[key].startswith(b"421"):
                    return
            await writer.drain()


@pytest.fixture
async def scripted() -> AsyncIterator[Scripted]:
    server = Scripted(replies={"RCPT TO:<gone@example.test>": b"550 no such user\r\n"})
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    async with listening:
        yield server


async def connected(server: Scripted) -> aiosmtplib.SMTP:
    client = aiosmtplib.SMTP(hostname="127.0.0.1", port=server.port, timeout=10)
    await client.connect()
    await client.ehlo()
    return client


async def transcript_of(server: Scripted, ours: bool, recipients: list[str]) -> bytes:
    client = await connected(server)
    if ours:
        refused = await sendmail(client, SENDER, recipients, DATA, ["BODY=8BITMIME"])
    else:
        replies, _ = await client.sendmail(SENDER, recipients, DATA, mail_options=["BODY=8BITMIME"])
        refused = {r: v for r, v in replies.items() if v.code != 250}
    await client.quit()
    assert set(refused) == {r for r in recipients if r.startswith("gone")}
    return bytes(server.received[-1])


async def test_the_commands_sent_are_byte_for_byte_those_of_aiosmtplib_sendmail(
    scripted: Scripted,
) -> None:
    for recipients in (["team@example.test"], ["team@example.test", "gone@example.test"]):
        ours = await transcript_of(scripted, True, recipients)
        theirs = await transcript_of(scripted, False, recipients)
        assert ours == theirs
        assert f"MAIL FROM:<{SENDER}> size={len(DATA)} BODY=8BITMIME\r\n".encode() in ours
        assert b"\r\n..a dot\r\n" in ours


async def test_a_421_reply_closes_the_connection_as_aiosmtplib_does(scripted: Scripted) -> None:
    scripted.replies["MAIL"] = b"421 shutting down\r\n"
    client = await connected(scripted)
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await sendmail(client, SENDER, ["team@example.test"], DATA, [])
    assert refused.value.code == 421
    assert not client.is_connected


async def attempt(server: Scripted, ours: bool, recipient: str) -> tuple[str, bytes]:
    """What sending to ``recipient`` raised (or "sent"), and the bytes the server got."""
    client = await connected(server)
    try:
        if ours:
            await sendmail(client, SENDER, [recipient], DATA, [])
        else:
            await client.sendmail(SENDER, [recipient], DATA)
        outcome = "sent"
    except ValueError as exc:
        outcome = f"ValueError: {exc}"
    await client.quit()
    return outcome, bytes(server.received[-1])


@pytest.mark.parametrize(
    "recipient",
    [
        "team@example.test\r\nRCPT TO:<evil@example.test>",
        "<team@example.test>\r\nRCPT TO:<evil@example.test>",
        "team\x00@example.test",
        "te\ram@example.test",
    ],
)
async def test_an_address_with_a_control_character_is_handled_as_aiosmtplib_handles_it(
    scripted: Scripted, recipient: str
) -> None:
    ours = await attempt(scripted, True, recipient)
    theirs = await attempt(scripted, False, recipient)
    assert ours == theirs
    _, seen = ours
    assert b"evil" not in seen
    assert not any(c in seen.replace(b"\r\n", b"") for c in (b"\x00", b"\r", b"\n"))
