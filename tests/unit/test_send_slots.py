"""Send slots: each destination's share, borrowing idle slots up to all but one while no other
destination waits, the order waiting sends start in, cancellation and close."""

from __future__ import annotations

import asyncio

import pytest

from relay.delivery.slots import SendSlots, SlotRule, may_start
from relay.delivery.worker import CLAIM_AHEAD, CLAIM_ROUNDS, claim_room, refill_mark, rounds_ahead

EIGHT = SlotRule.of(8, None)  # share 4, borrowing up to 7


@pytest.mark.parametrize(
    ("concurrency", "per_destination", "expected"),
    [
        (8, None, SlotRule(8, 4, 7)),
        (4, None, SlotRule(4, 2, 3)),
        (3, None, SlotRule(3, 1, 2)),
        (2, None, SlotRule(2, 1, 1)),
        (1, None, SlotRule(1, 1, 1)),
        (8, 4, SlotRule(8, 4, 4)),  # set: a hard cap, never borrowing
        (8, 8, SlotRule(8, 8, 8)),
        (4, 9, SlotRule(4, 4, 4)),
    ],
)
def test_the_rule_of_the_settings(
    concurrency: int, per_destination: int | None, expected: SlotRule
) -> None:
    assert SlotRule.of(concurrency, per_destination) == expected


@pytest.mark.parametrize("per_destination", [None, 1, 4, 64])
def test_failing_destinations_together_are_held_to_all_slots_but_one(
    per_destination: int | None,
) -> None:
    """One limit, read by the worker's claims and by the slots alike: what the worker
    worked out for itself before, ``max(concurrency - 1, 1)``, whatever the share."""
    for concurrency in range(1, 65):
        rule = SlotRule.of(concurrency, per_destination)
        assert rule.failing_limit == max(concurrency - 1, 1)
        for together in range(concurrency + 1):
            allowed = may_start(
                rule, "a", {}, others_waiting=False, failing=True, failing_running=together
            )
            assert allowed is (together < max(concurrency - 1, 1))


@pytest.mark.parametrize(
    ("running", "others_waiting", "failing", "expected"),
    [
        ({}, False, False, True),
        ({"a": 3}, True, True, True),  # within its share, whatever else
        ({"a": 4}, False, False, True),  # borrowing
        ({"a": 6}, False, False, True),  # the seventh: one slot stays free
        ({"a": 7}, False, False, False),  # never the last slot
        ({"a": 4}, True, False, False),  # another destination waits
        ({"a": 4}, False, True, False),  # ran into its deadline
        ({"a": 5, "b": 2}, False, False, False),  # borrowing would take the last free slot
        ({"a": 4, "b": 2}, False, False, True),
        ({"a": 2, "b": 6}, True, True, False),  # all 8 in use: not even its share
    ],
)
def test_may_start(
    running: dict[str, int], others_waiting: bool, failing: bool, expected: bool
) -> None:
    allowed = may_start(EIGHT, "a", running, others_waiting=others_waiting, failing=failing)
    assert allowed is expected


class Sends:
    """Sends holding their slots until released, on one event loop."""

    def __init__(self, slots: SendSlots) -> None:
        self.slots = slots
        self.started: list[str] = []
        self._release: dict[int, asyncio.Event] = {}
        self.tasks: list[asyncio.Task[None]] = []

    def send(self, key: str) -> int:
        """A send to ``key`` asks for a slot; its number, to release or cancel it."""
        number = len(self.tasks)
        done = self._release[number] = asyncio.Event()

        async def run() -> None:
            async with self.slots.slot(key):
                self.started.append(f"{key}{number}")
                await done.wait()

        self.tasks.append(asyncio.create_task(run()))
        return number

    def release(self, number: int) -> None:
        self._release[number].set()

    async def settle(self) -> None:
        for _ in range(5):  # let every woken task take its step
            await asyncio.sleep(0)


async def test_alone_a_destination_borrows_up_to_all_but_one() -> None:
    sends = Sends(SendSlots(EIGHT))
    for _ in range(9):
        sends.send("a")
    await sends.settle()
    assert len(sends.started) == 7
    assert dict(sends.slots.running) == {"a": 7}
    sends.release(0)
    await sends.settle()
    assert sends.started[-1] == "a7"  # the oldest waiting
    assert dict(sends.slots.running) == {"a": 7}


