"""The outbox's files: written whole and on disk before the delivery counts as sent, with one
directory fsync shared by the writers that wait at the same time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest

from relay.model.content import EmailContent
from relay.senders.outbox import DirectorySync, OutboxSender


class Fsyncs:
    """Stands in for the directory fsync: records each, and holds the first until released."""

    def __init__(self) -> None:
        self.calls = 0
        self.first_started = threading.Event()
        self.release = threading.Event()
        self.fail_next = False

    def __call__(self, path: Path) -> None:
        self.calls += 1
        if self.calls == 1:
            self.first_started.set()
            assert self.release.wait(30)
        if self.fail_next:
            self.fail_next = False
            raise OSError(5, "Input/output error")


def wait_until(check: Callable[[], bool]) -> None:
    """Until ``check`` holds (another thread's state; at most about 30 s)."""
    never = threading.Event()
    for _ in range(30_000):
        if check():
            return
        never.wait(0.001)
    raise AssertionError("the other threads never got there")


def test_writers_waiting_during_one_fsync_share_the_next(tmp_path: Path) -> None:
    fsyncs = Fsyncs()
    sync = DirectorySync(tmp_path, fsyncs)
    first = threading.Thread(target=sync.sync)
    first.start()
    assert fsyncs.first_started.wait(30)
    # Two more renames while the first fsync runs: it started before them, so it does not
    # cover them; one fsync started after it ends covers both.
    later = [threading.Thread(target=sync.sync) for _ in range(2)]
    for thread in later:
        thread.start()
    wait_until(lambda: sync.waiting == 2)
    fsyncs.release.set()
    for thread in (first, *later):
        thread.join(30)
        assert not thread.is_alive()
    assert fsyncs.calls == 2
    # Alone, each caller gets an fsync of its own.
    sync.sync()
    sync.sync()
    assert fsyncs.calls == 4


def test_a_failed_fsync_fails_its_caller_and_the_next_caller_runs_a_new_one(
    tmp_path: Path,
) -> None:
    fsyncs = Fsyncs()
    fsyncs.release.set()
    sync = DirectorySync(tmp_path, fsyncs)
    sync.sync()
    fsyncs.fail_next = True
    with pytest.raises(OSError, match="Input/output error"):
        sync.sync()
    sync.sync()
    assert fsyncs.calls == 3


def test_concurrent_emails_are_each_written_whole(tmp_path: Path) -> None:
    outbox = OutboxSender(tmp_path / "outbox")

    def email(n: int) -> EmailContent:
        message = EmailMessage()
        message["From"] = "relay@example.test"
        message["To"] = "team@example.test"
        message["Subject"] = f"message {n}"
        message.set_content(f"body {n}\n" * 500)
        return EmailContent(message, ("team@example.test",))

    async def write_all() -> None:
        await asyncio.gather(*(outbox.send(email(n), delivery_id=n) for n in range(1, 21)))

    asyncio.run(write_all())
    files = sorted((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [f"{n:08d}-email.eml" for n in range(1, 21)]
    for n, path in enumerate(files, start=1):
        data = path.read_bytes()
        assert f"Subject: message {n}\r\n".encode() in data
        assert data.count(f"body {n}".encode()) == 500
