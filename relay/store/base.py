"""The SQLite schema, the connection settings and the transaction helper every store part uses."""

from __future__ import annotations

import os
import queue
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

from relay.model.errors import StoreError, StoreVersionError
from relay.ops.fsync import sync_directory
from relay.store import queries
from relay.store.rows import RowWriter

# This store's statements for the rows both stores write alike (relay.store.rows).
WRITES = RowWriter(
    plan_delivery=queries.PLAN_DELIVERY,
    open_leads_of_visitor=queries.OPEN_LEADS_OF_VISITOR,
    insert_lead=queries.INSERT_LEAD,
    update_lead=queries.UPDATE_LEAD,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id            INTEGER PRIMARY KEY,
    conv_key      TEXT    NOT NULL,   -- "<accountId>-<channel.id>"
    account_id    INTEGER NOT NULL,
    channel_id    INTEGER NOT NULL,
    version       INTEGER NOT NULL,   -- 1, 2, ... for re-posts with changed content
    content_hash  TEXT    NOT NULL,
    category      TEXT    NOT NULL,
    received_at   REAL    NOT NULL,
    raw           BLOB    NOT NULL,   -- the body exactly as posted
    parsed        BLOB    NOT NULL,   -- the normalised conversation as JSON
    UNIQUE (conv_key, content_hash)
);
CREATE INDEX IF NOT EXISTS conversations_received ON conversations (received_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id               INTEGER PRIMARY KEY,
    conversation_id  INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    dedupe_key       TEXT    NOT NULL UNIQUE,
    rule             TEXT    NOT NULL,
    channel          TEXT    NOT NULL,   -- "email", "slack", ...
    action           TEXT    NOT NULL,   -- the action as JSON, frozen at intake
    category         TEXT    NOT NULL,
    status           TEXT    NOT NULL DEFAULT 'pending',
                     -- pending -> sending -> sent | retrying -> ... | dead
    attempts         INTEGER NOT NULL DEFAULT 0,
    created_at       REAL    NOT NULL,
    next_attempt_at  REAL    NOT NULL,
    updated_at       REAL    NOT NULL,
    last_error       TEXT,
    done_recipients  TEXT    NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at);
-- The claim order over the whole queue, so a claim reads only the rows it takes (without it a
-- claim sorts every due row: O(queue) per claim, quadratic when draining a backlog).
CREATE INDEX IF NOT EXISTS deliveries_due_order ON deliveries (next_attempt_at, id)
    WHERE status IN ('pending', 'retrying');
CREATE INDEX IF NOT EXISTS deliveries_conversation ON deliveries (conversation_id);
CREATE TABLE IF NOT EXISTS quarantine (
    id           INTEGER PRIMARY KEY,
    received_at  REAL    NOT NULL,
    reason       TEXT    NOT NULL,
    message      TEXT    NOT NULL,
    remote       TEXT,
    size         INTEGER NOT NULL,
    body         BLOB    NOT NULL
);
CREATE TABLE IF NOT EXISTS health_probe (   -- one row, rewritten by each readiness check
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at  REAL    NOT NULL
);
"""

# Versioned schema changes, applied in order and recorded in PRAGMA user_version. Version 1 is
# the schema above (CREATE ... IF NOT EXISTS, so a store written before versioning, at
# user_version 0, is taken over as it is); never edit a released step, append a new one.
MIGRATIONS: tuple[str, ...] = (
    SCHEMA,
    # 2: where a sent delivery went: NULL (a real destination, or written before this
    # column existed) or 'outbox' (no destination configured: a file under <state_dir>/outbox).
    "ALTER TABLE deliveries ADD COLUMN sent_to TEXT;",
    # 3: conversations.parsed (the normalised conversation) was written on every intake and
    # never read: the worker parses the stored raw body. DROP COLUMN needs SQLite >= 3.35.
    "ALTER TABLE conversations DROP COLUMN parsed;",
    # 4: the id a CRM or help desk gave what a delivery created (a HubSpot note, a Pipedrive
    # lead, a Freshdesk or Zendesk ticket), so a later delivery of the same conversation and
    # action updates that object instead of creating a second one. NULL for other channels.
    "ALTER TABLE deliveries ADD COLUMN external_ref TEXT;",
    # 5: leads (missed and offline conversations someone must follow up), one per
    # conversation key, the escalations and digests sent for them, and the Slack requests
    # already acted on (replays are refused).
    """
