"""One relay per state directory: an exclusive lock held for the life of ``relay serve``."""

from __future__ import annotations

import contextlib
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from relay.model.errors import StateDirInUse, StoreError

LOCK_NAME = "relay.lock"


@dataclass(frozen=True)
class StateDirLock:
    path: Path
    fd: int

    def release(self) -> None:
        """Unlock and close; the file stays (removing it would race a starting relay)."""
        with contextlib.suppress(OSError):
            os.close(self.fd)


def lock_state_dir(state_dir: Path) -> StateDirLock:
    """Take ``<state_dir>/relay.lock`` or raise ``StateDirInUse`` naming the directory and the
    process that holds it, or ``StoreError`` if it cannot be made or opened (a file where the
    directory should be, no permission). The kernel drops the lock when the process dies,
    however it dies."""
    path = state_dir / LOCK_NAME
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except (FileExistsError, NotADirectoryError):
        raise StoreError(f"state directory {state_dir} is not a directory") from None
    except OSError as exc:
        raise StoreError(f"state directory {state_dir} cannot be used: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise StateDirInUse(
            f"state directory {state_dir.resolve()} is in use by another relay (pid {holder}); "
            "stop it first, or give this one its own [storage] state_dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return StateDirLock(path, fd)
