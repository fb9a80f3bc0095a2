"""Which store the settings name: SQLite under ``state_dir`` or PostgreSQL at ``[storage] url``."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

from relay.store import Store

if TYPE_CHECKING:
    from relay.store.postgres import PostgresStore

AnyStore: TypeAlias = "Store | PostgresStore"
