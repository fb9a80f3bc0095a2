"""Leads are written with their conversation, in one transaction, and listed by `relay leads`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from relay.app import create_app
from relay.cli import main
from relay.config.settings import Settings
from relay.leads.model import Lead, LeadFacts, LeadState, Refused, claim
from relay.store import Intake, Store
from relay.store.base import MIGRATIONS
from relay.store.opening import open_store
from tests.support.config import write_config
from tests.support.data import TOKEN, body, sample
from tests.support.store import StoreOpener

HOOK = f"/hooks/smartsupp/{TOKEN}"


def chat(channel_id: int, visitor: str | None = None, **channel: Any) -> bytes:
    """The v1 sample as chat ``channel_id``; ``visitor``: another visitor id and email."""
    data = sample("v1")
    data["channel"]["id"] = channel_id
    if visitor is not None:
        data["visitor"].update({"id": visitor, "email": f"{visitor}@example.com"})
    data["channel"].update(channel)
    return body(data)


def intake(n: int, facts: LeadFacts | None) -> Intake:
    return Intake(
        raw=b"{}",
        conv_key=f"1-{n}",
        account_id=1,
        channel_id=n,
        content_hash=f"hash-{n}",
        category="missed",
        planned=(),
        lead=facts,
    )


def stored_leads(settings: Settings) -> list[Lead]:
    store = open_store(settings)
    try:
        return store.leads()
    finally:
        store.close()


def test_missed_and_offline_chats_become_open_leads_others_do_not(
    tmp_path: Path, storage_section: dict[str, Any]
) -> None:
    _, settings = write_config(tmp_path, storage=storage_section)
    with TestClient(create_app(settings)) as client:
        for raw in (
            chat(1, isMissed=True),
            chat(2, isOffline=True),
            chat(3, visitor="other", rating=1),
            chat(1, isMissed=True, duration=99),  # a re-post of chat 1: still one lead
        ):
            assert client.post(HOOK, content=raw).status_code == 200
    leads = stored_leads(settings)
    assert [(lead.conv_key, lead.category, lead.state) for lead in leads] == [
        ("208-1", "missed", LeadState.OPEN),
        ("208-2", "offline", LeadState.OPEN),
    ]
    assert leads[0].visitor_email == "dusan@domain.com"


def test_a_rule_option_turns_follow_up_off_and_on(
    tmp_path: Path, storage_section: dict[str, Any]
) -> None:
    rules = [
        {
            "name": "missed-no-follow-up",
            "match": {"category": "missed"},
            "follow_up": False,
            "actions": [{"type": "archive", "path": "a.jsonl"}],
        },
        {
            "name": "rated-follow-up",
            "match": {"category": "low-rated"},
            "follow_up": True,
            "actions": [{"type": "archive", "path": "a.jsonl"}],
        },
    ]
    base = _base(tmp_path)
    storage = {**base["storage"], **storage_section}
    settings = Settings(**{**base, "storage": storage, "rules": rules})
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=chat(1, isMissed=True))
        client.post(HOOK, content=chat(2, rating=1))
    assert [lead.conv_key for lead in stored_leads(settings)] == ["208-2"]


def _base(tmp_path: Path) -> dict[str, Any]:
    from tests.support.data import base_sections  # noqa: PLC0415

    return base_sections(tmp_path / "state")


def test_a_later_answered_chat_of_the_same_visitor_settles_the_open_lead(
    tmp_path: Path, storage_section: dict[str, Any]
) -> None:
    _, settings = write_config(tmp_path, storage=storage_section)
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=chat(1, isMissed=True))
        client.post(HOOK, content=chat(2, isMissed=False))  # same visitor; an agent answered
    (lead,) = stored_leads(settings)
    assert lead.state is LeadState.ANSWERED
    assert lead.answered_at is not None


def _refuse_lead_rows(opener: StoreOpener, store: Store | None) -> None:
    """Make every INSERT into leads fail, by the backend's own trigger."""
    if store is not None:
        store._conn.execute(
            "CREATE TRIGGER no_leads BEFORE INSERT ON leads BEGIN SELECT RAISE(ABORT, 'x'); END"
        )
        return
    import psycopg  # noqa: PLC0415 - only for PostgreSQL

    assert opener.url is not None
    with psycopg.connect(opener.url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION no_leads() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'x'; END $$"
        )
        conn.execute(
            "CREATE TRIGGER no_leads BEFORE INSERT ON leads"
            " FOR EACH ROW EXECUTE FUNCTION no_leads()"
        )


def test_the_lead_is_part_of_the_intake_transaction(open_test_store: StoreOpener) -> None:
    """A lead that cannot be written takes its conversation with it: nothing half-stored."""
    store = open_test_store()
    facts = LeadFacts(follow_up=True, answered=False, visitor_id="v1")
    store.accept(intake(1, facts))
    _refuse_lead_rows(open_test_store, store if isinstance(store, Store) else None)
    with pytest.raises(Exception, match="x") as refused:
        store.accept(intake(2, facts))
    assert type(refused.value).__module__.split(".")[0] in {"sqlite3", "psycopg"}
    assert store.latest_version_id("1-1") is not None
    assert store.latest_version_id("1-2") is None
    assert [lead.conv_key for lead in store.leads()] == ["1-1"]


