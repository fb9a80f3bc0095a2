"""The console's store operations on both stores: users, audit log, search, health, stats."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

from relay.routing.rules import EmailAction, PlannedDelivery
from relay.store import Intake, Store
from relay.store.base import MIGRATIONS
from tests.support.store import StoreOpener, bare_intake


def visitor_intake(n: int, name: str, email: str, category: str, raw_extra: str = "") -> Intake:
    raw = json.dumps({"visitor": {"name": name, "email": email}, "n": n, "x": raw_extra}).encode()
    return dataclasses.replace(
        bare_intake(n, raw), category=category, content_hash=f"h{n}{raw_extra}"
    )


def test_users_are_added_replaced_and_removed(open_test_store: StoreOpener) -> None:
    store = open_test_store()
    assert store.console_user_count() == 0
    assert store.add_console_user("jana", "hash-1", now=100.0) is True
    assert store.add_console_user("jana", "hash-2", now=200.0) is False
    assert store.add_console_user("petr", "hash-3", now=300.0) is True
    assert store.console_password_hash("jana") == "hash-2"
    assert store.console_users() == [("jana", 100.0), ("petr", 300.0)]
    assert store.console_user_count() == 2
    assert store.remove_console_user("jana") is True
    assert store.remove_console_user("jana") is False
    assert store.console_password_hash("jana") is None
    assert open_test_store().console_user_count() == 1  # committed, seen by another connection


def test_signing_out_changes_what_sessions_are_signed_with_every_time(
    open_test_store: StoreOpener,
) -> None:
    store = open_test_store()
    store.add_console_user("jana", "hash-1", now=100.0)
    assert store.console_user_session("jana") == ("hash-1", None)
    assert store.sign_out_console_user("jana", 500.0) is True
    assert store.console_user_session("jana") == ("hash-1", 500.0)
    # Signed out again at the same time (or a clock that went back): still a new value.
    store.sign_out_console_user("jana", 500.0)
    again = store.console_user_session("jana")
    assert again is not None and again[1] is not None and again[1] > 500.0
    store.sign_out_console_user("jana", 400.0)
    later = store.console_user_session("jana")
    assert later is not None and later[1] is not None and later[1] > again[1]
    store.add_console_user("jana", "hash-2", now=600.0)  # a new password keeps it
    assert store.console_user_session("jana") == ("hash-2", later[1])
    assert store.sign_out_console_user("nobody", 700.0) is False
    assert store.console_user_session("nobody") is None
    assert open_test_store().console_user_session("jana") == ("hash-2", later[1])


def test_the_audit_log_keeps_who_did_what_when_newest_first(open_test_store: StoreOpener) -> None:
    store = open_test_store()
    store.record_audit("jana", "login", "console", "", now=10.0)
    store.record_audit("jana", "retry", "delivery 7", "email", now=20.0)
    found = open_test_store().audit_log(limit=10)
    assert [(r.at, r.actor, r.action, r.target, r.detail) for r in found] == [
        (20.0, "jana", "retry", "delivery 7", "email"),
        (10.0, "jana", "login", "console", ""),
    ]
    assert len(store.audit_log(limit=1)) == 1


def test_conversations_are_found_by_visitor_date_and_category(
    open_test_store: StoreOpener,
) -> None:
    store = open_test_store()
    store.accept(visitor_intake(1, "Jana Nová", "jana@example.com", "missed"), now=1000.0)
    store.accept(visitor_intake(2, "Petr Malý", "petr@example.com", "normal"), now=2000.0)
    # A second version of conversation 1: only the newest version is listed.
    store.accept(
        visitor_intake(1, "Jana Nová", "jana@example.com", "normal", raw_extra="v2"), now=3000.0
    )
    store.accept(bare_intake(3, b"not json"), now=4000.0)
    every = store.find_conversations()
    assert [(r.conv_key, r.version) for r in every] == [("1-3", 1), ("1-1", 2), ("1-2", 1)]
    assert every[2].visitor_name == "Petr Malý"
    assert every[2].visitor_email == "petr@example.com"
    assert every[0].visitor_name is None
    assert [r.conv_key for r in store.find_conversations("JANA")] == ["1-1"]
    assert [r.conv_key for r in store.find_conversations("petr@ex")] == ["1-2"]
    assert [r.conv_key for r in store.find_conversations(start=1500.0, end=2500.0)] == ["1-2"]
    assert [r.conv_key for r in store.find_conversations(category="normal")] == [
        "1-3",
        "1-1",
        "1-2",
    ]
    assert store.find_conversations(category="missed") == []
    versions = store.conversation_versions("1-1")
    assert [(v.version, v.category) for v in versions] == [(1, "missed"), (2, "normal")]
    row = store.conversation_row(versions[0].id)
    assert row is not None and row.received_at == 1000.0
    assert store.conversation_row(999_999) is None
    period = store.period_conversations(0.0, 3500.0)
    assert [(cat, at) for cat, at, _ in period] == [("normal", 2000.0), ("normal", 3000.0)]


def test_destination_health_counts_failed_attempts_and_the_newest_error(
    open_test_store: StoreOpener,
) -> None:
    store = open_test_store()
    planned = (
        PlannedDelivery("r", EmailAction(type="email", to=["a@example.com"])),
        PlannedDelivery("r2", EmailAction(type="email", to=["b@example.com"])),
    )
    store.accept(dataclasses.replace(bare_intake(1), planned=planned), now=100.0)
    first, second = store.claim_due(10, now=100.0)
    store.mark_retry(first.id, at=101.0, error="451 busy", now=100.5)
    store.mark_sent(second.id, now=100.6)
    (again,) = store.claim_due(10, now=101.0)
    store.mark_dead(again.id, "550 no such user", now=101.5)
    (health,) = store.destination_health(since=50.0)
    assert (health.channel, health.destination, health.where) == ("email", None, "email")
    assert (health.deliveries, health.attempts, health.failed_attempts) == (2, 3, 2)
    assert health.failure_rate == 2 / 3
    assert health.last_error == "550 no such user"
    assert health.last_error_at == 101.5
    assert store.destination_health(since=200.0) == []
    assert store.delivery_attempts(first.id) == [
        (100.5, "retry", "451 busy"),
        (101.5, "dead", "550 no such user"),
    ]
    assert store.delivery_attempts(second.id) == [(100.6, "sent", "")]


def test_a_quarantined_body_can_be_dropped_once(open_test_store: StoreOpener) -> None:
    store = open_test_store()
    entry = store.quarantine(
        "invalid_json", "bad", b"{", None, max_rows=10, max_bytes=10_000, max_body=10_000
    )
    assert store.drop_quarantine_entry(entry) is True
    assert store.drop_quarantine_entry(entry) is False
    assert store.quarantine_entry(entry) is None


def test_a_version_6_store_gains_the_console_tables_as_step_7(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db")
    for step in MIGRATIONS[:6]:
        conn.executescript(step)
    conn.execute("PRAGMA user_version = 6")
    conn.commit()
    tables = "SELECT name FROM sqlite_master WHERE type = 'table'"
    before = {r[0] for r in conn.execute(tables)}
    conn.close()
    store = Store(tmp_path / "old.db")
    try:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        after = {r[0] for r in store._conn.execute(tables)}
        assert after - before == {"console_users", "console_audit", "delivery_attempts"}
        assert store.console_user_count() == 0
    finally:
        store.close()


def test_a_version_7_store_keeps_its_users_and_gains_signed_out_at_as_step_8(
    tmp_path: Path,
) -> None:
    conn = sqlite3.connect(tmp_path / "old.db")
    for step in MIGRATIONS[:7]:
        conn.executescript(step)
    conn.execute("PRAGMA user_version = 7")
    conn.execute("INSERT INTO console_users VALUES ('jana', 'hash-1', 100.0)")
    conn.execute(
        "INSERT INTO console_audit (at, actor, action, target)"
        " VALUES (1, 'jana', 'login', 'console')"
    )
    conn.commit()
    conn.close()
    store = Store(tmp_path / "old.db")
    try:
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert store.console_users() == [("jana", 100.0)]
        assert [row.action for row in store.audit_log()] == ["login"]
        assert store.console_user_session("jana") == ("hash-1", None)
        assert store.sign_out_console_user("jana", 200.0) is True
        assert store.console_user_session("jana") == ("hash-1", 200.0)
    finally:
        store.close()


def test_deliveries_and_health_name_the_actions_destination(open_test_store: StoreOpener) -> None:
    store = open_test_store()
    planned = (
        PlannedDelivery("r", EmailAction(type="email", to=["a@example.com"])),
        PlannedDelivery(
            "r2", EmailAction(type="email", to=["b@example.com"], destination="billing")
        ),
    )
    store.accept(dataclasses.replace(bare_intake(1), planned=planned), now=100.0)
    default, billing = store.claim_due(10, now=100.0)
    store.mark_sent(default.id, now=100.5)
    store.mark_dead(billing.id, "535 authentication failed", now=100.6)
    rows = {row.id: row for row in store.deliveries(("sent", "dead"))}
    assert (rows[default.id].destination, rows[default.id].where) == (None, "email")
    assert (rows[billing.id].destination, rows[billing.id].where) == ("billing", "email: billing")
    found = {h.where: h for h in store.destination_health(since=0.0)}
    assert set(found) == {"email", "email: billing"}
    assert found["email"].failure_rate == 0.0 and found["email"].last_error is None
    assert found["email: billing"].failed_attempts == 1
    assert found["email: billing"].last_error == "535 authentication failed"
