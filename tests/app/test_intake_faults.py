"""The hook's answers when something other than the body fails: a store error of no known kind
(503, nothing kept) and a fault after the body parsed (500, the body kept for replay). The
faults come from a fault-injecting store (tests/support/faulty.py) and a failing clock, the
runtime's injected dependencies; the request path itself is the real one."""

from __future__ import annotations

import errno
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from relay.app import build_snapshot, retry_policy
from relay.config.settings import Settings
from relay.delivery.worker import Worker
from relay.intake.http import receive_body
from relay.runtime import Runtime
from relay.store import StoreProtocol
from relay.store.storethread import StoreThread
from tests.support.data import base_sections, body, sample
from tests.support.faulty import FaultyStore
from tests.support.store import StoreOpener

# The faults are injected around the store, whichever engine is beneath: SQLite's suffices.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)

REMOTE = "192.0.2.7"


def conversation() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    return body(data)


@asynccontextmanager
async def running(
    settings: Settings, store: StoreProtocol, clock: Callable[[], float] | None = None
) -> AsyncIterator[Runtime]:
    """A runtime over ``store`` as the app wires it (its worker is not started: the answers
    are what is checked here)."""
    snapshot = build_snapshot(settings)
    runtime = Runtime(snapshot=snapshot) if clock is None else Runtime(snapshot, clock=clock)
    thread = StoreThread(store)
    runtime.attach(thread, Worker(thread, lambda: runtime.snapshot, policy=retry_policy(settings)))
    try:
        yield runtime
    finally:
        await runtime.close(0)


def settings_at(tmp_path: Path) -> Settings:
    return Settings(**base_sections(tmp_path / "state"))


async def test_a_store_failure_of_no_known_kind_is_answered_503_and_nothing_is_kept(
    tmp_path: Path, open_test_store: StoreOpener, caplog: pytest.LogCaptureFixture
) -> None:
    store = FaultyStore(open_test_store())
    full = OSError(errno.ENOSPC, "No space left on device")
    # The group commit fails, then the one-by-one retry of the same intake.
    store.fail("accept_many", full)
    store.fail("accept", full)
    async with running(settings_at(tmp_path), store) as runtime:
        answer = await receive_body(runtime, conversation(), REMOTE)
    assert (answer.status, answer.body) == (
        503,
        {"error": "storage_unavailable", "message": "the store cannot write"},
    )
    assert store.failed == ["accept_many", "accept"]
    assert "could not store conversation" in caplog.text
    assert "No space left on device" in caplog.text  # with its traceback
    assert open_test_store().conversations_older_than(float("inf")) == []


async def test_a_fault_after_the_body_parsed_is_answered_500_and_the_body_kept(
    tmp_path: Path, open_test_store: StoreOpener, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_clock() -> float:
        raise RuntimeError("the clock failed")

    sent = conversation()
    async with running(settings_at(tmp_path), open_test_store(), broken_clock) as runtime:
        answer = await receive_body(runtime, sent, REMOTE)
    assert answer.status == 500
    entry = answer.body["quarantine_id"]
    assert answer.body == {
        "error": "processing_failed",
        "message": "the relay could not process this body",
        "quarantine_id": entry,
    }
    assert f"could not process a body from {REMOTE}" in caplog.text
    assert "the clock failed" in caplog.text
    kept = open_test_store().quarantine_entry(entry)
    assert kept is not None
    assert (kept.reason, kept.remote, kept.body) == ("processing_failed", REMOTE, sent)
    assert open_test_store().conversations_older_than(float("inf")) == []
