"""The console's store operations: users, the audit log, conversation search, health, stats."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from relay.store import queries
from relay.store.base import StoreBase
from relay.store.records import AuditRow, ConversationRow, DestinationHealth


def shown(value: object) -> str | None:
    """A visitor's name or email address as read from a stored body: text, a number, or text
    as its bytes (SQLite, ``queries._BODY_TEXT``), whose bytes that are not UTF-8 show as the
    replacement character."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def conversation_row(row: Sequence[Any]) -> ConversationRow:
    """A ConversationRow from ``queries._CONVERSATION_COLUMNS`` (the PostgreSQL store's too)."""
    cid, key, version, category, received, name, email = row
    return ConversationRow(
        int(cid), str(key), int(version), str(category), float(received), shown(name), shown(email)
    )


def search(rows: Iterable[Sequence[Any]], text: str, limit: int) -> list[ConversationRow]:
    """The first ``limit`` of ``rows`` (``FIND_CONVERSATIONS``', newest first) whose visitor
    name or email contains ``text`` in any case, beyond ASCII too (str.casefold, which the
    stores' lower() is not in SQLite or a PostgreSQL database without a locale); reads no
    further rows than it needs."""
    needle = text.casefold()
    found: list[ConversationRow] = []
    for row in rows:
        if len(found) == limit:
            break
        if any(needle in (shown(v) or "").casefold() for v in (row[5], row[6])):
            found.append(conversation_row(row))
    return found


def audit_row(row: Sequence[Any]) -> AuditRow:
    aid, at, actor, action, target, detail = row
    return AuditRow(int(aid), float(at), str(actor), str(action), str(target), str(detail))


def health_rows(
    totals: Iterable[Sequence[Any]], errors: Iterable[Sequence[Any]]
) -> list[DestinationHealth]:
    """DestinationHealth per destination from DELIVERY_HEALTH's rows and RECENT_ERRORS' rows
    (newest first: the first error seen per destination is its newest)."""
    newest: dict[tuple[str, str | None], tuple[str, float]] = {}
    for channel, destination, error, at in errors:
        where = (str(channel), None if destination is None else str(destination))
        newest.setdefault(where, (str(error), float(at)))
    found = []
    for channel, destination, count, attempts, failed in totals:
        name = None if destination is None else str(destination)
        error = newest.get((str(channel), name))
        found.append(
            DestinationHealth(
                str(channel),
                name,
                int(count),
                int(attempts or 0),
                int(failed or 0),
                None if error is None else error[0],
                None if error is None else error[1],
            )
        )
    return found


class ConsoleOps(StoreBase):
    def add_console_user(self, name: str, password_hash: str, now: float) -> bool:
        """Add a user, or give an existing one a new password; True if the user is new."""
        with self._transaction() as db:
            existed = db.execute(queries.CONSOLE_USER_EXISTS, (name,)).fetchone() is not None
            db.execute(queries.UPSERT_CONSOLE_USER, (name, password_hash, now))
            return not existed

    def remove_console_user(self, name: str) -> bool:
        with self._transaction() as db:
            return db.execute(queries.DELETE_CONSOLE_USER, (name,)).rowcount == 1

    def console_password_hash(self, name: str) -> str | None:
        row = self._conn.execute(queries.CONSOLE_USER_HASH, (name,)).fetchone()
        return None if row is None else str(row[0])

    def console_user_count(self) -> int:
        return int(self._conn.execute(queries.CONSOLE_USER_COUNT).fetchone()[0])

    def console_user_session(self, name: str) -> tuple[str, float | None] | None:
        """What a session cookie of ``name`` is signed with: the password hash and when the
        user last signed out (None: never); None if there is no such user."""
        row = self._conn.execute(queries.CONSOLE_USER_SESSION, (name,)).fetchone()
        return None if row is None else (str(row[0]), None if row[1] is None else float(row[1]))

    def sign_out_console_user(self, name: str, now: float) -> bool:
        """End every session of ``name`` (signed in before ``now``); False if no such user."""
        with self._transaction() as db:
            return db.execute(queries.SIGN_OUT_CONSOLE_USER, (now, name)).rowcount == 1

    def console_users(self) -> list[tuple[str, float]]:
        rows = self._conn.execute(queries.CONSOLE_USERS).fetchall()
        return [(str(name), float(at)) for name, at in rows]

    def record_audit(self, actor: str, action: str, target: str, detail: str, now: float) -> None:
        with self._transaction() as db:
            db.execute(queries.INSERT_AUDIT, (now, actor, action, target, detail))

    def audit_log(self, limit: int = 200) -> list[AuditRow]:
        return [audit_row(r) for r in self._conn.execute(queries.AUDIT_LOG, (limit,)).fetchall()]

    def find_conversations(
        self,
        text: str = "",
        start: float = 0.0,
        end: float = float("inf"),
        category: str | None = None,
        limit: int = 100,
    ) -> list[ConversationRow]:
        """The newest version of each conversation whose visitor name or email contains
        ``text`` (any case), received in [start, end), of ``category`` (None: any)."""
        params = (start, min(end, 1e18), category, category)
        cursor = self._conn.execute(queries.FIND_CONVERSATIONS, params)
        try:
            return search(cursor, text, limit)
        finally:
            cursor.close()  # read no further

    def conversation_row(self, conversation_id: int) -> ConversationRow | None:
        row = self._conn.execute(queries.CONVERSATION_ROW, (conversation_id,)).fetchone()
        return None if row is None else conversation_row(row)

    def conversation_versions(self, conv_key: str) -> list[ConversationRow]:
        rows = self._conn.execute(queries.CONVERSATION_VERSIONS, (conv_key,)).fetchall()
        return [conversation_row(row) for row in rows]

    def destination_health(self, since: float) -> list[DestinationHealth]:
        totals = self._conn.execute(queries.DELIVERY_HEALTH, (since,)).fetchall()
        errors = self._conn.execute(queries.RECENT_ERRORS, (since,)).fetchall()
        return health_rows(totals, errors)

    def period_conversations(self, start: float, end: float) -> list[tuple[str, float, bytes]]:
        """(category, received_at, raw body) of the newest version of each conversation
        received in [start, end), oldest first."""
        rows = self._conn.execute(queries.PERIOD_CONVERSATIONS, (start, end)).fetchall()
        return [(str(cat), float(at), bytes(raw)) for cat, at, raw in rows]

    def drop_quarantine_entry(self, entry_id: int) -> bool:
        with self._transaction() as db:
            return db.execute(queries.DELETE_QUARANTINE_ENTRY, (entry_id,)).rowcount == 1

    def delivery_attempts(self, delivery_id: int) -> list[tuple[float, str, str]]:
        """The finished attempts of a delivery, oldest first: (at, outcome, detail), outcome
        "sent" (detail: where, if not the destination), "retry" or "dead" (detail: the error)."""
        rows = self._conn.execute(queries.DELIVERY_ATTEMPTS, (delivery_id,)).fetchall()
        return [(float(at), str(outcome), str(detail)) for at, outcome, detail in rows]
