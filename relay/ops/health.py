"""Readiness: is the store writable, the worker running, the delivery backlog fresh?"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, replace
from typing import Any

from relay.model.errors import StoreError
from relay.store import ACTIVE, StoreProtocol
from relay.store.storethread import StoreThread

log = logging.getLogger("relay.health")  # the published logger name (docs/operations.md)


@dataclass(frozen=True)
class StoreState:
    """What one trip to the store thread learns: the write probe and the queue; ``problem``:
    why intake cannot commit although the probe could (the last intakes failed)."""

    writable: bool
    counts: dict[str, int]
    oldest_active_created_at: float | None
    problem: str | None = None


@dataclass(frozen=True)
class ReadinessCheck:
    ok: bool
    detail: str
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail, **self.data}


@dataclass(frozen=True)
class Readiness:
    checks: dict[str, ReadinessCheck]

    @property
    def ready(self) -> bool:
        return all(check.ok for check in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        return {
            "status": "ready" if self.ready else "not_ready",
            "checks": {name: check.as_json() for name, check in self.checks.items()},
        }


def read_store_state(store: StoreProtocol) -> StoreState:
    """Runs on the store thread: write probe first, then the queue counts."""
    return StoreState(store.writable(), store.counts(), store.oldest_active_created_at())


async def store_state(store: StoreThread, within: float) -> StoreState:
    """The store's state, or TimeoutError if the store thread does not answer ``within`` s;
    StoreError if its database file was deleted or replaced."""
    state = await asyncio.wait_for(store.call(read_store_state), within)
    failed = store.intake_error
    return state if failed is None else replace(state, problem=failed)


def backlog_age(state: StoreState, now: float) -> float:
    oldest = state.oldest_active_created_at
    return 0.0 if oldest is None else max(now - oldest, 0.0)


def evaluate(
    state: StoreState | str,
    *,
    worker_running: bool,
    now: float,
    max_backlog_age: float,
) -> Readiness:
    """Pure verdict. ``state`` is what the store answered, or why it did not answer."""
    worker = ReadinessCheck(worker_running, "running" if worker_running else "stopped", {})
    if isinstance(state, str):
        unknown = ReadinessCheck(False, "unknown: the store did not answer", {})
        return Readiness(
            {"store": ReadinessCheck(False, state, {}), "worker": worker, "backlog": unknown}
        )
    if state.problem is not None:
        store = ReadinessCheck(False, state.problem, {})
    else:
        store = ReadinessCheck(
            state.writable,
            "writable" if state.writable else "a write to the database failed",
            {},
        )
    age = backlog_age(state, now)
    active = sum(state.counts.get(status, 0) for status in ACTIVE)
    fresh = age < max_backlog_age
    backlog = ReadinessCheck(
        fresh,
        "fresh"
        if fresh
        else f"the oldest undelivered delivery is {age:.0f} s old (limit {max_backlog_age:g} s)",
        {
            "active": active,
            "oldest_age_seconds": round(age, 3),
            "max_age_seconds": max_backlog_age,
        },
    )
    return Readiness({"store": store, "worker": worker, "backlog": backlog})


async def readiness(
    store: StoreThread | None,
    *,
    worker_running: bool,
    now: float,
    max_backlog_age: float,
    within: float,
) -> Readiness:
    state: StoreState | str
    if store is None:
        state = "the store is not open"
    else:
        try:
            state = await store_state(store, within)
        except TimeoutError:
            state = f"the store did not answer within {within:g} s"
        except StoreError as exc:
            state = str(exc)
        except Exception as exc:
            log.exception("readiness: reading the store failed")
            state = f"reading the store failed: {type(exc).__name__}"
    verdict = evaluate(
        state, worker_running=worker_running, now=now, max_backlog_age=max_backlog_age
    )
    if not verdict.ready:
        failing = ", ".join(f"{n}: {c.detail}" for n, c in verdict.checks.items() if not c.ok)
        log.warning("not ready: %s", failing)
    return verdict
