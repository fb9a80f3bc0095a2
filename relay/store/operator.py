"""Operator queries and commands: counts, listings, retry, replay, quarantine, purge."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from relay.routing.rules import PlannedDelivery
from relay.store import queries
from relay.store.base import ACTIVE, COUNTED, WRITES, StoreBase
from relay.store.records import DeliveryRow, QuarantineRow

RETRYABLE = ("pending", "retrying", "dead")
# The most stored versions of one visitor read for its history and for the emails sent about
# it: the newest ones. A visitor with thousands of stored chats (a test account, a bot) costs
# each email no more than this.
VISITOR_ROWS = 200


def by_visitor(vid: bytes | None, vemail: bytes | None) -> tuple[bool, bytes | None]:
    """(by visitor id?, the id or email address) a conversation is matched with its visitor's
    others by, from its visitor_id and visitor_email (their bytes, as VISITOR_OF and
    DELIVERY_VISITOR read them): by visitor id when it has one, else by email address; an
    empty id or address matches no one."""
    return (True, vid) if vid is not None else (False, vemail)


def visitor_match(vid: bytes | None, vemail: bytes | None) -> dict[str, bytes | None]:
    """SENT_EMAIL_IDS's ``:vid`` and ``:vemail`` for a conversation's visitor_id and
    visitor_email: the one ``by_visitor`` picks, the other None (which matches nothing)."""
    by_id, visitor = by_visitor(vid, vemail)
    return {"vid": visitor if by_id else None, "vemail": None if by_id else visitor}


# A visitor's earlier conversations: (category, Unix seconds), oldest first.
History = tuple[tuple[str, float], ...]
VERSIONS_PAGE = 256  # versions read at a time by ``visitor_histories``


class ReadAhead:
    """The rows of a cursor, read a page at a time as far as any reader asks and kept for
    the next reader, which starts again from the first."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._cursor = cursor
        self._rows: list[Any] = []
        self._ended = False

    def __iter__(self) -> Iterator[Any]:
        yield from self._rows
        read = len(self._rows)
        while not self._ended:
            page = self._cursor.fetchmany(VERSIONS_PAGE)
            self._ended = len(page) < VERSIONS_PAGE
            self._rows.extend(page)
            yield from self._rows[read:]
            read = len(self._rows)


def earlier_chats(rows: Iterable[Sequence[Any]], limit: int) -> History:
    """``visitor_history`` from its query's rows (conv_key, category, begin time; one per
    stored version, in the order stored): per chat the latest version's category and the first
    version's begin time, oldest first, at most the newest ``limit``."""
    chats: dict[str, tuple[str, float]] = {}
    for conv_key, category, begin in rows:
        first = chats.get(conv_key)
        chats[conv_key] = (str(category), float(begin if first is None else first[1]))
    ordered = sorted(chats.values(), key=lambda chat: chat[1])
    return tuple(ordered[-limit:])


def history_from(
    versions: Iterable[Sequence[Any]],
    conversation_id: int,
    conv_key: str,
    received: float,
    limit: int,
) -> History | None:
    """``visitor_history`` of ``conversation_id`` (of chat ``conv_key``, received at
    ``received``) from its visitor's ``versions`` (VISITOR_VERSIONS_BEFORE_*: id, conv_key,
    received_at, category, begin time; newest first): the first ``VISITOR_ROWS`` stored before
    it that are not of its own chat and were received no later, as its own query takes. None
    once more than ``VISITOR_ROWS`` stored after it were passed over (its own query starts
    at its place)."""
    taken = []
    newer = 0  # versions stored after it, which its own query never reads
    for version_id, key, at, category, begin in versions:
        if version_id >= conversation_id:
            newer += 1
            if newer > VISITOR_ROWS:
                return None
        elif key != conv_key and at <= received:
            taken.append((key, category, begin))
            if len(taken) == VISITOR_ROWS:
                break
    return earlier_chats(reversed(taken), limit)


