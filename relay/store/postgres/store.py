"""The store on PostgreSQL: the SQLite store's operations, for several relays on one database."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import TupleRow

from relay.leads.model import Lead, Refused
from relay.model.errors import StoreError
from relay.routing.rules import PlannedDelivery
from relay.store.admission import Admission, scan_due
from relay.store.base import ACTIVE, COUNTED
from relay.store.console import audit_row, conversation_row, health_rows, search
from relay.store.operator import VISITOR_ROWS, earlier_chats
from relay.store.pgconnect import connect, redacted
from relay.store.postgres import queries as q
from relay.store.postgres.listen import Listener
from relay.store.postgres.schema import migrate
from relay.store.records import (
    Accepted,
    AuditRow,
    ClaimedDelivery,
    ConversationRow,
    DeliveryRow,
    DestinationHealth,
    Intake,
    QuarantineRow,
)
from relay.store.rows import RowWriter, lead_from_row

log = logging.getLogger(__name__)

# How long a claim holds a delivery unless the relay passes its own: longer than any send may
# take (every send has a total deadline), short enough that a dead relay's work resumes soon.
DEFAULT_LEASE_SECONDS = 300.0
# How often a lead's transition may find the row changed by another relay and try again.
LEAD_ATTEMPTS = 20
# How often an intake may lose the race for a version number to another relay and try again.
VERSION_ATTEMPTS = 20
# This store's statements for the rows both stores write alike (relay.store.rows).
WRITES = RowWriter(
    plan_delivery=q.INSERT_DELIVERY,
    open_leads_of_visitor=q.OPEN_LEADS_OF_VISITOR,
    insert_lead=q.INSERT_LEAD,
    update_lead=q.UPDATE_LEAD,
)

Connection = psycopg.Connection[TupleRow]
# What leases() counts: held by this relay, held by other relays, expired (their holder died).
LEASE_STATES = ("this_relay", "other_relays", "expired")


def _recipients(done: Sequence[str]) -> str:
    return json.dumps(sorted(set(done)))


class PostgresStore:
    """The operations of ``relay.store.Store`` over one PostgreSQL connection. Not thread-safe:
    one thread at a time (``relay.store.storethread.StoreThread``), as the SQLite store.

    ``holder``: who this relay is in the shared queue (claims are recorded under it, and
    ``recover_claimed`` takes back what it held before a restart); a fresh one per store unless
    given. ``lease_seconds``: how long a claim holds a delivery; once it expires any relay's
    claim takes the delivery, so the work of a relay that died is not stuck with it."""

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        holder: str | None = None,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
        check: bool = False,
    ) -> None:
        self.url = url
        self._password = password
        self.where = f"the database {redacted(url)}"
        self.holder = holder or uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self._tokens: dict[int, str] = {}  # delivery id -> the token of this relay's claim
        self._listener: Listener | None = None
        self._conn = self._connect()
        try:
            migrate(self._conn, self.where)
        except StoreError:
            self._conn.close()
            raise
        except psycopg.Error as exc:
            self._conn.close()
            raise StoreError(f"{self.where} cannot be used: {exc}") from None
        del check  # PostgreSQL checks its own pages (data checksums); nothing to run here

    @property
    def _conninfo(self) -> str:
        if self._password is None:
            return self.url
        return make_conninfo(self.url, password=self._password)

    def _connect(self) -> Connection:
        try:
            conn = connect(self._conninfo)
        except psycopg.Error as exc:
            raise StoreError(f"{self.where} cannot be opened: {exc}") from None
        # Statements outside transaction() commit on their own; transaction() is BEGIN ...
        # COMMIT, and nested, a savepoint.
        conn.autocommit = True
        return conn

    def close(self) -> None:
        if self._listener is not None:
            conn = self._conn
            self._listener.stop(lambda payload: conn.execute(q.NOTIFY_PAYLOAD, (payload,)))
            self._listener = None
        self._conn.close()

    def listen(self, wake: Callable[[], object]) -> Listener:
        """Call ``wake`` (from another thread) whenever any relay on this database commits new
        due deliveries: LISTEN on a connection of its own until ``close``."""
        if self._listener is None:
            self._listener = Listener(self._conninfo, self.where, wake)
            self._listener.start()
        return self._listener

    def file_problem(self) -> str | None:
        """No local file to lose: the server keeps the data (see ``writable``)."""
        return None

    @contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction; inside ``batch()`` a savepoint, so a failing operation undoes only
        its own changes and the batch commits once. A connection lost since the last one is
        opened again first (the server restarted, or failed over)."""
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        with self._conn.transaction():
            yield self._conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run several operations with one commit: group commit."""
        with self._transaction():
            yield

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Reads inside a batch whose failure must leave the batch usable: a savepoint, as any
        error aborts a PostgreSQL transaction until it is rolled back to one."""
        with self._transaction():
            yield

    def _read(self) -> Connection:
        """The connection for a read outside a transaction, opened again if it was lost."""
        if self._conn.closed or self._conn.broken:
            self._conn = self._connect()
        return self._conn

    # -- intake --------------------------------------------------------------------------------

    def accept_many(self, intakes: Sequence[Intake], now: float | None = None) -> list[Accepted]:
        """Store bodies and their planned deliveries in ONE transaction."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            accepted = [self._accept(db, intake, now) for intake in intakes]
            if any(a.deliveries for a in accepted):
                db.execute(q.NOTIFY)  # sent at commit: idle relays claim at once
            return accepted

    def accept(self, intake: Intake, now: float | None = None) -> Accepted:
        return self.accept_many([intake], now)[0]

    def _accept(self, db: Connection, intake: Intake, now: float) -> Accepted:
        """Duplicates and version numbers are decided by the unique constraints: an INSERT
        that conflicts waits for the other transaction and inserts nothing; then either the
        same content is there (a duplicate) or the version was taken (number again)."""
        for _ in range(VERSION_ATTEMPTS):
            inserted = db.execute(
                q.INSERT_CONVERSATION,
                (
                    intake.conv_key,
                    intake.account_id,
                    intake.channel_id,
                    intake.content_hash,
                    intake.category,
                    now,
                    intake.raw,
                    intake.begin_at,
                    intake.conv_key,
                ),
            ).fetchone()
            if inserted is not None:
                conversation_id, version = int(inserted[0]), int(inserted[1])
                created = WRITES.plan_deliveries(
                    db, conversation_id, intake.conv_key, intake.category, intake.planned, now=now
                )
                if intake.lead is not None:
                    WRITES.record_lead(
                        db,
                        conversation_id,
                        intake.conv_key,
                        intake.category,
                        intake.lead,
                        now=now,
                    )
                return Accepted(conversation_id, version, duplicate=False, deliveries=created)
            existing = db.execute(
                q.FIND_CONVERSATION, (intake.conv_key, intake.content_hash)
            ).fetchone()
            if existing is not None:
                return Accepted(int(existing[0]), int(existing[1]), duplicate=True, deliveries=0)
        raise StoreError(
            f"conversation {intake.conv_key}: no version number could be taken after"
            f" {VERSION_ATTEMPTS} attempts (other relays kept storing new versions)"
        )

    def quarantine(
        self,
        reason: str,
        message: str,
        body: bytes,
        remote: str | None,
        *,
        max_rows: int,
        max_bytes: int,
        max_body: int,
        now: float | None = None,
    ) -> int:
        """Keep a refused body (cut to ``max_body`` and ``max_bytes``); drop the oldest rows
        beyond ``max_rows`` and those that bring the kept bodies beyond ``max_bytes``."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            row = db.execute(
                q.INSERT_QUARANTINE,
                (now, reason, message, remote, len(body), body[: min(max_body, max_bytes)]),
            ).fetchone()
            db.execute(q.TRIM_QUARANTINE_ROWS, (max_rows,))
            db.execute(q.TRIM_QUARANTINE_BYTES, (max_bytes,))
        assert row is not None
        return int(row[0])

    # -- the delivery queue --------------------------------------------------------------------

    def recover_claimed(self, now: float | None = None) -> int:
        """Deliveries this relay held before a restart, and any whose lease expired, go back
        to the queue, due now. The interrupted attempt counts (it may have reached the
        destination). Other relays' live leases are left alone."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            cur = db.execute(q.RECOVER, {"now": now, "holder": self.holder})
        self._tokens.clear()
        return cur.rowcount

    def claim_due(
        self,
        limit: int,
        now: float | None = None,
        *,
        admit: Callable[[dict[str, Any]], bool] | None = None,
        past_refused: bool = True,
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries (and deliveries whose lease expired) to this
        relay, in due order, counting the attempt. Rows other relays are claiming at the same
        moment are skipped (``FOR UPDATE SKIP LOCKED``), so every delivery has one holder.

        With ``admit``, due deliveries are offered to it in order and only those whose action
        it admits are claimed (per-destination limits); the others stay queued as they are.
        ``past_refused=False``: the scan ends at the first delivery ``admit`` turns away."""
        now = time.time() if now is None else now
        if limit <= 0:
            return []
        token = uuid.uuid4().hex
        with self._transaction() as db:
            ids = self._choose(db, now, limit, admit, past_refused)
            if not ids:
                return []
            rows = db.execute(
                q.CLAIM,
                {
                    "now": now,
                    "holder": self.holder,
                    "token": token,
                    "until": now + self.lease_seconds,
                    "ids": ids,
                },
            ).fetchall()
        order = {delivery_id: n for n, delivery_id in enumerate(ids)}
        rows.sort(key=lambda row: order[row[0]])
        for row in rows:
            self._tokens[int(row[0])] = token
        return [
            ClaimedDelivery(
                id=int(row[0]),
                conversation_id=int(row[1]),
                rule=row[2],
                channel=row[3],
                action=json.loads(row[4]),
                category=row[5],
                attempts=int(row[6]),
                created_at=float(row[7]),
                dedupe_key=row[8],
                done_recipients=tuple(json.loads(row[9])),
                raw=bytes(row[10]),
            )
            for row in rows
        ]

    @staticmethod
    def _choose(
        db: Connection,
        now: float,
        limit: int,
        admit: Callable[[dict[str, Any]], bool] | None,
        past_refused: bool = True,
    ) -> list[int]:
        """The ids to claim, locked: expired leases first, then due deliveries, in order.
        Without ``admit`` the first ``limit`` unlocked rows are locked as they are read; with
        it the candidates are read, offered to ``admit``, and only the admitted locked."""
        if admit is None:
            return PostgresStore._scan(db, now, limit, None, (q.EXPIRED_PAGE, q.DUE_PAGE))
        scans = (q.EXPIRED_SCAN, q.DUE_SCAN)
        chosen = PostgresStore._scan(db, now, limit, admit, scans, past_refused=past_refused)
        if not chosen:
            return []
        rows = db.execute(q.LOCK_CHOSEN, {"ids": chosen, "now": now}).fetchall()
        locked = {int(row[0]) for row in rows}
        return [i for i in chosen if i in locked]  # less if another relay claimed one meanwhile

    @staticmethod
    def _scan(
        db: Connection,
        now: float,
        limit: int,
        admit: Callable[[dict[str, Any]], bool] | None,
        queries: tuple[str, str],
        *,
        past_refused: bool = True,
    ) -> list[int]:
        """Up to ``limit`` ids from each query in turn (``relay.store.admission.scan_due``):
        with ``admit``, those it accepts, one admission check across both queries."""
        ids: list[int] = []
        admission = None if admit is None else Admission(admit, past_refused=past_refused)
        for query in queries:

            def fetch(
                at: float, last: int, refused: Sequence[str], page: int, query: str = query
            ) -> list[Any]:
                params = {"now": now, "at": at, "id": last, "page": page, "refused": refused}
                return db.execute(query, params).fetchall()

            scan_due(fetch, limit, admission, ids)
            if admission is not None and admission.refused and not past_refused:
                break  # ended at a delivery turned away
        return ids

    def next_due_at(self, after: float | None = None) -> float | None:
        """When the earliest queued delivery is due (or another relay's lease expires); with
        ``after``, the earliest such time later than it."""
        row = (
            self._read()
            .execute(
                q.NEXT_DUE,
                {"after": float("-inf") if after is None else after, "holder": self.holder},
            )
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    def _finish(
        self, query: str, delivery_id: int, params: dict[str, Any], attempt: tuple[str, str]
    ) -> None:
        """Record an outcome (and the attempt: outcome, detail) only while this relay still
        holds the delivery: once its lease expired and another relay claimed it, that relay's
        outcome is the one that counts."""
        token = self._tokens.pop(delivery_id, None)
        try:
            with self._transaction() as db:
                cur = db.execute(query, {**params, "id": delivery_id, "token": token})
                if cur.rowcount:
                    db.execute(q.RECORD_ATTEMPT, (delivery_id, params["now"], *attempt))
        except BaseException:
            if token is not None:  # not recorded: the worker tries again with the same claim
                self._tokens[delivery_id] = token
            raise
        if cur.rowcount == 0:
            log.warning(
                "delivery %d: outcome not recorded, this relay no longer holds it (its lease"
                " expired and it went back to the queue)",
                delivery_id,
            )

    def mark_sent(
        self,
        delivery_id: int,
        now: float | None = None,
        *,
        sent_to: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """``sent_to='outbox'``: written to the local outbox, not to a real destination;
        ``message_id``: the Message-ID of an email really sent (``sent_email_ids``)."""
        now = time.time() if now is None else now
        params = {"now": now, "sent_to": sent_to, "ref": message_id}
        self._finish(q.MARK_SENT, delivery_id, params, ("sent", sent_to or ""))

    def mark_retry(
        self,
        delivery_id: int,
        at: float,
        error: str,
        done: Sequence[str] = (),
        now: float | None = None,
    ) -> None:
        now = time.time() if now is None else now
        params = {"at": at, "error": error, "now": now, "done": _recipients(done)}
        self._finish(q.MARK_RETRY, delivery_id, params, ("retry", error))

    def mark_dead(
        self, delivery_id: int, error: str, done: Sequence[str] = (), now: float | None = None
    ) -> None:
        now = time.time() if now is None else now
        params = {"error": error, "now": now, "done": _recipients(done)}
        self._finish(q.MARK_DEAD, delivery_id, params, ("dead", error))

    def record_external_ref(
        self, delivery_id: int, external_ref: str | None, note: str | None = None
    ) -> None:
        """Store the id the destination gave what this delivery created or updated; ``note``
        (why it created nothing) is kept as the delivery's last error. Recorded even if this
        relay's lease has expired meanwhile: the object exists at the destination either way,
        and the delivery's next holder must update it rather than create another."""
        with self._transaction() as db:
            db.execute(
                q.RECORD_EXTERNAL_REF, {"ref": external_ref, "note": note, "id": delivery_id}
            )

    def known_external_ref(self, delivery_id: int) -> str | None:
        """The id recorded by this delivery or, failing that, by the latest delivery of the
        same conversation (``conv_key``, any version) and the same action: the object a
        retry or a later version must update instead of creating another."""
        row = self._read().execute(q.KNOWN_EXTERNAL_REF, (delivery_id,)).fetchone()
        return None if row is None else str(row[0])

    def release(self, delivery_ids: Sequence[int], now: float | None = None) -> None:
        """Give claimed deliveries back untouched (shutdown before they were sent): the
        attempt that never finished is not counted."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            for delivery_id in delivery_ids:
                token = self._tokens.pop(delivery_id, None)
                db.execute(q.RELEASE, {"now": now, "id": delivery_id, "token": token})

    def leases(self, now: float | None = None) -> dict[str, int]:
        """'sending' deliveries by lease: ``LEASE_STATES``."""
        now = time.time() if now is None else now
        rows = self._read().execute(q.LEASES, {"now": now, "holder": self.holder}).fetchall()
        found = {str(state): int(count) for state, count in rows}
        return {state: found.get(state, 0) for state in LEASE_STATES}

    # -- operator ------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        """Deliveries by status (``COUNTED``); ``sent`` counts real sends only and ``outbox``
        the deliveries written to the local outbox instead."""
        found = {str(k): int(v) for k, v in self._read().execute(q.COUNTS).fetchall()}
        return {status: found.get(status, 0) for status in COUNTED}

    def oldest_active_created_at(self) -> float | None:
        row = self._read().execute(q.OLDEST_ACTIVE).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def deliveries(
        self,
        statuses: Sequence[str] = (*ACTIVE, "dead"),
        *,
        conversation_id: int | None = None,
        limit: int = 1000,
    ) -> list[DeliveryRow]:
        db = self._read()
        if conversation_id is None:
            rows = db.execute(q.DELIVERIES, (list(statuses), limit)).fetchall()
        else:
            rows = db.execute(q.DELIVERIES_OF, (list(statuses), conversation_id, limit)).fetchall()
        return [DeliveryRow(*row) for row in rows]

    def delivery(self, delivery_id: int) -> DeliveryRow | None:
        row = self._read().execute(q.DELIVERY, (delivery_id,)).fetchone()
        return None if row is None else DeliveryRow(*row)

    def retry_now(self, delivery_ids: Sequence[int] | None = None, now: float | None = None) -> int:
        """Requeue deliveries (given ids, or every dead one) for an immediate attempt: a fresh
        start, so attempts, backoff and the age limit count again from now. Sent and in-flight
        deliveries are left alone (``replay`` sends a conversation again)."""
        now = time.time() if now is None else now
        with self._transaction() as db:
            if delivery_ids is None:
                changed = db.execute(q.RETRY_DEAD, {"now": now}).rowcount
            else:
                changed = sum(
                    db.execute(q.RETRY_ONE, {"now": now, "id": i}).rowcount for i in delivery_ids
                )
            if changed:
                db.execute(q.NOTIFY)
            return changed

    def conversation_raw(self, conversation_id: int) -> tuple[bytes, str, str] | None:
        """(raw body, category, conv_key) of one stored conversation."""
        row = self._read().execute(q.CONVERSATION_RAW, (conversation_id,)).fetchone()
        return None if row is None else (bytes(row[0]), str(row[1]), str(row[2]))

    def latest_version_id(self, conv_key: str) -> int | None:
        """The id of the newest stored version of a conversation ("<accountId>-<channel.id>")."""
        row = self._read().execute(q.LATEST_VERSION, (conv_key,)).fetchone()
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
            created = WRITES.plan_deliveries(
                db, conversation_id, conv_key, category, planned, now=now, force=True
            )
            if created:
                db.execute(q.NOTIFY)
            return created

    def quarantined(self, limit: int = 100) -> list[QuarantineRow]:
        rows = self._read().execute(q.QUARANTINED, (limit,)).fetchall()
        return [_quarantine_row(row) for row in rows]

    def quarantine_entry(self, entry_id: int) -> QuarantineRow | None:
        row = self._read().execute(q.QUARANTINE_ENTRY, (entry_id,)).fetchone()
        return None if row is None else _quarantine_row(row)

    def sent_email_ids(self, delivery_id: int, limit: int = 10) -> tuple[str, ...]:
        """As the SQLite store's: the Message-IDs of the emails really sent about the visitor
        of this delivery's conversation (not its own), oldest first, the newest ``limit``."""
        params = {"id": delivery_id, "rows": VISITOR_ROWS, "limit": limit}
        rows = self._read().execute(q.SENT_EMAIL_IDS, params).fetchall()
        return tuple(str(row[0]) for row in reversed(rows))

    def visitor_history(
        self, conversation_id: int, limit: int = 20
    ) -> tuple[tuple[str, float], ...]:
        """As the SQLite store's: the same visitor's earlier conversations in the same account
        (by visitor id, else email address), one (category, begin time) per chat, oldest
        first, at most the newest ``limit``."""
        params = {"id": conversation_id, "rows": VISITOR_ROWS}
        rows = self._read().execute(q.VISITOR_HISTORY, params).fetchall()
        return earlier_chats(rows, limit)

    def visitor_histories(
        self, conversation_ids: Sequence[int], limit: int = 20
    ) -> dict[int, tuple[tuple[str, float], ...]]:
        """``visitor_history`` of each conversation, one query each."""
        return {cid: self.visitor_history(cid, limit) for cid in conversation_ids}

    def conversations_older_than(self, cutoff: float) -> list[int]:
        """Conversations received before ``cutoff`` with nothing left to deliver."""
        return [int(row[0]) for row in self._read().execute(q.OLDER_THAN, (cutoff,)).fetchall()]

    def delivery_ids_of(self, conversation_ids: Sequence[int]) -> list[int]:
        rows = self._read().execute(q.DELIVERY_IDS_OF, (list(conversation_ids),)).fetchall()
        return [int(row[0]) for row in rows]

    def purge(self, conversation_ids: Sequence[int]) -> int:
        """Delete conversations with their deliveries (``checkpoint`` vacuums afterwards)."""
        with self._transaction() as db:
            return db.execute(q.PURGE, (list(conversation_ids),)).rowcount

    def purge_quarantine_older_than(self, cutoff: float) -> int:
        with self._transaction() as db:
            return db.execute(q.PURGE_QUARANTINE, (cutoff,)).rowcount

    def checkpoint(self) -> None:
        """After a purge: VACUUM the tables, so the deleted rows' space is reclaimed for new
        rows (outside a transaction; inside one, as on the store thread, nothing to do)."""
        db = self._read()
        if db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            db.execute(q.VACUUM)

    def writable(self, now: float | None = None) -> bool:
        """True if a row can be written and committed on the server now."""
        now = time.time() if now is None else now
        try:
            with self._transaction() as db:
                db.execute(q.PROBE, (now,))
        except (psycopg.Error, StoreError):
            return False
        return True

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Work that must run once across every relay on this database (purge): yields True
        while this relay holds the advisory lock ``name``, False if another relay does."""
        db = self._read()
        row = db.execute(q.TRY_LOCK, (name,)).fetchone()
        held = bool(row and row[0])
        try:
            yield held
        finally:
            if held and not db.closed:
                db.execute(q.UNLOCK, (name,))

    # -- leads (relay.leads) -------------------------------------------------------------------

    def lead(self, lead_id: int) -> Lead | None:
        found = self._read().execute(q.LEAD_BY_ID, (lead_id,)).fetchone()
        return None if found is None else lead_from_row(found)

    def lead_for_conversation(self, conversation_id: int) -> Lead | None:
        """The lead of the conversation (any version) stored under ``conversation_id``."""
        found = self._read().execute(q.LEAD_OF_CONVERSATION, (conversation_id,)).fetchone()
        return None if found is None else lead_from_row(found)

    def leads(self, state: str | None = None, limit: int = 1000) -> list[Lead]:
        db = self._read()
        if state is None:
            rows = db.execute(q.LEADS, (limit,)).fetchall()
        else:
            rows = db.execute(q.LEADS_IN_STATE, (state, limit)).fetchall()
        return [lead_from_row(row) for row in rows]

    def leads_between(self, start: float, end: float) -> list[Lead]:
        rows = self._read().execute(q.LEADS_BETWEEN, (start, end)).fetchall()
        return [lead_from_row(row) for row in rows]

    def change_lead(
        self, lead_id: int, transition: Callable[[Lead], Lead | Refused]
    ) -> Lead | Refused | None:
        """Apply a pure transition to the stored lead and write the result by compare-and-set
        (None: no lead). If another relay changed the lead in between, the transition is
        applied again to what it wrote (a second claim is then refused)."""
        for _ in range(LEAD_ATTEMPTS):
            with self._transaction() as db:
                found = db.execute(q.LEAD_BY_ID, (lead_id,)).fetchone()
                if found is None:
                    return None
                before = lead_from_row(found)
                after = transition(before)
                if not isinstance(after, Lead) or after == before:
                    return after
                if WRITES.write_lead(db, before, after):
                    return after
        raise StoreError(
            f"lead {lead_id}: changed by other relays during each of {LEAD_ATTEMPTS} attempts"
        )

    def slack_request_seen(self, signature: str, now: float, window: float) -> bool:
        """Record a verified Slack request; True if the same one was recorded already (a
        replay, by any relay). Records older than ``window`` are dropped: their timestamps
        are refused."""
        with self._transaction() as db:
            db.execute(q.FORGET_SLACK_REQUESTS, (now - window,))
            return db.execute(q.RECORD_SLACK_REQUEST, (signature, now)).rowcount == 0

    def escalations(self) -> set[tuple[int, int]]:
        """(lead id, step) of every escalation recorded."""
        rows = self._read().execute(q.ESCALATIONS).fetchall()
        return {(int(lead_id), int(step)) for lead_id, step in rows}

    def record_escalation(
        self, lead: Lead, step: int, planned: Sequence[PlannedDelivery], now: float
    ) -> int | None:
        """Record escalation ``step`` of ``lead`` and plan its deliveries in one transaction;
        None if it was recorded already (by an earlier run or another relay), or the lead is
        no longer open. Returns the number of deliveries planned."""
        with self._transaction() as db:
            row = db.execute(q.RECORD_ESCALATION, (lead.id, step, now)).fetchone()
            if row is None:
                return None
            created = WRITES.plan_deliveries(
                db, int(row[0]), lead.conv_key, lead.category, planned, now=now
            )
            if created:
                db.execute(q.NOTIFY)
            return created

    def digest_days(self) -> set[str]:
        return {str(row[0]) for row in self._read().execute(q.DIGEST_DAYS).fetchall()}

    def take_digest_day(self, day: str, now: float) -> bool:
        """Record that the digest of ``day`` is being sent; False if it was already (by this
        relay or another)."""
        with self._transaction() as db:
            return db.execute(q.TAKE_DIGEST_DAY, (day, now)).rowcount == 1

    def release_digest_day(self, day: str) -> None:
        """Sending failed: the next pass (of any relay) tries again."""
        with self._transaction() as db:
            db.execute(q.RELEASE_DIGEST_DAY, (day,))

    def day_conversations(self, start: float, end: float) -> list[tuple[str, float, bytes | None]]:
        """(category, received_at, raw body of low-rated ones) of the newest version of each
        conversation received in [start, end)."""
        rows = self._read().execute(q.DAY_CONVERSATIONS, (start, end)).fetchall()
        return [(str(cat), float(at), None if raw is None else bytes(raw)) for cat, at, raw in rows]

    # -- the console (relay.console) ---------------------------------------------------------

    def add_console_user(self, name: str, password_hash: str, now: float) -> bool:
        """Add a user, or give an existing one a new password; True if the user is new."""
        with self._transaction() as db:
            existed = db.execute(q.CONSOLE_USER_EXISTS, (name,)).fetchone() is not None
            db.execute(q.UPSERT_CONSOLE_USER, (name, password_hash, now))
            return not existed

    def remove_console_user(self, name: str) -> bool:
        with self._transaction() as db:
            return db.execute(q.DELETE_CONSOLE_USER, (name,)).rowcount == 1

    def console_password_hash(self, name: str) -> str | None:
        row = self._read().execute(q.CONSOLE_USER_HASH, (name,)).fetchone()
        return None if row is None else str(row[0])

    def console_user_count(self) -> int:
        row = self._read().execute(q.CONSOLE_USER_COUNT).fetchone()
        return 0 if row is None else int(row[0])

    def console_user_session(self, name: str) -> tuple[str, float | None] | None:
        """What a session cookie of ``name`` is signed with: the password hash and when the
        user last signed out (None: never); None if there is no such user."""
        row = self._read().execute(q.CONSOLE_USER_SESSION, (name,)).fetchone()
        return None if row is None else (str(row[0]), None if row[1] is None else float(row[1]))

    def sign_out_console_user(self, name: str, now: float) -> bool:
        """End every session of ``name`` (signed in before ``now``); False if no such user."""
        with self._transaction() as db:
            return db.execute(q.SIGN_OUT_CONSOLE_USER, (now, name)).rowcount == 1

    def console_users(self) -> list[tuple[str, float]]:
        rows = self._read().execute(q.CONSOLE_USERS).fetchall()
        return [(str(name), float(at)) for name, at in rows]

    def record_audit(self, actor: str, action: str, target: str, detail: str, now: float) -> None:
        with self._transaction() as db:
            db.execute(q.INSERT_AUDIT, (now, actor, action, target, detail))

    def audit_log(self, limit: int = 200) -> list[AuditRow]:
        return [audit_row(r) for r in self._read().execute(q.AUDIT_LOG, (limit,)).fetchall()]

    def find_conversations(
        self,
        text: str = "",
        start: float = 0.0,
        end: float = float("inf"),
        category: str | None = None,
        limit: int = 100,
    ) -> list[ConversationRow]:
        """As the SQLite store's."""
        params = (start, min(end, 1e18), category, category)
        db = self._read()
        # A server-side cursor: rows come a batch at a time, and no further than needed.
        with db.transaction(), db.cursor(name="relay_find_conversations") as cursor:
            cursor.itersize = 2000
            cursor.execute(q.FIND_CONVERSATIONS, params)
            return search(cursor, text, limit)

    def conversation_row(self, conversation_id: int) -> ConversationRow | None:
        row = self._read().execute(q.CONVERSATION_ROW, (conversation_id,)).fetchone()
        return None if row is None else conversation_row(row)

    def conversation_versions(self, conv_key: str) -> list[ConversationRow]:
        rows = self._read().execute(q.CONVERSATION_VERSIONS, (conv_key,)).fetchall()
        return [conversation_row(row) for row in rows]

    def destination_health(self, since: float) -> list[DestinationHealth]:
        db = self._read()
        totals = db.execute(q.DELIVERY_HEALTH, (since,)).fetchall()
        errors = db.execute(q.RECENT_ERRORS, (since,)).fetchall()
        return health_rows(totals, errors)

    def period_conversations(self, start: float, end: float) -> list[tuple[str, float, bytes]]:
        rows = self._read().execute(q.PERIOD_CONVERSATIONS, (start, end)).fetchall()
        return [(str(cat), float(at), bytes(raw)) for cat, at, raw in rows]

    def drop_quarantine_entry(self, entry_id: int) -> bool:
        with self._transaction() as db:
            return db.execute(q.DELETE_QUARANTINE_ENTRY, (entry_id,)).rowcount == 1

    def delivery_attempts(self, delivery_id: int) -> list[tuple[float, str, str]]:
        rows = self._read().execute(q.DELIVERY_ATTEMPTS, (delivery_id,)).fetchall()
        return [(float(at), str(outcome), str(detail)) for at, outcome, detail in rows]


def _quarantine_row(row: TupleRow) -> QuarantineRow:
    return QuarantineRow(
        int(row[0]), float(row[1]), row[2], row[3], row[4], int(row[5]), bytes(row[6])
    )
