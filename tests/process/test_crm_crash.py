"""A real `relay serve` SIGKILLed after a CRM's API answered but before the relay recorded the
answer: after a restart the retry finds the object by a search and creates no second one."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.config import write_sections
from tests.support.crm_fake import FakeApi
from tests.support.crm_systems import SYSTEMS, System
from tests.support.data import TOKEN
from tests.support.paths import SAMPLES
from tests.support.process import RelayProcess
from tests.support.smtp import free_port

pytestmark = pytest.mark.slow

# The request that creates the last object of a new conversation, by system.
FINAL_CREATE = {
    "hubspot": r"POST /crm/v3/objects/notes",
    "pipedrive": r"POST /v1/notes",
    "freshdesk": r"POST /api/v2/tickets",
    "zendesk": r"POST /api/v2/tickets\.json",
}


def export_config(directory: Path, port: int, system: System, api: FakeApi) -> Path:
    sections = {
        "server": {"hook_token": TOKEN, "port": port},
        "storage": {"state_dir": str(directory / "state")},
        "delivery": {"backoff_initial_seconds": 0.05, "backoff_max_seconds": 0.2,
                     "render_processes": 0},
        f"destinations.{system.name}.main": system.destination(api),
    }  # fmt: skip
    rules = (
        f'[[rules]]\nname = "export"\n[[rules.actions]]\ntype = "{system.name}"\n'
        'destination = "main"\n'
    )
    return write_sections(directory / "relay.toml", sections, rules)


def delivery_row(database: Path) -> tuple[str, str | None]:
    conn = sqlite3.connect(database)
    try:
        row = conn.execute("SELECT status, external_ref FROM deliveries").fetchone()
    finally:
        conn.close()
    return row[0], row[1]


@pytest.fixture(params=sorted(SYSTEMS))
def system(request: pytest.FixtureRequest) -> System:
    return SYSTEMS[request.param]


@pytest.fixture
def api(system: System) -> Iterator[FakeApi]:
    fake = system.make().start()
    yield fake
    fake.stop()


def test_sigkill_after_the_api_answered_still_makes_one(
    tmp_path: Path, system: System, api: FakeApi
) -> None:
    port = free_port()
    config = export_config(tmp_path, port, system, api)
    database = tmp_path / "state" / "relay.db"
    holder: list[sqlite3.Connection] = []

    def hold_the_store(kind: str) -> None:
        """Before the answer goes out, take the store's write lock: the relay gets the answer
        but cannot record it until it is killed."""
        if kind == system.final and not holder:
            conn = sqlite3.connect(
                database, isolation_level=None, timeout=30, check_same_thread=False
            )
            conn.execute("BEGIN IMMEDIATE")
            holder.append(conn)

    api.on_create = hold_the_store
    api.watch = FINAL_CREATE[system.name]
    relay = RelayProcess(config, port)
    relay.start()
    try:
        with httpx.Client(timeout=10) as client:
            data = (SAMPLES / "missed-chat.json").read_bytes()
            assert relay.post(client, data).status_code == 200
        assert api.answered.wait(30), f"{system.name} never got the create: {api.summary()}"
        assert relay.kill() == -signal.SIGKILL
    finally:
        relay.ensure_stopped()
        for conn in holder:
            conn.close()  # ends the transaction: nothing was written in it
    assert delivery_row(database) == ("sending", None)  # the answer was never recorded
    before = system.counts(api)

    relay = RelayProcess(config, port)
    relay.start()
    try:
        relay.wait_for_line(r"requeued 1 deliveries interrupted")
        relay.wait_for_line(r"delivery 1 sent")
        assert relay.terminate() == 0
    finally:
        relay.ensure_stopped()
    assert api.problems == []
    assert system.counts(api) == before
    assert set(before.values()) == {1}, before
    assert len(system.texts(api)) == 1
    status, ref = delivery_row(database)
    assert status == "sent" and ref is not None