async def test_a_waiting_destination_stops_the_borrowing_and_gets_the_freed_slots() -> None:
    sends = Sends(SendSlots(EIGHT))
    borrowed = [sends.send("a") for _ in range(7)]
    more_a = [sends.send("a") for _ in range(3)]
    await sends.settle()
    b = [sends.send("b") for _ in range(3)]
    await sends.settle()
    assert sends.started[-1] == "b10"  # the one free slot, at once
    assert dict(sends.slots.running) == {"a": 7, "b": 1}
    sends.release(borrowed[0])
    await sends.settle()
    # The freed slot goes to b, which waited after the a's behind it: a waits for its share.
    assert sends.started[-1] == "b11"
    assert dict(sends.slots.running) == {"a": 6, "b": 2}
    sends.release(borrowed[1])
    sends.release(borrowed[2])
    await sends.settle()
    assert dict(sends.slots.running) == {"a": 4, "b": 3}  # a back to its share, b has all it asked
    sends.release(borrowed[3])
    await sends.settle()
    assert sends.started[-1] == f"a{more_a[0]}"  # within its share again, the oldest a first
    assert dict(sends.slots.running) == {"a": 4, "b": 3}
    for number in b:
        sends.release(number)
    await sends.settle()
    # b is done and nothing else waits for another destination: a borrows again, up to 7.
    assert dict(sends.slots.running) == {"a": 6}
    assert sends.started[-2:] == [f"a{more_a[1]}", f"a{more_a[2]}"]


async def test_a_destination_that_ran_into_its_deadline_keeps_to_its_share() -> None:
    failing = {"slow"}
    sends = Sends(SendSlots(EIGHT, failing=failing))
    for _ in range(6):
        sends.send("slow")
    await sends.settle()
    assert dict(sends.slots.running) == {"slow": 4}
    failing.clear()  # a send to it succeeded: it may borrow again, from the next decision
    sends.send("other")
    sends.release(0)
    await sends.settle()
    assert dict(sends.slots.running) == {"slow": 5, "other": 1}


async def test_a_set_cap_is_never_passed() -> None:
    sends = Sends(SendSlots(SlotRule.of(8, 2)))
    for _ in range(5):
        sends.send("a")
    await sends.settle()
    assert dict(sends.slots.running) == {"a": 2}


async def test_a_cancelled_waiter_no_longer_stops_the_borrowing() -> None:
    """b ran into its deadline and holds its share: its next send waits, and while it does,
    a may not borrow. Once that send is cancelled (a stop, say), a borrows at once."""
    sends = Sends(SendSlots(SlotRule(8, 2, 7), failing={"b"}))
    for key in "aabb":
        sends.send(key)
    await sends.settle()
    waiting_b = sends.send("b")
    waiting_a = sends.send("a")
    await sends.settle()
    assert dict(sends.slots.running) == {"a": 2, "b": 2}
    sends.tasks[waiting_b].cancel()
    await sends.settle()
    assert sends.started[-1] == f"a{waiting_a}"
    assert dict(sends.slots.running) == {"a": 3, "b": 2}


async def test_a_send_cancelled_as_it_was_given_a_slot_gives_it_back() -> None:
    sends = Sends(SendSlots(SlotRule.of(2, None)))  # share 1, ceiling 1
    first = sends.send("a")
    second = sends.send("a")
    await sends.settle()
    sends.release(first)  # grants the slot to the second ...
    sends.tasks[second].cancel()  # ... which is cancelled before it runs again
    await sends.settle()
    assert sends.tasks[second].cancelled()
    assert dict(sends.slots.running) == {}
    assert sends.started == ["a0"]
    third = sends.send("a")
    await sends.settle()
    assert sends.started == ["a0", f"a{third}"]


async def test_cancelled_while_waiting_leaves_nothing_behind() -> None:
    sends = Sends(SendSlots(SlotRule.of(2, None)))  # share 1, ceiling 1
    first = sends.send("a")
    second = sends.send("a")
    await sends.settle()
    sends.tasks[second].cancel()
    await sends.settle()
    assert sends.tasks[second].cancelled()
    sends.release(first)
    await sends.settle()
    assert dict(sends.slots.running) == {}
    assert sends.started == ["a0"]


async def test_after_close_no_send_starts() -> None:
    sends = Sends(SendSlots(SlotRule.of(2, None)))
    first = sends.send("a")
    second = sends.send("a")
    await sends.settle()
    sends.slots.close()
    sends.release(first)
    third = sends.send("b")
    await sends.settle()
    assert sends.started == ["a0"]
    assert dict(sends.slots.running) == {}
    for number in (second, third):
        sends.tasks[number].cancel()
    await sends.settle()
    assert all(task.done() for task in sends.tasks)


async def test_a_send_given_a_slot_just_before_close_does_not_start() -> None:
    """A send ends and its slot goes to the one waiting; the stop closes the slots before
    that one has run again: it does not start, but waits (to be cancelled) like the rest."""
    slots = SendSlots(SlotRule.of(2, None))  # share 1, ceiling 1
    end = asyncio.Event()

    async def ends_as_the_stop_begins() -> None:
        async with slots.slot("a"):
            await end.wait()
        slots.close()  # the slot went to the waiting send, which has not run since

    first = asyncio.create_task(ends_as_the_stop_begins())
    sends = Sends(slots)
    await sends.settle()
    waiting = sends.send("a")
    await sends.settle()
    end.set()
    await first
    await sends.settle()
    assert sends.started == []
    assert dict(slots.running) == {}
    sends.tasks[waiting].cancel()
    await sends.settle()
    assert sends.tasks[waiting].cancelled()
    assert dict(slots.running) == {}


