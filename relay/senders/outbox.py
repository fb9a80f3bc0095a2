"""The embedded default destination: write each delivery as a file under <state_dir>/outbox/."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable
from pathlib import Path

from relay.model.content import Content, EmailContent, SlackContent, TeamsContent
from relay.model.errors import PermanentDeliveryError
from relay.render.headers import UnsafeHeaders, flatten


def _write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class OutboxSender:
    """Emails become ``<id>-email.eml``; Slack messages ``<id>-slack.json``. The name depends
    only on the delivery id, so a repeated attempt overwrites rather than duplicates."""

    deadline_seconds: float | None = None  # local files: nothing remote to wait for
    sends_flat_email = True  # writes an email's bytes, flattened in the render helper

    def __init__(self, directory: Path) -> None:
        self.directory = directory

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
        try:
            await asyncio.to_thread(self._write, content, delivery_id)
        except UnsafeHeaders as exc:
            raise PermanentDeliveryError(f"email not written, unsafe headers: {exc}") from None

    def _write(self, content: EmailContent | SlackContent | TeamsContent, delivery_id: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        if isinstance(content, EmailContent):
            data = content.flat_for(utf8=False, eight_bit=True) or flatten(content.message)
        elif isinstance(content, TeamsContent):
            data = json.dumps(content.body(), ensure_ascii=False, indent=2).encode()
        else:
            payload = {
                "channel": content.channel,
                "text": content.text,
                "blocks": list(content.blocks),
            }
            data = json.dumps(payload, ensure_ascii=False, indent=2).encode()
        _write_atomically(self.path_for(delivery_id, content), data)
