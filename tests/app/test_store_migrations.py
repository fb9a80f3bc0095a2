"""A state directory written before schema versioning is upgraded in place, keeping its data."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from relay.model.errors import StoreVersionError
from relay.store import Intake, Store
from relay.store.base import MIGRATIONS, SCHEMA_VERSION, _statements


def old_store(path: Path) -> None:
    """The store as relay 0.1.0 left it: the version-1 schema, user_version 0, one
    conversation with a sent and a dead delivery."""
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.execute(
        "INSERT INTO conversations VALUES (1, '208-1', 208, 1, 1, 'h', 'missed', 1.0, x'7b7d',"
        " x'7b7d')"
    )
    for delivery_id, status in ((1, "sent"), (2, "dead")):
        conn.execute(
            "INSERT INTO deliveries (id, conversation_id, dedupe_key, rule, channel, action,"
            " category, status, attempts, created_at, next_attempt_at, updated_at, last_error)"
            " VALUES (?, 1, ?, 'r', 'email', '{}', 'missed', ?, 1, 1.0, 1.0, 1.0, ?)",
            (delivery_id, f"k{delivery_id}", status, "550 no" if status == "dead" else None),
        )
    conn.commit()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
    conn.close()


def test_an_unversioned_store_is_migrated_and_keeps_every_row(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    old_store(path)
    store = Store(path)
    try:
        assert store.counts() == {
            "pending": 0, "sending": 0, "retrying": 0, "sent": 1, "outbox": 0, "dead": 1,
        }  # fmt: skip
        rows = store.deliveries(("sent", "dead"))
        assert [(r.id, r.status, r.last_error, r.sent_to) for r in rows] == [
            (1, "sent", None, None),
            (2, "dead", "550 no", None),
        ]
        store.mark_sent(2, 5.0, sent_to="outbox")
        assert store.counts()["outbox"] == 1
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    Store(path).close()  # opening again changes nothing


def test_a_store_from_a_newer_relay_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(StoreVersionError, match=f"{path} has schema version"):
        Store(path)


def test_a_version_2_store_loses_only_the_unread_parsed_column(tmp_path: Path) -> None:
    """Migration 3 drops conversations.parsed (written, never read); every row stays."""
    path = tmp_path / "relay.db"
    conn = sqlite3.connect(path)
    conn.executescript(MIGRATIONS[0])
    conn.executescript(MIGRATIONS[1])
    conn.execute(
        "INSERT INTO conversations VALUES (1, '208-1', 208, 1, 1, 'h', 'missed', 1.0,"
        " x'7b2261223a317d', x'7b7d')"
    )
    conn.execute(
        "INSERT INTO deliveries (id, conversation_id, dedupe_key, rule, channel, action,"
        " category, status, attempts, created_at, next_attempt_at, updated_at, sent_to)"
        " VALUES (1, 1, 'k1', 'r', 'email', '{}', 'missed', 'sent', 1, 1.0, 1.0, 1.0, 'outbox')"
    )
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    store = Store(path)
    try:
        assert store.conversation_raw(1) == (b'{"a":1}', "missed", "208-1")
        assert store.counts()["outbox"] == 1
    finally:
        store.close()
    conn = sqlite3.connect(path)
    columns = [row[1] for row in conn.execute("PRAGMA table_info(conversations)")]
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    assert "parsed" not in columns
    assert "raw" in columns


def store_at(path: Path, version: int) -> sqlite3.Connection:
    """A store file with the first ``version`` migrations applied and its user_version set,
    left open in autocommit for the rows a test writes as that version would have."""
    conn = sqlite3.connect(path, isolation_level=None)
    for step in MIGRATIONS[:version]:
        for statement in _statements(step):
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {version}")
    return conn


def test_a_migration_is_split_into_statements_strings_and_comments_kept_whole() -> None:
    script = (
        "CREATE TABLE a (x TEXT DEFAULT ';');\n"
        "-- a comment; not a statement\n"
        "INSERT INTO a VALUES ('1;2');\n"
        "\n"
        "INSERT INTO a VALUES ('last')"  # the last one may lack its semicolon
    )
    statements = list(_statements(script))
    assert [s.strip().split("\n")[-1] for s in statements] == [
        "CREATE TABLE a (x TEXT DEFAULT ';');",
        "INSERT INTO a VALUES ('1;2');",
        "INSERT INTO a VALUES ('last')",
    ]
    db = sqlite3.connect(":memory:")
    for statement in statements:
        db.execute(statement)
    assert db.execute("SELECT x FROM a ORDER BY rowid").fetchall() == [("1;2",), ("last",)]
    db.close()


def test_a_version_8_store_gains_the_begin_time_column_filled_in_from_older_bodies(
    tmp_path: Path,
) -> None:
    """Migration 9 adds conversations.begin_at in place: a row stored before it has none, and
    migration 10 fills it in from its body, so the visitor's history has that row's begin
    time."""
    path = tmp_path / "relay.db"
    conn = store_at(path, 8)
    body = json.dumps(
        {"accountId": 208, "channel": {"id": 1}, "beginAt": 1427414400000, "visitor": {"id": 5}}
    ).encode()
    conn.execute(
        "INSERT INTO conversations (id, conv_key, account_id, channel_id, version, content_hash,"
        " category, received_at, raw) VALUES (1, '208-1', 208, 1, 1, 'h', 'missed', 2.0, ?)",
        (body,),
    )
    conn.close()
    store = Store(path)
    try:
        later = body.replace(b'"id": 1}', b'"id": 2}')
        current = store.accept(
            Intake(later, "208-2", 208, 2, "h2", "offline", (), begin_at=1427500800.0)
        ).conversation_id
        assert store.visitor_history(current) == (("missed", 1427414400.0),)
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    rows = conn.execute("SELECT id, begin_at FROM conversations ORDER BY id").fetchall()
    conn.close()
    # Migration 10 has filled in the begin time of the row stored without it, from its body.
    assert rows == [(1, 1427414400.0), (2, 1427500800.0)]


def test_a_version_9_store_gains_the_visitor_columns_and_finds_its_visitors_as_before(
    tmp_path: Path,
) -> None:
    """Migration 10 fills each stored row's visitor id and email in from its body, so a
    visitor's chats and sent emails stored before it are found by the new indexes: by id,
    by email address (any case) for a visitor without an id, and none for a body that is
    not JSON; a version written after it matches the ones written before."""
    path = tmp_path / "relay.db"
    conn = store_at(path, 9)
    bodies = {
        1: {"accountId": 208, "channel": {"id": 1}, "beginAt": 1427414400000, "visitor": {"id": 5}},
        2: {"accountId": 208, "channel": {"id": 2}, "visitor": {"email": "Jana@Example.CZ"}},
    }
    rows = [(n, json.dumps(body).encode()) for n, body in bodies.items()] + [(3, b"\xff not JSON")]
    for n, raw in rows:
        conn.execute(
            "INSERT INTO conversations (id, conv_key, account_id, channel_id, version,"
            " content_hash, category, received_at, raw) VALUES (?, ?, 208, ?, 1, 'h', 'missed',"
            " 2.0, ?)",
            (n, f"208-{n}", n, raw),
        )
        conn.execute(
            "INSERT INTO deliveries (id, conversation_id, dedupe_key, rule, channel, action,"
            " category, status, attempts, created_at, next_attempt_at, updated_at,"
            " external_ref) VALUES (?, ?, ?, 'r', 'email', '{}', 'missed', 'sent', 1, 1.0, 1.0,"
            " 1.0, ?)",
            (n, n, f"k{n}", f"<sent-{n}@relay>"),
        )
    conn.close()
    store = Store(path)
    try:
        later = {**bodies[1], "channel": {"id": 4}}
        by_id = store.accept(
            Intake(json.dumps(later).encode(), "208-4", 208, 4, "h4", "offline", ())
        ).conversation_id
        by_email = store.accept(
            Intake(
                json.dumps({**bodies[2], "channel": {"id": 5}}).encode(),
                "208-5",
                208,
                5,
                "h5",
                "offline",
                (),
            )
        ).conversation_id
        assert store.visitor_history(by_id) == (("missed", 1427414400.0),)
        assert store.visitor_history(by_email) == (("missed", 2.0),)  # no beginAt: received
        assert store.visitor_history(3) == ()
        assert store.sent_email_ids(1) == ()
        assert store.sent_email_ids(3) == ()
        for delivery, conversation in ((6, by_id), (7, by_email)):
            store._conn.execute(
                "INSERT INTO deliveries (id, conversation_id, dedupe_key, rule, channel, action,"
                " category, created_at, next_attempt_at, updated_at) VALUES (?, ?, ?, 'r',"
                " 'email', '{}', 'offline', 3.0, 3.0, 3.0)",
                (delivery, conversation, f"k{delivery}"),
            )
        assert store.sent_email_ids(6) == ("<sent-1@relay>",)
        assert store.sent_email_ids(7) == ("<sent-2@relay>",)
    finally:
        store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    visitors = conn.execute(
        "SELECT id, visitor_id, visitor_email FROM conversations ORDER BY id"
    ).fetchall()
    conn.close()
    assert visitors == [
        (1, "5", None),
        (2, None, "jana@example.cz"),
        (3, None, None),
        (4, "5", None),
        (5, None, "jana@example.cz"),
    ]