CREATE TABLE leads (
    id               INTEGER PRIMARY KEY,
    conv_key         TEXT    NOT NULL UNIQUE,
    conversation_id  INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    category         TEXT    NOT NULL,
    created_at       REAL    NOT NULL,
    state            TEXT    NOT NULL DEFAULT 'open',  -- open, claimed, done, answered-in-chat
    visitor_id       TEXT,
    visitor_email    TEXT,
    visitor_name     TEXT,
    claimed_by       TEXT,
    claimed_at       REAL,
    done_by          TEXT,
    done_at          REAL,
    note             TEXT,
    answered_at      REAL
);
CREATE INDEX leads_state ON leads (state, created_at);
CREATE INDEX leads_visitor_id ON leads (visitor_id) WHERE visitor_id IS NOT NULL;
CREATE INDEX leads_visitor_email ON leads (visitor_email) WHERE visitor_email IS NOT NULL;
CREATE TABLE lead_escalations (
    lead_id  INTEGER NOT NULL REFERENCES leads (id) ON DELETE CASCADE,
    step     INTEGER NOT NULL,   -- 1 for the first escalation, 2 for the second
    at       REAL    NOT NULL,
    PRIMARY KEY (lead_id, step)
);
CREATE TABLE lead_digests (
    day      TEXT PRIMARY KEY,   -- the local date the digest was sent for, YYYY-MM-DD
    at       REAL NOT NULL
);
CREATE TABLE slack_requests (   -- signatures of Slack interactivity requests seen lately
    signature  TEXT PRIMARY KEY,
    at         REAL NOT NULL
);
""",
    # 6: the visitor of each stored body, indexed per account (the expressions now named
    # queries.VISITOR_ID_OF and VISITOR_EMAIL_OF), so that a returning visitor's chats were
    # found without reading every stored body. Migration 10 drops these for indexes on
    # columns holding the same expressions' values.
    """
CREATE INDEX conversations_visitor_id ON conversations (account_id,
    CAST(json_extract(CASE WHEN json_valid(CAST(raw AS TEXT)) THEN CAST(raw AS TEXT) END,
        '$.visitor.id') AS TEXT));
CREATE INDEX conversations_visitor_email ON conversations (account_id,
    lower(json_extract(CASE WHEN json_valid(CAST(raw AS TEXT)) THEN CAST(raw AS TEXT) END,
        '$.visitor.email')));
""",
    # 7: the console's users (argon2 hashes of their passwords), the audit log of every
    # operator action taken there or by `relay user` (who, what, when), and one row per
    # finished delivery attempt (its outcome and the destination's answer or error).
    """
