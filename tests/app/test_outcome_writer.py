"""The worker's outcome writer over the real store thread: outcomes that end while a write is
under way go together in the next store call, each with its own result or error, and a
failing one undoes only its own changes."""

from __future__ import annotations

import asyncio

import pytest

from relay.delivery.outcomes import OutcomeWriter
from relay.store import STATUSES, ClaimedDelivery, StoreProtocol
from relay.store.storethread import StoreThread
from tests.support.store import emailed_intake

NOW = 1_800_000_000.0


async def claimed(store_thread: StoreThread, count: int) -> list[ClaimedDelivery]:
    def claim(store: StoreProtocol) -> list[ClaimedDelivery]:
        for n in range(1, count + 1):
            store.accept(emailed_intake(n, to=f"team{n}@shop.test"), now=NOW)
        return store.claim_due(count, now=NOW)

    found = await store_thread.call(claim)
    assert len(found) == count
    return found


def statuses(store: StoreProtocol) -> dict[int, tuple[str, str | None]]:
    return {row.id: (row.status, row.last_error) for row in store.deliveries(STATUSES)}


async def test_outcomes_written_meanwhile_go_together_in_the_next_store_call(
    store_thread: StoreThread,
) -> None:
    first, second, third = await claimed(store_thread, 3)
    writer = OutcomeWriter(store_thread)
    results = await asyncio.gather(
        writer.write(lambda s: s.mark_sent(first.id, NOW + 1)),
        writer.write(lambda s: s.mark_retry(second.id, NOW + 60, "451 try later", (), NOW + 1)),
        writer.write(lambda s: s.mark_dead(third.id, "550 no such user", (), NOW + 1)),
    )
    assert results == [None, None, None]
    # The first went at once; the other two were queued while it was under way.
    assert writer.calls == 2
    found = await store_thread.call(statuses)
    assert found == {
        first.id: ("sent", None),
        second.id: ("retrying", "451 try later"),
        third.id: ("dead", "550 no such user"),
    }


async def test_a_failing_outcome_undoes_only_its_own_changes_and_raises_for_its_caller(
    store_thread: StoreThread,
) -> None:
    first, second, third, fourth = await claimed(store_thread, 4)
    writer = OutcomeWriter(store_thread)

    def dead_then_failing(store: StoreProtocol) -> None:
        store.mark_dead(third.id, "half written", (), NOW + 1)
        raise ValueError("the outcome failed halfway")

    results = await asyncio.gather(
        writer.write(lambda s: s.mark_sent(first.id, NOW + 1)),
        writer.write(lambda s: s.mark_sent(second.id, NOW + 1)),
        writer.write(dead_then_failing),
        writer.write(lambda s: s.mark_sent(fourth.id, NOW + 1)),
        return_exceptions=True,
    )
    assert results[:2] == [None, None]
    assert isinstance(results[2], ValueError)
    assert str(results[2]) == "the outcome failed halfway"
    assert results[3] is None
    found = await store_thread.call(statuses)
    assert found == {
        first.id: ("sent", None),
        second.id: ("sent", None),
        third.id: ("sending", None),  # its own write undone: a restart requeues it
        fourth.id: ("sent", None),
    }


async def test_a_failing_outcome_first_in_its_store_call_undoes_only_its_own_changes(
    store_thread: StoreThread,
) -> None:
    first, second, third = await claimed(store_thread, 3)
    writer = OutcomeWriter(store_thread)

    def dead_then_failing(store: StoreProtocol) -> None:
        store.mark_dead(second.id, "half written", (), NOW + 1)
        raise ValueError("the outcome failed halfway")

    results = await asyncio.gather(
        writer.write(lambda s: s.mark_sent(first.id, NOW + 1)),
        writer.write(dead_then_failing),  # first of the next call: nothing written before it
        writer.write(lambda s: s.mark_sent(third.id, NOW + 1)),
        return_exceptions=True,
    )
    assert results[0] is None
    assert isinstance(results[1], ValueError)
    assert results[2] is None
    assert writer.calls == 2
    found = await store_thread.call(statuses)
    assert found == {
        first.id: ("sent", None),
        second.id: ("sending", None),  # its own write undone: a restart requeues it
        third.id: ("sent", None),
    }


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_store_that_refuses_the_call_fails_every_outcome_in_it(
    store_thread: StoreThread,
) -> None:
    [only] = await claimed(store_thread, 1)
    writer = OutcomeWriter(store_thread)
    store_thread.store.path.unlink()  # type: ignore[attr-defined] # SQLite's file
    with pytest.raises(Exception, match="was deleted while the relay had it open"):
        await writer.write(lambda s: s.mark_sent(only.id, NOW + 1))
    assert writer.calls == 1
