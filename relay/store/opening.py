"""Which store the settings name: SQLite under ``state_dir`` or PostgreSQL at ``[storage] url``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from relay.store import Store, StoreProtocol

if TYPE_CHECKING:
    from relay.config.settings import Settings
    from relay.store.postgres import PostgresStore

# This relay's name in a shared queue, kept in its state directory so a restart recovers
# what it held: <state_dir>/relay-id.
IDENTITY_FILE = "relay-id"


def database_path(settings: Settings) -> Path:
    return Path(settings.storage.state_dir) / "relay.db"


def postgres_url(settings: Settings) -> str | None:
    """The PostgreSQL URL the settings name (without a separate password), or None: SQLite."""
    url = settings.storage.url
    return None if url is None else url.get_secret_value()


def describe(settings: Settings) -> str:
    """Where the store is, as logs and the CLI show it (no password)."""
    url = postgres_url(settings)
    if url is None:
        return str(database_path(settings))
    from relay.store.pgconnect import redacted  # noqa: PLC0415 - psycopg only when used

    return redacted(url)


def relay_identity(state_dir: Path) -> str:
    """This relay's holder name, made once and kept in ``<state_dir>/relay-id``."""
    path = state_dir / IDENTITY_FILE
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    made = uuid.uuid4().hex
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(made + "\n")
        file.flush()
        os.fsync(file.fileno())
    return made


def open_store(settings: Settings, *, check: bool = False, relay: bool = False) -> StoreProtocol:
    """The store the settings name, opened (and migrated). ``relay``: opened by ``relay serve``,
    which claims deliveries under this state directory's identity; ``check``: run the engine's
    integrity check (SQLite). StoreError naming the store if it cannot be used."""
    url = postgres_url(settings)
    if url is None:
        return Store(database_path(settings), check=check)
    from relay.store.postgres import PostgresStore  # noqa: PLC0415 - psycopg only when used

    storage = settings.storage
    return PostgresStore(
        url,
        password=None if storage.password is None else storage.password.get_secret_value(),
        holder=relay_identity(Path(storage.state_dir)) if relay else None,
        lease_seconds=storage.lease_seconds,
        check=check,
    )


def _postgres(store: StoreProtocol) -> PostgresStore | None:
    """``store`` as the PostgreSQL store, or None for any other (SQLite) store."""
    if isinstance(store, Store):
        return None
    # Only reached with a store open_store made from a URL: psycopg is imported already.
    from relay.store.postgres import PostgresStore  # noqa: PLC0415

    return store if isinstance(store, PostgresStore) else None


def wake_on_new_work(store: StoreProtocol, wake: Callable[[], object]) -> None:
    """Call ``wake`` (from another thread) when another relay sharing the store commits new due
    deliveries. A SQLite store has one relay, whose intake wakes its worker itself."""
    postgres = _postgres(store)
    if postgres is not None:
        postgres.listen(wake)


def lease_counts(store: StoreProtocol, now: float) -> dict[str, int] | None:
    """Deliveries being sent, by lease (PostgreSQL), or None: a SQLite store has no leases."""
    postgres = _postgres(store)
    return None if postgres is None else postgres.leases(now)
