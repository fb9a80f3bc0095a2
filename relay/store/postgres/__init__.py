"""The store on PostgreSQL, for several relays sharing one database and one delivery queue."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.store.postgres.store import DEFAULT_LEASE_SECONDS, PostgresStore
from relay.store.protocol import StoreProtocol

__all__ = ["DEFAULT_LEASE_SECONDS", "PostgresStore"]

if TYPE_CHECKING:  # the PostgreSQL store offers every operation of the protocol, as SQLite's
    _CHECKED: type[StoreProtocol] = PostgresStore