@pytest.mark.parametrize(
    ("running", "failing_running", "expected"),
    [
        ({"a": 3, "b": 3}, 6, True),  # failing ones hold 6: the seventh is theirs
        ({"a": 3, "b": 4}, 7, False),  # all but one held by failing ones: the last stays free
        ({"a": 3, "c": 4}, 3, True),  # c is not failing
    ],
)
def test_failing_destinations_together_leave_one_slot(
    running: dict[str, int], failing_running: int, expected: bool
) -> None:
    allowed = may_start(
        EIGHT, "a", running, others_waiting=False, failing=True, failing_running=failing_running
    )
    assert allowed is expected


@pytest.mark.parametrize(
    ("together", "expected"), [(True, {"a": 4, "b": 3}), (False, {"a": 4, "b": 4})]
)
async def test_failing_destinations_leave_a_slot_unless_told_not_to(
    together: bool, expected: dict[str, int]
) -> None:
    """Failing destinations within their shares: together at most 7 of 8 slots, unless
    ``failing_together`` is off (the worker on PostgreSQL, for its leases)."""
    sends = Sends(SendSlots(EIGHT, failing={"a", "b"}, failing_together=together))
    for key in "aaaabbbb":
        sends.send(key)
    await sends.settle()
    assert dict(sends.slots.running) == expected


def test_claim_room_covers_borrowed_slots_and_leaves_others_their_share() -> None:
    """Without leases a destination claims ``ahead`` times every slot it may use (its share
    and those it may borrow), and the worker's total grows by the same borrowed room, so any
    other destination still finds ``ahead`` times its share; with leases, or with a hard cap
    (nothing to borrow), only the share is claimed ahead, as before."""
    default = SlotRule.of(8, None)  # share 4, borrows up to 7
    assert claim_room(default, 2, leases=False) == (14, 22)
    assert claim_room(default, 2, leases=True) == (8, 16)
    assert claim_room(default, 1, leases=True) == (4, 8)  # no claim ahead at all
    assert claim_room(SlotRule.of(8, 3), 2, leases=False) == (6, 16)  # a hard cap of 3
    for concurrency in range(1, 33):
        for per_destination in (None, *range(1, concurrency + 1)):
            rule = SlotRule.of(concurrency, per_destination)
            for leases in (False, True):
                for ahead in (1, 2, 3):
                    mine, in_all = claim_room(rule, ahead, leases=leases)
                    assert mine >= rule.share * ahead
                    if per_destination is None and concurrency > 1:
                        # what one destination holds leaves the others ahead times a share
                        assert in_all - mine >= rule.share * ahead, (rule, ahead, leases)
                    if not leases:
                        # one claimed for each send it may have at once, ahead times
                        assert mine == rule.ceiling * ahead


def test_without_leases_a_destination_is_refilled_a_round_at_a_time() -> None:
    """Without leases the worker claims CLAIM_ROUNDS rounds of a destination's slots, and a
    send's end wakes it for that destination only once it is down to one round below that,
    so the claim then takes a whole round; with leases (``CLAIM_AHEAD`` rounds where the
    lease allows, else one) every send's end does, as any room is claimed."""
    default = SlotRule.of(8, None)  # share 4, borrows up to 7
    assert rounds_ahead(None, [30.0, None]) == CLAIM_ROUNDS == CLAIM_AHEAD + 1
    assert rounds_ahead(300.0, [30.0]) == CLAIM_AHEAD  # 300 s > 4 x 30 s
    assert rounds_ahead(300.0, [120.0]) == 1
    assert rounds_ahead(300.0, [None]) == 1  # a sender without a deadline
    assert refill_mark(default, CLAIM_ROUNDS, leases=False) == 14  # 21 held at most
    assert refill_mark(default, CLAIM_AHEAD, leases=True) == 7  # 8 held at most
    assert refill_mark(SlotRule.of(8, 3), CLAIM_ROUNDS, leases=False) == 6  # 9 at most
    for concurrency in range(1, 33):
        for per_destination in (None, *range(1, concurrency + 1)):
            rule = SlotRule.of(concurrency, per_destination)
            mine, _ = claim_room(rule, CLAIM_ROUNDS, leases=False)
            mark = refill_mark(rule, CLAIM_ROUNDS, leases=False)
            # a whole round of room at the mark, and more than a round still held there
            assert mine - mark == rule.ceiling
            assert mark > rule.ceiling
            for ahead in (1, CLAIM_AHEAD):
                held, _ = claim_room(rule, ahead, leases=True)
                assert refill_mark(rule, ahead, leases=True) == held - 1
