"""The embedded default destination: write each delivery as a file under <state_dir>/outbox/."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from relay.model.content import Content, EmailContent, SlackContent, TeamsContent
from relay.model.errors import PermanentDeliveryError
from relay.ops.fsync import sync_directory


def _write_atomically(path: Path, data: bytes, directory: DirectorySync) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    directory.sync()


class DirectorySync:
    """The fsync of one directory, shared by the writers waiting for it at the same time. A
    rename is on disk once an fsync of its directory that started after the rename has
    finished; each caller waits for such a one, and one fsync serves every caller that came
    while the one before it ran (the outbox's files are written by several threads at once,
    and each fsync competes with the store's commits for the disk)."""

    def __init__(self, path: Path, fsync: Callable[[Path], None] | None = None) -> None:
        self.path = path
        self._fsync = fsync or sync_directory
        self._changed = threading.Condition()
        self.waiting = 0  # callers waiting for an fsync another caller runs
        self._started = 0  # fsyncs started so far
        self._finished = 0  # the newest fsync that finished without an error
        self._running = False

    def sync(self) -> None:
        with self._changed:
            wanted = self._started + 1  # the first to start after this call
            while self._finished < wanted:
                if self._running:
                    self.waiting += 1
                    self._changed.wait()
                    self.waiting -= 1
                    continue
                self._running = True
                self._started += 1
                mine = self._started
                try:
                    self._changed.release()
                    try:
                        self._fsync(self.path)
                    finally:
                        self._changed.acquire()
                    self._finished = mine
                finally:
                    self._running = False
                    self._changed.notify_all()


class OutboxSender:
    """Emails become ``<id>-email.eml``; Slack messages ``<id>-slack.json``. The name depends
    only on the delivery id, so a repeated attempt overwrites rather than duplicates."""

    deadline_seconds: float | None = None  # local files: nothing remote to wait for
    sends_flat_email = True  # writes an email's bytes, flattened in the render helper

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._directory_sync = DirectorySync(directory)

    def path_for(self, delivery_id: int, content: Content) -> Path:
        if isinstance(content, EmailContent):
            return self.directory / f"{delivery_id:08d}-email.eml"
        if isinstance(content, TeamsContent):
            return self.directory / f"{delivery_id:08d}-teams.json"
        return self.directory / f"{delivery_id:08d}-slack.json"

    def remove(self, delivery_ids: Iterable[int]) -> int:
        """Delete the files of these deliveries (retention purge); returns how many."""
        removed = 0
        for delivery_id in delivery_ids:
            for path in self.directory.glob(f"{delivery_id:08d}-*"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    async def send(self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()) -> None:
        if not isinstance(content, EmailContent | SlackContent | TeamsContent):
            raise PermanentDeliveryError(f"the outbox cannot hold {type(content).__name__}")
        await asyncio.to_thread(self._write, content, delivery_id)

    def _write(self, content: EmailContent | SlackContent | TeamsContent, delivery_id: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if isinstance(content, EmailContent):
            data = content.flat_for(utf8=False, eight_bit=True) or _flattened(content)
        elif isinstance(content, TeamsContent):
            data = json.dumps(content.body(), ensure_ascii=False, indent=2).encode()
        else:
            payload = {
                "channel": content.channel,
                "text": content.text,
                "blocks": list(content.blocks),
            }
            data = json.dumps(payload, ensure_ascii=False, indent=2).encode()
        _write_atomically(self.path_for(delivery_id, content), data, self._directory_sync)


def _flattened(content: EmailContent) -> bytes:
    """An email not flattened in the render helper (rendered in a thread of the relay's
    process): the header check and the generator are imported only then."""
    from relay.render.headers import UnsafeHeaders, flatten  # noqa: PLC0415

    try:
        return flatten(content.message)
    except UnsafeHeaders as exc:
        raise PermanentDeliveryError(f"email not written, unsafe headers: {exc}") from None
