"""Secrets generated once into the state directory, written whole before anyone can read them."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from relay.model.errors import ConfigError


def kept_secret(
    path: Path, make: Callable[[], str], *, min_length: int, what: str
) -> tuple[str, bool]:
    """The secret kept in ``path``, or a new one from ``make()`` written there (mode 0600),
    and whether it was made now. A new secret is written to a temporary file beside it,
    flushed, then hard-linked to ``path``: another relay on the same state directory reads
    all of it or none, never the empty or partial file a crash or a full disk can leave (an
    empty signing key would sign anything). If two make one at once, both use the first.

    ConfigError if ``path`` holds fewer than ``min_length`` characters: ``what`` names the
    secret in the message, which says to delete the file so that a new one is made."""
    try:
        return _usable(path, _read(path), min_length, what), False
    except FileNotFoundError:
        pass
    secret = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(secret + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temp, path)
        except FileExistsError:  # made meanwhile by another relay on the same state dir
            return _usable(path, _read(path), min_length, what), False
    finally:
        os.unlink(temp)
    return secret, True


def check_secret(path: Path, *, min_length: int, what: str) -> None:
    """ConfigError if ``path`` exists and holds too short a secret (checked at start)."""
    with contextlib.suppress(FileNotFoundError):
        _usable(path, _read(path), min_length, what)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{path} does not hold a secret this relay wrote (not text)") from None


def _usable(path: Path, secret: str, min_length: int, what: str) -> str:
    if len(secret) < min_length:
        raise ConfigError(
            f"{path} holds {len(secret)} characters, too short for {what} (at least"
            f" {min_length}); delete it to generate a new one"
        )
    return secret