def test_change_lead_writes_a_claim_once_and_refuses_the_second(
    open_test_store: StoreOpener,
) -> None:
    store = open_test_store()
    other = open_test_store()  # another relay (or process) on the same database
    store.accept(intake(1, LeadFacts(follow_up=True, answered=False)))
    other.accept(intake(1, LeadFacts(follow_up=True, answered=False)))  # the same chat again
    (lead,) = store.leads()
    first = store.change_lead(lead.id, lambda x: claim(x, "Jana", 1000.0))
    second = other.change_lead(lead.id, lambda x: claim(x, "Petr", 1001.0))
    assert isinstance(first, Lead) and first.claimed_by == "Jana"
    assert isinstance(second, Refused) and second.lead.claimed_by == "Jana"
    assert store.lead(lead.id) == first
    assert other.lead(lead.id) == first
    assert store.change_lead(999, lambda x: claim(x, "Jana", 1.0)) is None


def test_escalations_digest_days_and_slack_requests_are_taken_once(
    open_test_store: StoreOpener,
) -> None:
    """What two relays may both try (an escalation step, a digest day, a Slack request) is
    taken by one of them: the database's unique keys decide."""
    store, other = open_test_store(), open_test_store()
    store.accept(intake(1, LeadFacts(follow_up=True, answered=False)))
    (lead,) = store.leads()
    assert store.record_escalation(lead, 1, (), 10.0) == 0
    assert other.record_escalation(lead, 1, (), 11.0) is None
    assert other.escalations() == {(lead.id, 1)}
    assert store.take_digest_day("2026-12-03", 10.0) is True
    assert other.take_digest_day("2026-12-03", 11.0) is False
    other.release_digest_day("2026-12-03")
    assert store.digest_days() == set()
    assert other.take_digest_day("2026-12-03", 12.0) is True
    assert store.slack_request_seen("v0=abc", 100.0, 300.0) is False
    assert other.slack_request_seen("v0=abc", 101.0, 300.0) is True
    assert other.slack_request_seen("v0=abc", 500.0, 300.0) is False  # outside the window
    store.change_lead(lead.id, lambda x: claim(x, "Jana", 20.0))
    assert store.record_escalation(lead, 2, (), 30.0) is None  # no longer open


def test_the_lead_tables_are_a_migration_step_of_their_own(tmp_path: Path) -> None:
    """A version 4 store (before leads) gains the lead tables as step 5; nothing else changes
    but the visitor indexes of step 6 and the console's tables of step 7."""
    conn = sqlite3.connect(tmp_path / "old.db")
    for step in MIGRATIONS[:4]:
        conn.executescript(step)
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    tables = "SELECT name FROM sqlite_master WHERE type = 'table'"
    tables_before = {r[0] for r in conn.execute(tables)}
    conn.close()
    assert "leads" not in tables_before
    store = Store(tmp_path / "old.db")
    try:
        assert store.leads() == []
        assert store._conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        tables_after = {r[0] for r in store._conn.execute(tables)}
        assert tables_after - tables_before == {
            "leads",
            "lead_escalations",
            "lead_digests",
            "slack_requests",
            "console_users",
            "console_audit",
            "delivery_attempts",
        }
    finally:
        store.close()


def test_relay_leads_lists_by_state_as_text_and_json(
    tmp_path: Path, storage_section: dict[str, Any]
) -> None:
    config, settings = write_config(tmp_path, storage=storage_section)
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=chat(1, isMissed=True))
        client.post(HOOK, content=chat(2, isOffline=True))
    store = open_store(settings)
    try:
        first = store.leads()[0]
        store.change_lead(first.id, lambda x: claim(x, "Jana Nová", 1_800_000_000.0))
    finally:
        store.close()
    runner = CliRunner()
    listed = runner.invoke(main, ["leads", "--json", "--config", str(config)])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.output)
    assert [(r["conversation"], r["state"], r["claimed_by"]) for r in rows] == [
        ("208-1", "claimed", "Jana Nová"),
        ("208-2", "open", None),
    ]
    open_only = runner.invoke(main, ["leads", "--state", "open", "--config", str(config)])
    assert open_only.exit_code == 0
    lines = open_only.output.splitlines()
    assert len(lines) == 2 and "offline" in lines[1] and "open" in lines[1]
    text = runner.invoke(main, ["leads", "--config", str(config)]).output
    assert "claimed by Jana Nová 2027-01-15 08:00" in text


def test_on_postgresql_the_lead_tables_are_step_3(postgres_url: str) -> None:
    """A version 2 PostgreSQL database (before leads) gains the lead tables as step 3,
    keeping its conversations; an intake then writes its lead with the conversation."""
    import psycopg  # noqa: PLC0415 - only for PostgreSQL

    from relay.store.postgres import PostgresStore  # noqa: PLC0415
    from relay.store.postgres.schema import MIGRATIONS as PG_MIGRATIONS  # noqa: PLC0415

    tables = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for version, step in enumerate(PG_MIGRATIONS[:2], start=1):
            conn.execute(step.encode())
            conn.execute("INSERT INTO schema_version VALUES (%s)", (version,))
        before = {row[0] for row in conn.execute(tables).fetchall()}
    assert "leads" not in before
    store = PostgresStore(postgres_url)
    try:
        assert store.leads() == []
        store.accept(intake(1, LeadFacts(follow_up=True, answered=False, visitor_id="v1")))
        assert [lead.conv_key for lead in store.leads("open")] == ["1-1"]
    finally:
        store.close()
    with psycopg.connect(postgres_url) as conn:
        after = {row[0] for row in conn.execute(tables).fetchall()}
        versions = conn.execute("SELECT version FROM schema_version ORDER BY 1").fetchall()
    console = {"console_users", "console_audit", "delivery_attempts"}  # step 5
    assert (
        after - before == {"leads", "lead_escalations", "lead_digests", "slack_requests"} | console
    )
    assert versions == [(version,) for version in range(1, len(PG_MIGRATIONS) + 1)]
