"""`relay migrate --to-postgres URL`: a SQLite store copied into PostgreSQL with every
conversation, delivery state, quarantined body and lead, checked by counts."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.leads.model import LeadFacts, claim
from relay.ops.statedir import lock_state_dir
from relay.routing.rules import EmailAction, PlannedDelivery
from relay.store import STATUSES, Intake, Store
from relay.store.postgres import PostgresStore
from tests.support.config import write_config


def intake(n: int) -> Intake:
    actions = [EmailAction(type="email", to=[f"team{k}@shop.test"]) for k in range(2)]
    return Intake(
        raw=json.dumps({"accountId": 7, "channel": {"id": n}}).encode(),
        conv_key=f"7-{n}",
        account_id=7,
        channel_id=n,
        content_hash=f"hash-{n}",
        category="missed",
        planned=tuple(PlannedDelivery(rule="r", action=a) for a in actions),
    )


def sqlite_store(state: Path) -> Store:
    """A store in every state a stopped relay can leave: pending, sending, retrying, sent,
    sent to the outbox, dead; plus quarantined bodies."""
    store = Store(state / "relay.db")
    for n in range(1, 31):
        lead = LeadFacts(follow_up=True, answered=False, visitor_id=f"v{n}") if n <= 3 else None
        store.accept(replace(intake(n), lead=lead), now=100 + n)
    first, second, _ = store.leads()
    store.change_lead(first.id, lambda x: claim(x, "Jana", 150.0))
    store.record_escalation(second, 1, (), 160.0)
    store.take_digest_day("1970-01-01", 170.0)
    store.slack_request_seen("v0=abc", 180.0, 300.0)
    store.add_console_user("jana", "hash-jana", 90.0)
    store.add_console_user("petr", "hash-petr", 91.0)
    store.sign_out_console_user("jana", 190.5)
    claimed = store.claim_due(20, now=200)
    for k, delivery in enumerate(claimed):
        match k % 5:
            case 0:
                store.record_external_ref(delivery.id, f"crm-{delivery.id}")
                store.mark_sent(delivery.id, now=201)
            case 1:
                store.mark_sent(delivery.id, now=201, sent_to="outbox")
            case 2:
                store.mark_retry(delivery.id, at=300, error="451 later", done=["a@b.test"])
            case 3:
                store.mark_dead(delivery.id, "550 no such user", now=202)
            case _:
                pass  # left 'sending', as by a relay that stopped mid-send
    for n in range(3):
        store.quarantine(
            "not_json", f"bad body {n}", b"\x00\xffbody", "127.0.0.1",
            max_rows=100, max_bytes=10_000, max_body=10_000, now=50 + n,
        )  # fmt: skip
    return store


def test_a_sqlite_store_is_copied_with_every_state(tmp_path: Path, postgres_url: str) -> None:
    config, settings = write_config(tmp_path)
    source = sqlite_store(Path(settings.storage.state_dir))
    expected = source.deliveries(STATUSES, limit=10_000)
    expected_quarantine = source.quarantined(limit=100)
    refs = {row.id: source.known_external_ref(row.id) for row in expected}
    assert sum(ref is not None for ref in refs.values()) == 4
    raws = [source.conversation_raw(n) for n in range(1, 31)]
    leads = source.leads()
    source.close()

    result = CliRunner().invoke(
        main, ["migrate", "--config", str(config), "--to-postgres", postgres_url]
    )
    assert result.exit_code == 0, result.output
    assert "copied 30 conversations, 60 deliveries" in result.output
    assert "the counts match" in result.output
    password = psycopg.conninfo.conninfo_to_dict(postgres_url)["password"]
    assert str(password) not in result.output

    target = PostgresStore(postgres_url)
    try:
        assert target.deliveries(STATUSES, limit=10_000) == expected
        assert target.quarantined(limit=100) == expected_quarantine
        assert [target.conversation_raw(n) for n in range(1, 31)] == raws
        assert {row.id: target.known_external_ref(row.id) for row in expected} == refs
        assert {row.status for row in expected} == set(STATUSES)
        # Leads with their claims, escalations, digests and Slack requests come along.
        assert target.leads() == leads and leads[0].claimed_by == "Jana"
        assert target.escalations() == {(leads[1].id, 1)}
        assert target.digest_days() == {"1970-01-01"}
        assert target.slack_request_seen("v0=abc", 190.0, 300.0) is True
        # Console users with when they signed out: sessions ended there stay ended.
        assert target.console_user_session("jana") == ("hash-jana", 190.5)
        assert target.console_user_session("petr") == ("hash-petr", None)
        # What a stopped relay left 'sending' is taken back by the first relay to start.
        sending = [row.id for row in expected if row.status == "sending"]
        assert target.recover_claimed(now=400) == len(sending)
        # New rows continue after the copied ids.
        assert target.accept(intake(31), now=500).conversation_id == 31
        target.accept(replace(intake(32), lead=LeadFacts(follow_up=True, answered=False)))
        assert target.leads()[-1].id == leads[-1].id + 1
    finally:
        target.close()


def test_a_database_that_holds_data_is_not_copied_into(tmp_path: Path, postgres_url: str) -> None:
    config, settings = write_config(tmp_path)
    sqlite_store(Path(settings.storage.state_dir)).close()
    existing = PostgresStore(postgres_url)
    existing.accept(intake(99))
    existing.close()
    result = CliRunner().invoke(
        main, ["migrate", "--config", str(config), "--to-postgres", postgres_url]
    )
    assert result.exit_code != 0
    assert "already holds conversations" in result.output
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM conversations").fetchone() == (1,)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrate_brings_the_configured_store_to_the_schema_version(
    tmp_path: Path, postgres_url: str, backend: str
) -> None:
    storage = {"url": postgres_url} if backend == "postgresql" else {}
    config, settings = write_config(tmp_path, storage=storage)
    if backend == "sqlite":
        Store(Path(settings.storage.state_dir) / "relay.db").close()
    result = CliRunner().invoke(main, ["migrate", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "schema version" in result.output


def test_migrate_to_postgres_refuses_what_it_cannot_copy(tmp_path: Path) -> None:
    config, settings = write_config(tmp_path)
    state = Path(settings.storage.state_dir)
    nowhere = "postgresql://relay@127.0.0.1:9/relay"  # never reached: each refusal comes first

    def migrate(url: str) -> str:
        args = ["migrate", "--config", str(config), "--to-postgres", url]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1
        return result.output

    assert "--to-postgres expects a postgresql://... URL" in migrate("mysql://relay@db/relay")
    assert f"no store at {state / 'relay.db'}" in migrate(nowhere)
    sqlite_store(state).close()
    held = lock_state_dir(state)  # a running relay holds its state directory
    try:
        assert "is in use by another relay" in migrate(nowhere)
    finally:
        held.release()
