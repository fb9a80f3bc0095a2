"""A hand-moved loop clock and a store thread with a set intake pressure, for the yield's tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import Any

from relay.store.storethread import StoreThread
from tests.support.faulty import ClaimRecordingStore


class HandClock(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when the test moves it (``advance``): a timer
    fires once the test has moved the clock past it, however slow or fast the machine is.
    ``run_free``: from then on the clock runs (for the clean-up's own timeouts)."""

    def __init__(self) -> None:
        self.hand = time.monotonic()
        self.offset: float | None = None
        super().__init__()

    def time(self) -> float:
        return self.hand if self.offset is None else time.monotonic() + self.offset

    def advance(self, seconds: float) -> None:
        self.hand += seconds

    def run_free(self) -> None:
        if self.offset is None:
            self.offset = self.hand - time.monotonic()


def run_on_hand_clock(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` to its end on a new ``HandClock`` loop."""
    with asyncio.Runner(loop_factory=HandClock) as runner:
        runner.run(main)


def hand_clock() -> HandClock:
    """The running loop, which the test started as a ``HandClock``."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, HandClock)
    return loop


class BusyIntake(StoreThread):
    """The real store thread, with how busy intake is set by the test (``pressure``) instead of
    counted: the worker's one reading of it (``intake_pressure``) is the seam."""

    pressure = 0

    def intake_pressure(self) -> int:
        return self.pressure


async def claims_settle(thread: StoreThread) -> None:
    """Whatever the worker was about to ask of the store is asked and answered: the loop gets
    its turns, then a store call queued after any such claim comes back."""
    for _ in range(50):
        await asyncio.sleep(0)
    await thread.call(lambda store: None, durable=False)


def claims_that_took(thread: StoreThread) -> list[tuple[int, int]]:
    """The claims so far of the thread's ``ClaimRecordingStore`` that took at least one
    delivery: (the limit asked for, how many it got), in order."""
    store = thread.store
    assert isinstance(store, ClaimRecordingStore)
    return [claim for claim in store.claims if claim[1] > 0]
