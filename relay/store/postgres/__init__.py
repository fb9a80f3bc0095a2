"""The store on PostgreSQL, for several relays sharing one database and one delivery queue."""

from __future__ import annotations

from relay.store.postgres.store import DEFAULT_LEASE_SECONDS, PostgresStore

__all__ = ["DEFAULT_LEASE_SECONDS", "PostgresStore"]
