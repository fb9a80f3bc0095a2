"""Making a directory's entries durable: the one directory fsync the relay's writers share."""

from __future__ import annotations

import os
from pathlib import Path


def sync_directory(path: Path) -> None:
    """fsync the directory ``path``, so that names created, renamed or removed in it survive
    a crash (a file's own fsync covers its content, not its name)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