CREATE TABLE console_users (
    name           TEXT PRIMARY KEY,
    password_hash  TEXT NOT NULL,
    created_at     REAL NOT NULL
);
CREATE TABLE console_audit (
    id      INTEGER PRIMARY KEY,
    at      REAL NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,   -- "login", "claim", "retry", "reaccept", ...
    target  TEXT NOT NULL,   -- what it was done to: "lead 3", "delivery 7", ...
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX console_audit_at ON console_audit (at);
CREATE TABLE delivery_attempts (
    id           INTEGER PRIMARY KEY,
    delivery_id  INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    at           REAL    NOT NULL,
    outcome      TEXT    NOT NULL,   -- sent, retry, dead
    detail       TEXT    NOT NULL DEFAULT ''   -- the error, or where a sent one went
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);
""",
    # 8: when a console user last signed out (NULL: never). Session cookies are signed together
    # with it, so signing out ends every session of that user, copies of the cookie included.
    "ALTER TABLE console_users ADD COLUMN signed_out_at REAL;",
    # 9: each conversation's begin time in Unix seconds (the body's beginAt), written at
    # intake: visitor_history, read for every email and Slack delivery claimed, took it from
    # each of up to 200 stored bodies with json_extract, most of that read's time. NULL in
    # rows stored before, and where a body has no beginAt or one no double holds; migration
    # 10 fills in those a body has (queries.BEGIN_OF), and the intake has done so since.
    "ALTER TABLE conversations ADD COLUMN begin_at REAL;",
    # 10: each conversation's visitor id and email address in columns of their own, written at
    # intake and filled in here for the rows stored before, by the same expressions
    # (queries.VISITOR_ID_OF, VISITOR_EMAIL_OF), and begin_at filled in from the body where
    # migration 9 or the hook left it NULL (queries.BEGIN_OF, which the history read from the
    # body until now; NULL stays NULL only for a body without one). The visitor indexes
    # (instead of migration 6's on expressions) hold every column the visitor's history
    # reads, so it reads no table row, and an index of the emails really sent lets the
    # Message-IDs a returning visitor's email refers to be found without reading the
    # deliveries: the history is read for every email and Slack delivery claimed, the
    # Message-IDs for every email.
    f"""
ALTER TABLE conversations ADD COLUMN visitor_id TEXT;
ALTER TABLE conversations ADD COLUMN visitor_email TEXT;
UPDATE conversations SET visitor_id = {queries.VISITOR_ID_OF.format(raw="raw")},
    visitor_email = {queries.VISITOR_EMAIL_OF.format(raw="raw")},
    begin_at = COALESCE(begin_at, {queries.BEGIN_OF.format(raw="raw")});
DROP INDEX conversations_visitor_id;
DROP INDEX conversations_visitor_email;
CREATE INDEX conversations_visitor_id ON conversations
    (account_id, visitor_id, id, conv_key, received_at, category, begin_at)
    WHERE visitor_id != '';
CREATE INDEX conversations_visitor_email ON conversations
    (account_id, visitor_email, id, conv_key, received_at, category, begin_at)
    WHERE visitor_email != '';
CREATE INDEX deliveries_sent_email ON deliveries (conversation_id, updated_at, id, external_ref)
    WHERE channel = 'email' AND status = 'sent' AND sent_to IS NULL
    AND external_ref IS NOT NULL;
""",  # noqa: S608 -- the module's own constant expressions, no value
)
# The oldest SQLite whose ALTER TABLE can drop a column (migration 3).
MIN_SQLITE = (3, 35, 0)
SCHEMA_VERSION = len(MIGRATIONS)

ACTIVE = ("pending", "retrying", "sending")
STATUSES = ("pending", "sending", "retrying", "sent", "dead")
# What counts() reports: the statuses, with sent deliveries that went to the outbox apart.
COUNTED = ("pending", "sending", "retrying", "sent", "outbox", "dead")


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the store at ``path`` to ``SCHEMA_VERSION``, one step per transaction; returns the
    version it was at. Refuses a store written by a newer relay rather than guessing."""
    found: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise StoreVersionError(
            f"{path} has schema version {found}, newer than this relay's {SCHEMA_VERSION}: "
            "run the relay version that wrote it, or a newer one"
        )
    if found < SCHEMA_VERSION and sqlite3.sqlite_version_info < MIN_SQLITE:
        raise StoreError(
            f"{path} needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer to upgrade its "
            f"schema; this Python uses SQLite {sqlite3.sqlite_version}"
        )
    for version in range(found + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(MIGRATIONS[version - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version:d}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return found


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (complete_statement knows about strings and
    comments), so each runs inside the migration's transaction; executescript would commit."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):  # ends with ";": never blank
            yield pending
            pending = ""
    if pending.strip():
        yield pending


# How many of quick_check's findings one error message quotes.
MAX_PROBLEMS_SHOWN = 3


def integrity_problems(conn: sqlite3.Connection) -> list[str]:
    """What ``PRAGMA quick_check`` finds wrong (empty if nothing): a pass over every page."""
    rows = [str(row[0]) for row in conn.execute(queries.QUICK_CHECK).fetchall()]
    return [] if rows == ["ok"] else rows


def damaged(path: Path, problems: list[str]) -> str:
    """One message naming the file and the first few problems found."""
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    return (
        f"the database {path} is damaged: {shown}"
        + (f" (and {more} more problems)" if more > 0 else "")
        + "; restore it from a backup or move it aside"
    )


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_dev, stat.st_ino


class LogCopier:
    """A thread that copies the write-ahead log into the database file on request, through a
    connection of its own with ``synchronous=FULL``: SQLite flushes the log before it copies
    and the database file after, and only then counts the frames as copied, so the store's
    connection (``synchronous=OFF``) starts the log over only once the database file durably
    holds all of it. A passive checkpoint takes no lock that commits need."""

    # Passes of one copy: each takes what the commits added during the one before, so the
    # rest left for the store's thread (which copies it with commits held) is small.
    PASSES = 4

    def __init__(self, database: Path) -> None:
        self._database = database
        self._conn: sqlite3.Connection | None = None  # opened by the first copy, on its thread
        self._asked: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._done = threading.Event()
        self._busy = False  # read and written by the store's thread only
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="relay-checkpoint", daemon=True)
        self._thread.start()

    def running(self) -> bool:
        return self._busy and not self._done.is_set()

    def finished(self) -> bool:
        return self._busy and self._done.is_set()

    def start(self) -> None:
        self._busy = True
        self._asked.put(True)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the copy asked for last has finished (False: ``timeout`` passed)."""
        return self._done.wait(timeout)

    def collect(self) -> None:
        """Ready for the next copy; raises what the finished one raised."""
        self._busy = False
        self._done.clear()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _run(self) -> None:
        while self._asked.get():
            try:
                self.copy()
            except BaseException as exc:  # the store's thread raises it
                self._error = exc
            finally:
                self._done.set()

    def copy(self) -> None:
        """Passive checkpoints on this object's thread, until one finds nothing left to copy
        (at most ``PASSES``)."""
        if self._conn is None:
            conn = sqlite3.connect(
                self._database, isolation_level=None, check_same_thread=False, timeout=30
            )
            try:
                conn.execute("PRAGMA synchronous=FULL")
            except sqlite3.Error:
                conn.close()
                raise
            self._conn = conn
        for _ in range(self.PASSES):
            _, frames, copied = self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if frames == copied:
                return

    def close(self) -> None:
        self._asked.put(False)
        self._thread.join()
        if self._conn is not None:
            self._conn.close()


class WalSync:
    """The durability of a store opened with ``defer_sync``: ``sync`` (any thread) flushes the
    write-ahead log, which makes every transaction committed before the call durable; the
    store's thread calls ``checkpoint`` between transactions."""

    # Checkpoint once the log holds about this many pages (SQLite's own default).
    CHECKPOINT_PAGES = 1000
    # What copies the log on a thread of its own after ``copy_on_a_thread``.
    copier_type: type[LogCopier] = LogCopier
    # Copies on that thread between two on the store's thread, which let the log start over
    # (each costs two flushes with commits held): the log grows to about this many times
    # CHECKPOINT_PAGES pages in between, plus what is committed while the copies run (under
    # sustained load the file reached ~15,000 pages, docs/reliability.md).
    COPIES_PER_RESTART = 4

    def __init__(self, conn: sqlite3.Connection, wal: Path) -> None:
        self._conn = conn
        self._database = wal.with_name(wal.name.removesuffix("-wal"))
        # The log exists: migrate() wrote a transaction through this connection in WAL mode.
        self._fd = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
        try:
            # The log may have just been created (the last connection's close deletes it):
            # its name must be on the disk before a flush of its content acknowledges
            # anything. SQLite does this at its first flush of a new log, which commits with
            # synchronous=OFF never make.
            sync_directory(wal.parent)
        except OSError:
            os.close(self._fd)
            raise
        self._page_size: int = conn.execute("PRAGMA page_size").fetchone()[0]
        self._checkpointed_at = os.fstat(self._fd).st_size
        self._changes = conn.total_changes
        self._copier: LogCopier | None = None
        self._copies = 0  # copies on the copier's thread since the log last started over

    def sync(self) -> None:
        """Flush the log to the disk (fdatasync): OSError if the disk refuses."""
        os.fdatasync(self._fd)

    def copy_on_a_thread(self) -> None:
        """From now on ``checkpoint`` copies the bulk of the log into the database file on a
        thread and connection of their own, while the store's thread goes on committing
        (a checkpoint on the store's thread held up every commit: ~7 ms each, every ~500
        intakes under load, docs/benchmarks.md)."""
        if self._copier is None:
            self._copier = self.copier_type(self._database)

    def checkpoint(self, *, force: bool = False) -> None:
        """Copy the log into the database file, with both flushed, once it has grown by about
        ``CHECKPOINT_PAGES`` pages since the last time (or now, with ``force``). The log's
        size only grows, so growth is counted in changed rows between checks as well.

        After ``copy_on_a_thread`` a due checkpoint only starts the copy there, and the log
        grows on meanwhile. SQLite starts the log over from its beginning only at a commit
        that finds all of it in the database file, which under steady load a copy running
        beside the commits never achieves: so after every ``COPIES_PER_RESTART``-th copy,
        the call that finds it finished copies the rest (what was committed meanwhile: a
        few pages) here, between transactions, and the next commit starts the log over. A
        failure of the copy is raised by the call that finds it finished."""
        copier = self._copier
        if copier is not None and copier.running():
            return  # even when forced: one at a time; the call after it catches up
        if copier is not None and not force:
            if copier.finished():
                self._copies += 1
                self._counted()
                copier.collect()  # raises what the copy raised
                if self._copies < self.COPIES_PER_RESTART:
                    return
                force = True
            elif self._due():
                copier.start()
                return
        if not (force or self._due()):
            return
        self._conn.execute("PRAGMA synchronous=FULL")
        try:
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        finally:
            self._conn.execute("PRAGMA synchronous=OFF")
        self._copies = 0
        self._counted()

    def _counted(self) -> None:
        """The log's growth is counted from here on."""
        self._checkpointed_at = os.fstat(self._fd).st_size
        self._changes = self._conn.total_changes

    def _due(self) -> bool:
        size = os.fstat(self._fd).st_size
        grown = size - self._checkpointed_at >= self.CHECKPOINT_PAGES * self._page_size
        return grown or self._conn.total_changes - self._changes >= self.CHECKPOINT_PAGES

    def close(self) -> None:
        """Back to flushed commits and checkpoints (closing the last connection checkpoints
        the log into the database file): call it after the last ``sync``."""
        if self._copier is not None:
            self._copier.close()
            self._copier = None
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA wal_autocheckpoint=1000")
        os.close(self._fd)


class StoreBase:
    """One connection and its transactions. Not thread-safe: one thread at a time (the app
    funnels every call through ``relay.store.storethread.StoreThread``).

    ``check``: run ``PRAGMA quick_check`` once opened. Any failure to open or a damaged file
    raises ``StoreError`` naming the file and the problem."""

    def __init__(self, path: Path, *, check: bool = False) -> None:
        self.path = path
        try:
            self._conn = connect(path)
        except sqlite3.Error as exc:
            raise StoreError(f"the database {path} cannot be opened: {exc}") from None
        try:
            migrate(self._conn, path)
            problems = integrity_problems(self._conn) if check else []
        except StoreError:  # written by a newer relay
            self._conn.close()
            raise
        except sqlite3.OperationalError as exc:  # locked, read-only, I/O error...
            self._conn.close()
            raise StoreError(f"the database {path} cannot be used: {exc}") from None
        except sqlite3.DatabaseError as exc:  # "malformed", "not a database"
            problems = [str(exc)]
        if problems:
            self._conn.close()
            raise StoreError(damaged(path, problems))
        # The savepoints open, innermost last: (name, the connection's total_changes when it
        # was opened); names by depth, so the same few statement texts repeat.
        self._savepoints: list[tuple[str, int]] = []
        self._open = False  # inside a transaction this object began (and must end)
        # The files this connection writes to, by device and inode (the write-ahead log once
        # it exists): commits into a file that was deleted or replaced would be lost.
        self._files = {p: _identity(p) for p in (path, self._wal)}

    @property
    def _wal(self) -> Path:
        """The write-ahead log SQLite writes: beside the real file when ``path`` is a link."""
        real = Path(os.path.realpath(self.path))
        return real.with_name(real.name + "-wal")

    def file_problem(self) -> str | None:
        """Why a commit would not reach the database file at ``path`` (None if it would): the
        file, or its write-ahead log, was deleted or replaced since it was opened."""
        for path, opened in self._files.items():
            try:
                now = _identity(path)
            except OSError as exc:
                return f"the database file {path} cannot be checked: {exc}"
            if opened is None:  # the log did not exist yet: remember the first one seen
                self._files[path] = now
            elif now is None:
                return f"the database file {path} was deleted while the relay had it open"
            elif now != opened:
                return f"the database file {path} was replaced while the relay had it open"
        return None

    def defer_sync(self) -> WalSync | None:
        """From now on a commit writes its pages to the write-ahead log without waiting for
        the disk (``synchronous=OFF``); the caller makes commits durable with the returned
        ``WalSync`` before anyone learns of them (``StoreThread``: one flush of the log for
        every commit made meanwhile, while the next transactions are being written).
        Checkpoints, which copy the log into the database file, then run only through
        ``WalSync.checkpoint`` with ``synchronous=FULL`` (log flushed before, database file
        after): a log that starts over never overwrites pages the database file has not
        durably taken over. Call it between transactions, on the store's thread. None (and
        every commit flushed as before) where the database is not in WAL mode or its log
        cannot be opened."""
        mode = self._conn.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal":
            return None
        try:
            wal = WalSync(self._conn, self._wal)
        except OSError:
            return None
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.execute("PRAGMA synchronous=OFF")
        return wal

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """A transaction; inside ``batch()`` a savepoint, so a failing operation undoes only
        its own changes and the batch commits once. A failed COMMIT is rolled back: the
        connection never stays inside a transaction that nothing will commit.

        Nested directly in a savepoint that has changed no row yet (the store's thread opens
        one per call of a batch of several, the outcome writer one per write, and the store's
        methods their own), no savepoint of its own is opened: rolling back to the enclosing
        one undoes exactly what this one changed, and that one stays open for what its caller
        does next. "No row yet" is read from ``total_changes``, which counts the rows written
        by INSERT, UPDATE and DELETE only: inside a batch the store writes nothing else (its
        tables are made and migrated when it opens, outside any batch)."""
        if self._open:
            if not self._conn.in_transaction:  # an earlier error rolled the whole batch back
                raise sqlite3.OperationalError("the transaction was rolled back by an error in it")
            changes = self._conn.total_changes
            if self._savepoints and self._savepoints[-1][1] == changes:
                enclosing = self._savepoints[-1][0]
                try:
                    yield self._conn
                except BaseException:
                    if self._conn.in_transaction:  # SQLite may have rolled back everything
                        self._conn.execute(f"ROLLBACK TO {enclosing}")
                    raise
                return
            name = f"op{len(self._savepoints) + 1}"
            self._conn.execute(f"SAVEPOINT {name}")
            self._savepoints.append((name, changes))
            try:
                yield self._conn
            except BaseException:
                if self._conn.in_transaction:  # SQLite may have rolled back everything already
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
                raise
            finally:
                self._savepoints.pop()
            self._conn.execute(f"RELEASE {name}")
            return
        self._conn.execute("BEGIN IMMEDIATE")
        self._open = True
        try:
            yield self._conn
            if not self._conn.in_transaction:
                raise sqlite3.OperationalError("the transaction was rolled back by an error in it")
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        finally:
            self._open = False
            self._savepoints.clear()

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Run several operations with one commit (one fsync): group commit."""
        with self._transaction():
            yield

    def reading(self) -> AbstractContextManager[None]:
        """Reads inside a batch whose failure must leave the batch usable: nothing to open
        here, as a failed SELECT changes nothing and leaves the transaction as it was (an
        error that ends the whole transaction ends it with or without a savepoint)."""
        return nullcontext()