class OperatorOps(StoreBase):
    def counts(self) -> dict[str, int]:
        """Deliveries by status (``COUNTED``); ``sent`` counts real sends only and ``outbox``
        the deliveries written to the local outbox instead."""
        found = dict(self._conn.execute(queries.COUNT_BY_STATUS).fetchall())
        return {status: found.get(status, 0) for status in COUNTED}

    def oldest_active_created_at(self) -> float | None:
        row = self._conn.execute(queries.OLDEST_ACTIVE).fetchone()
        return None if row is None else row[0]

    def deliveries(
        self,
        statuses: Sequence[str] = (*ACTIVE, "dead"),
        *,
        conversation_id: int | None = None,
        limit: int = 1000,
    ) -> list[DeliveryRow]:
        sql = f"{queries.DELIVERY_ROWS} WHERE {queries.ids_in('d.status', len(statuses))}"
        params: list[Any] = list(statuses)
        if conversation_id is not None:
            sql += " AND d.conversation_id = ?"
            params.append(conversation_id)
        sql += " ORDER BY d.id LIMIT ?"
        params.append(limit)
        return [DeliveryRow(*row) for row in self._conn.execute(sql, params).fetchall()]

    def delivery(self, delivery_id: int) -> DeliveryRow | None:
        row = self._conn.execute(queries.DELIVERY_BY_ID, (delivery_id,)).fetchone()
        return None if row is None else DeliveryRow(*row)

    def retry_now(self, delivery_ids: Sequence[int] | None = None, now: float | None = None) -> int:
        """Requeue deliveries (given ids, or every dead one) for an immediate attempt: a fresh
        start, so attempts, backoff and the age limit count again from now. Sent and in-flight
        deliveries are left alone (``replay`` sends a conversation again)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            if delivery_ids is None:
                return db.execute(queries.REQUEUE_DEAD, (now, now, now)).rowcount
            changed = 0
            for delivery_id in delivery_ids:
                changed += db.execute(queries.REQUEUE_ONE, (now, now, now, delivery_id)).rowcount
            return changed

    def conversation_raw(self, conversation_id: int) -> tuple[bytes, str, str] | None:
        """(raw body, category, conv_key) of one stored conversation."""
        row = self._conn.execute(queries.CONVERSATION_RAW, (conversation_id,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def latest_version_id(self, conv_key: str) -> int | None:
        """The id of the newest stored version of a conversation ("<accountId>-<channel.id>")."""
        row = self._conn.execute(queries.LATEST_VERSION_ID, (conv_key,)).fetchone()
        return None if row is None else int(row[0])

    def replan(
        self, conversation_id: int, planned: Sequence[PlannedDelivery], now: float | None = None
    ) -> int:
        """Plan fresh deliveries for a stored conversation (operator replay)."""
        now = time.time() if now is None else now
        found = self.conversation_raw(conversation_id)
        if found is None:
            return 0
        _, category, conv_key = found
        with self._transaction() as db:
            return WRITES.plan_deliveries(
                db, conversation_id, conv_key, category, planned, now=now, force=True
            )

    def quarantined(self, limit: int = 100) -> list[QuarantineRow]:
        rows = self._conn.execute(queries.QUARANTINED, (limit,)).fetchall()
        return [QuarantineRow(*row) for row in rows]

    def quarantine_entry(self, entry_id: int) -> QuarantineRow | None:
        row = self._conn.execute(queries.QUARANTINE_ENTRY, (entry_id,)).fetchone()
        return None if row is None else QuarantineRow(*row)

    def visitor_history(self, conversation_id: int, limit: int = 20) -> History:
        """The same visitor's earlier conversations in the same account (same visitor id, else
        the same email address), received no later than ``conversation_id``: one
        (category of the latest version, begin time in Unix seconds) per chat, oldest first,
        at most the newest ``limit``."""
        found = self._conn.execute(queries.VISITOR_OF, (conversation_id,)).fetchone()
        return () if found is None else self._history(conversation_id, found, limit)

    def _history(self, conversation_id: int, found: Sequence[Any], limit: int) -> History:
        """``visitor_history`` of ``conversation_id`` with its VISITOR_OF row ``found``."""
        account, conv_key, received, vid, vemail = found
        by_id, visitor = by_visitor(vid, vemail)
        query = queries.VISITOR_VERSIONS_BY_ID if by_id else queries.VISITOR_VERSIONS_BY_EMAIL
        params = {
            "account": account,
            "visitor": visitor,
            "id": conversation_id,
            "conv_key": conv_key,
            "received": received,
            "rows": VISITOR_ROWS,
        }
        rows = self._conn.execute(query, params).fetchall()  # newest first
        return earlier_chats(reversed(rows), limit)

    def visitor_histories(
        self, conversation_ids: Sequence[int], limit: int = 20
    ) -> dict[int, History]:
        """``visitor_history`` of each conversation, the same for each; those that share a
        visitor (a claim of several chats of one returning visitor) share one read of its
        versions (VISITOR_VERSIONS_BEFORE_*), as far as each one needs: newest first, each
        takes the first ``VISITOR_ROWS`` stored before it that are not of its own chat and
        were received no later, as its own query would. One with more than ``VISITOR_ROWS``
        of the visitor's versions stored after it up to the newest (an old retry claimed
        with new chats of a visitor with many) runs its own query instead, so the shared
        read never goes that far past what the conversations' own queries read."""
        found: dict[int, Sequence[Any]] = {}
        groups: dict[tuple[Any, bool, Any], list[int]] = {}
        histories: dict[int, History] = {}
        for conversation_id in dict.fromkeys(conversation_ids):
            row = self._conn.execute(queries.VISITOR_OF, (conversation_id,)).fetchone()
            if row is None:
                histories[conversation_id] = ()
                continue
            account, _, _, vid, vemail = row
            groups.setdefault((account, *by_visitor(vid, vemail)), []).append(conversation_id)
            found[conversation_id] = row
        for (account, by_id, visitor), members in groups.items():
            if len(members) == 1:
                histories[members[0]] = self._history(members[0], found[members[0]], limit)
                continue
            query = (
                queries.VISITOR_VERSIONS_BEFORE_BY_ID
                if by_id
                else queries.VISITOR_VERSIONS_BEFORE_BY_EMAIL
            )
            params = {"account": account, "visitor": visitor, "id": max(members)}
            cursor = self._conn.execute(query, params)
            try:
                versions = ReadAhead(cursor)
                for conversation_id in members:
                    row = found[conversation_id]
                    history = history_from(versions, conversation_id, row[1], row[2], limit)
                    if history is None:  # far behind the newest: read from its place
                        history = self._history(conversation_id, row, limit)
                    histories[conversation_id] = history
            finally:
                cursor.close()
        return histories

    def conversations_older_than(self, cutoff: float) -> list[int]:
        """Conversations received before ``cutoff`` with nothing left to deliver."""
        rows = self._conn.execute(queries.CONVERSATIONS_DONE_BEFORE, (cutoff,)).fetchall()
        return [row[0] for row in rows]

    def delivery_ids_of(self, conversation_ids: Sequence[int]) -> list[int]:
        ids: list[int] = []
        for conversation_id in conversation_ids:
            rows = self._conn.execute(queries.DELIVERY_IDS_OF, (conversation_id,)).fetchall()
            ids.extend(row[0] for row in rows)
        return ids

    def purge(self, conversation_ids: Sequence[int]) -> int:
        """Delete conversations with their deliveries. ``secure_delete`` overwrites the freed
        pages, so the personal data does not linger in the file."""
        self._conn.execute(queries.SECURE_DELETE)
        with self._transaction() as db:
            deleted = sum(
                db.execute(queries.DELETE_CONVERSATION, (i,)).rowcount for i in conversation_ids
            )
        return deleted

    def purge_quarantine_older_than(self, cutoff: float) -> int:
        self._conn.execute(queries.SECURE_DELETE)
        with self._transaction() as db:
            return db.execute(queries.DELETE_QUARANTINE_BEFORE, (cutoff,)).rowcount

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file and empty it (after a purge, so
        deleted rows do not survive in the log either)."""
        self._conn.execute(queries.CHECKPOINT)

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Work that must run once at a time (purge): one SQLite file has one relay, and its
        writes are serialised by the file's lock, so this always holds (``name`` unused)."""
        del name
        yield True

    def writable(self, now: float | None = None) -> bool:
        """True if a row of the database file can be written and committed (fsync'd) now."""
        now = time.time() if now is None else now
        try:
            with self._transaction() as db:
                db.execute(queries.PROBE_WRITE, (now,))
        except sqlite3.Error:
            return False
        return True
