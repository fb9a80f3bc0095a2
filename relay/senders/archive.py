"""Append one JSON line per delivery to an archive file, fsync'd before the delivery counts."""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

from relay.model.content import ArchiveContent, Content, line_prefix
from relay.model.errors import PermanentDeliveryError, TransientDeliveryError
from relay.ops.fsync import sync_directory

TAIL_BYTES = 256 * 1024


class ArchiveSender:
    """Relative paths are under ``base_dir`` (the state directory). A retry whose earlier
    attempt did write (but was not recorded as sent) finds its line near the end of the file
    and does not append it again; readers can also dedupe on ``delivery_id``."""

    deadline_seconds: float | None = None  # local files: nothing remote to wait for

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._lock = threading.Lock()

    def path_for(self, content: ArchiveContent) -> Path:
        return self.base_dir / content.path  # an absolute content.path stays absolute

    async def send(self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()) -> None:
        if not isinstance(content, ArchiveContent):
            raise PermanentDeliveryError(f"archive sender cannot send {type(content).__name__}")
        if not content.line.startswith(line_prefix(delivery_id)) or b"\n" in content.line:
            raise PermanentDeliveryError("archive line is malformed")
        try:
            await asyncio.to_thread(self._append, self.path_for(content), content.line, delivery_id)
        except OSError as exc:
            raise TransientDeliveryError(f"archive {content.path}: {exc}") from None

    def _append(self, path: Path, line: bytes, delivery_id: int) -> None:
        with self._lock:
            path.parent.mkdir(parents=True, exist_ok=True)
            created = not path.exists()
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                if not created and _already_written(fd, line_prefix(delivery_id)):
                    return
                data = memoryview(line + b"\n")
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                sync_directory(path.parent)


def _already_written(fd: int, prefix: bytes) -> bool:
    size = os.fstat(fd).st_size
    start = max(size - TAIL_BYTES, 0)
    tail = os.pread(fd, size - start, start)
    return (start == 0 and tail.startswith(prefix)) or b"\n" + prefix in tail
