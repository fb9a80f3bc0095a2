"""The delivery worker: claims due deliveries, renders and sends them, records each outcome."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import random
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.utils import parseaddr

from pydantic import TypeAdapter

from relay.config.settings import Action, EmailAction, SlackAction
from relay.delivery.outcomes import OutcomeWriter
from relay.delivery.retry import GiveUp, RetryPolicy, decide
from relay.delivery.slots import SendSlots, SlotRule
from relay.intake.payload import parse
from relay.leads.links import LeadLinks, links_for
from relay.leads.slack import with_buttons
from relay.model.category import Category
from relay.model.content import Content, EmailContent, SlackContent
from relay.model.crm import CrmContent
from relay.model.errors import (
    DeliveryError,
    DeliveryTimeout,
    PermanentDeliveryError,
    RateLimited,
    TransientDeliveryError,
)
from relay.render.dispatch import Job, render
from relay.render.pool import PoolUnavailable, RenderJob, RenderPool
from relay.routing.rules import AnyAction, TeamsAction
from relay.senders.base import Sender, SendResult, send_within_deadline
from relay.senders.outbox import OutboxSender
from relay.senders.registry import sender_key
from relay.snapshot import Snapshot
from relay.store import ClaimedDelivery, StoreProtocol
from relay.store.operator import History
from relay.store.storethread import StoreThread

log = logging.getLogger("relay.worker")  # the published logger name (docs/operations.md)

_ACTION = TypeAdapter[Action](Action)
CANCEL_WAIT_SECONDS = 5.0  # after the grace period, how long cancelled sends may take to end
IDLE_POLL_SECONDS = 1.0  # picks up changes made by `relay retry` from another process
# After a claim that looked past a full destination's queued deliveries for others and found
# too few, claims within this long stop at the first delivery turned away: with a backlog for
# one destination, looking past it reads the whole backlog, and claims follow one another (one
# after every send, on SQLite after every round of them: ``refill_mark``).
# Deliveries to other destinations behind that backlog wait at most this long for a slot.
FULL_SCAN_SECONDS = 0.05
ACTIONS_KEPT = 256  # validated actions the worker keeps (they are frozen values)
# Deliveries claimed ahead of their send (rendered and waiting for a send slot): per
# destination up to ``ahead`` times its share of the slots (``rounds_ahead``: CLAIM_AHEAD with
# leases where ``ahead_allowed``, CLAIM_ROUNDS below without leases), and without leases
# (SQLite) as many for each slot it may borrow, and only its share once it ran into its
# deadline; in all up to ``ahead`` times the sum of ``concurrency`` and (without leases) the
# slots one destination may borrow (``claim_room``, ``_admitter``). The send itself holds one
# of the ``concurrency`` send slots (``SendSlots``).
CLAIM_AHEAD = 2
# Without leases (SQLite) one round more: a destination holds up to CLAIM_ROUNDS times the
# slots it may use, and is refilled a round at a time: the end of one of its sends wakes the
# worker for it only once it is down to one round below that (``refill_mark``), so a claim
# takes a round at once instead of one delivery after every send (a fraction of the store
# calls and commits per email in a backlog) and a round is always rendered ahead of the
# sends. No lease bounds how long those wait; a stop puts them back, a restart after a crash
# requeues them.
CLAIM_ROUNDS = CLAIM_AHEAD + 1
# With leases (nothing claimed ahead for a borrowed slot: ``claim_room``), a delivery claimed
# ahead is sent within this many send deadlines of its claim (the longest deadline of any
# destination): it waits for at most (CLAIM_AHEAD - 1) rounds of its destination's sends,
# each of which waits at most (CLAIM_AHEAD - 1) rounds of all sends for a slot of
# ``concurrency``, then its own turn for such a slot and its own send:
# (CLAIM_AHEAD - 1) * CLAIM_AHEAD + (CLAIM_AHEAD - 1) + 1 = CLAIM_AHEAD ** 2 deadlines. On
# PostgreSQL the worker claims ahead only while the lease outlasts that
# (``ahead_allowed``); otherwise it claims no more than it can send at once, as a claim that
# never waits for a slot is sent within one deadline (``relay.snapshot.lease_problem``).
AHEAD_DEADLINES = CLAIM_AHEAD**2
# A worker yielding to intake (``yield_at_intakes``) with its floor of deliveries in flight
# looks at least this often whether intake has gone quiet, even while a slow send holds them.
YIELD_POLL_SECONDS = 0.05

# Told each recorded outcome: (channel, "sent" | "retry" | "dead", seconds since the claim).
Observer = Callable[[str, str, float], None]


def message_id(dedupe_key: str, from_address: str) -> str:
    """Stable per conversation, action and category: a resend dedupes downstream."""
    domain = _domain(from_address)
    digest = hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


@functools.lru_cache(maxsize=64)
def _domain(from_address: str) -> str:
    """The domain of a From address (the same few for every delivery)."""
    return parseaddr(from_address)[1].rpartition("@")[2] or "relay.invalid"


def delivery_job(
    snapshot: Snapshot,
    delivery: ClaimedDelivery,
    action: AnyAction,
    earlier: tuple[tuple[str, float], ...] = (),
    follow_up: LeadLinks | None = None,
    *,
    references: tuple[str, ...] = (),
) -> Job:
    """What rendering one claimed delivery takes; its email Message-ID is stable per delivery.
    ``earlier``: the visitor's earlier conversations (the store's ``visitor_history``);
    ``follow_up``: a lead's claim and done links, for an email about that lead;
    ``references``: the Message-IDs of the visitor's earlier emails that were sent (the
    store's ``sent_email_ids``)."""
    return Job(
        delivery.raw,
        parse(delivery.raw),
        Category(delivery.category),
        action,
        rule=delivery.rule,
        delivery_id=delivery.id,
        message_id=message_id(delivery.dedupe_key, snapshot.from_address(action)),
        earlier=earlier,
        follow_up=follow_up,
        references=references,
    )


def render_delivery(
    snapshot: Snapshot,
    delivery: ClaimedDelivery,
    earlier: tuple[tuple[str, float], ...] = (),
    follow_up: LeadLinks | None = None,
    *,
    references: tuple[str, ...] = (),
) -> Content:
    action = _ACTION.validate_python(delivery.action)
    job = delivery_job(snapshot, delivery, action, earlier, follow_up, references=references)
    return render(job, snapshot.renderer(snapshot.from_address(action)))


# Emails and Slack messages show the visitor's earlier conversations.
WITH_HISTORY = frozenset({"email", "slack"})


@dataclass(frozen=True, slots=True)
class Context:
    """What the store knows around one delivery: the visitor's earlier conversations and, for
    an email, the Message-IDs of the emails about this visitor that were sent."""

    earlier: History = ()
    references: tuple[str, ...] = ()


def ahead_allowed(lease_seconds: float | None, deadlines: list[float | None]) -> bool:
    """Whether deliveries may be claimed ahead of their send: always without leases (SQLite,
    ``lease_seconds`` None); with leases only if the lease outlasts ``AHEAD_DEADLINES`` times
    the longest send deadline (a sender without one: never)."""
    if lease_seconds is None:
        return True
    if any(deadline is None for deadline in deadlines):
        return False
    longest = max((d for d in deadlines if d is not None), default=0.0)
    return lease_seconds > AHEAD_DEADLINES * longest


def rounds_ahead(lease_seconds: float | None, deadlines: list[float | None]) -> int:
    """How many times the slots it may use a destination may have claimed (``claim_room``'s
    ``ahead``): ``CLAIM_ROUNDS`` without leases (SQLite), ``CLAIM_AHEAD`` with leases where
    ``ahead_allowed``, else 1 (nothing claimed ahead)."""
    if lease_seconds is None:
        return CLAIM_ROUNDS
    return CLAIM_AHEAD if ahead_allowed(lease_seconds, deadlines) else 1


def refill_mark(rule: SlotRule, ahead: int, *, leases: bool) -> int:
    """The most a destination may hold (claimed and not yet past their send) for the end of
    one of its sends to wake the worker to claim more for it: without leases one round
    (``rule.ceiling``, the sends it may have at once) below its ``claim_room``, so that the
    claim then takes a whole round; with leases one below, so every send's end does."""
    cap, _ = claim_room(rule, ahead, leases=leases)
    return cap - 1 if leases else max(cap - rule.ceiling, 0)


def claim_room(rule: SlotRule, ahead: int, *, leases: bool) -> tuple[int, int]:
    """How many deliveries the worker may hold, per destination from their claim to the end
    of their send, and in all until their outcome is recorded: its share of the slots
    ``ahead`` times for each destination, and ``concurrency`` ``ahead`` times in all; without
    leases (SQLite) also ``ahead`` for each slot one destination may borrow, in both: a
    destination that borrows all it may then keeps ``ahead - 1`` deliveries rendered and
    waiting for each of its sends, and another destination still finds room for its share
    ``ahead`` times. With leases (PostgreSQL) nothing is claimed for a borrowed slot: that
    slot is not guaranteed, and a delivery claimed for it could wait past its lease
    (``AHEAD_DEADLINES``)."""
    borrowed = 0 if leases else rule.ceiling - rule.share
    return (rule.share + borrowed) * ahead, (rule.total + borrowed) * ahead


def claim_with_context(
    store: StoreProtocol,
    limit: int,
    now: float,
    admit: Callable[[dict[str, object]], bool],
    *,
    past_refused: bool = True,
) -> list[tuple[ClaimedDelivery, Context]]:
    """On the store's thread, in one call (one round trip instead of one more per delivery):
    claim what is due, and read the context of each email and Slack message (each apart, in
    ``reading``: a failure is only missing context, never a failed send). Their visitor
    histories are read together first (``visitor_histories``: conversations of one visitor
    share one read); if that fails, each delivery's is read on its own."""
    claimed = []
    deliveries = store.claim_due(limit=limit, now=now, admit=admit, past_refused=past_refused)
    wanted = [d.conversation_id for d in deliveries if d.action.get("type") in WITH_HISTORY]
    histories: dict[int, History] = {}
    if len(wanted) > 1:
        try:
            with store.reading():
                histories = store.visitor_histories(wanted)
        except Exception as exc:  # either store's errors: each read on its own below
            log.warning("visitor histories of %d deliveries (%s)", len(wanted), exc)
    for delivery in deliveries:
        context = Context()
        kind = delivery.action.get("type")
        if kind in WITH_HISTORY:
            try:
                with store.reading():
                    history = histories.get(delivery.conversation_id)
                    if history is None:
                        history = store.visitor_history(delivery.conversation_id)
                    context = Context(
                        history, store.sent_email_ids(delivery.id) if kind == "email" else ()
                    )
            except Exception as exc:  # either store's errors: only context, never a failed send
                log.warning("delivery %d: no visitor history (%s)", delivery.id, exc)
        claimed.append((delivery, context))
    return claimed


def claim_and_look_ahead(
    store: StoreProtocol,
    limit: int,
    now: float,
    admit: Callable[[dict[str, object]], bool],
    *,
    past_refused: bool = True,
) -> tuple[list[tuple[ClaimedDelivery, Context]], float | None]:
    """``claim_with_context``, and when it claims fewer than ``limit``, in the same store call
    (one round trip instead of two per step), when the earliest delivery due after ``now`` is
    (``next_due_at``; None if none, or if the claim took as many as asked)."""
    claimed = claim_with_context(store, limit, now, admit, past_refused=past_refused)
    return claimed, store.next_due_at(now) if len(claimed) < limit else None


def _nothing(store: StoreProtocol) -> None:
    """A store call that only takes its turn on the store's thread."""


class Worker:
    def __init__(
        self,
        store: StoreThread,
        snapshot: Callable[[], Snapshot],
        *,
        policy: RetryPolicy,
        concurrency: int = 4,
        per_destination: int | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
        observe: Observer | None = None,
        render_pool: RenderPool | None = None,
        lease_seconds: float | None = None,
        yield_at_intakes: int = 0,
        yield_concurrency: int = 1,
        yield_per_second: float | None = None,
    ) -> None:
        self._store = store
        # Outcomes (sent, retry, dead, external ids) of deliveries that end together: one
        # store call, one commit and one flush for them all, each still durable before its
        # delivery counts as finished.
        self._outcomes = OutcomeWriter(store)
        self._snapshot = snapshot  # the current settings' senders and renderers
        self._policy = policy
        self._concurrency = concurrency
        # In flight at once to one destination (sender key): its share of the slots, which a
        # slow destination keeps at most while the others go on with the rest; unset, half
        # the slots, and idle ones borrowed up to all but one while no other destination's
        # send waits (``SlotRule.of``).
        self._slot_rule = SlotRule.of(concurrency, per_destination)
        # Destinations whose last send ran into its deadline (until one succeeds): together
        # they hold at most all slots but one (``SlotRule.failing_limit``), so however many
        # destinations are slow, one slot stays for the destinations that are not.
        self._failing: set[str] = set()
        # Claimed deliveries not yet past their send, by sender key (``_ahead_of`` by task):
        # what the destination caps count. Sends hold a slot of ``_send_slots``.
        self._busy: Counter[str] = Counter()
        self._ahead_of: dict[asyncio.Task[None], str] = {}
        self._in_send: set[asyncio.Task[None] | None] = set()  # holding their send slots
        # Failing destinations together start no send beyond all slots but one, even of
        # deliveries claimed before they failed; not with leases (PostgreSQL): a claim held
        # back for a slot could outlast its lease, which only ``AHEAD_DEADLINES`` covers.
        self._send_slots = SendSlots(
            self._slot_rule, failing=self._failing, failing_together=lease_seconds is None
        )
        # On PostgreSQL, the claims' lease (``ahead_allowed``); None: no leases (SQLite).
        self._lease = lease_seconds
        # ``rounds_ahead`` by snapshot: CLAIM_ROUNDS, CLAIM_AHEAD or 1.
        self._ahead_for: tuple[Snapshot, int] | None = None
        # The last step's claim ended and took fewer than it had room for: the end of a
        # delivery it counted makes no more room for what is due (``_finished``).
        self._room_left = False
        # The last step's claim took all it asked for and had more room: the next one goes on
        # claiming past the destinations' refill marks, up to their room (``_admitter``).
        self._filling = False
        # A claim is under way; the destinations whose send ended meanwhile down to their
        # refill mark, which wake the worker once it is back only if it did not refill them.
        self._claiming = False
        self._refills: set[str] = set()
        self._ended_meanwhile = False  # deliveries ended while it is under way
        # Intake first: while the store is busy with at least ``yield_at_intakes`` intakes
        # (``StoreThread.intake_pressure``; 0: never), the worker holds at most
        # ``yield_concurrency`` deliveries (at least 1: it never stops), so the CPU, the
        # store thread and the disk go to the hook's answers; ``yielding``: the last step did.
        self._yield_at = yield_at_intakes
        self._yield_concurrency = max(yield_concurrency, 1)
        # ...and starts at most ``yield_per_second`` of them a second (None: as fast as its
        # floor frees up): the next claim while yielding waits until ``_paced_until`` (the
        # event loop's clock), after a claim of n deliveries n / yield_per_second later.
        self._yield_pace = None if yield_per_second is None else 1.0 / yield_per_second
        self._paced_until = 0.0
        self.yielding = False
        self._clock = clock
        self._jitter = jitter
        self._observer = observe
        self._render_pool = render_pool
        self._rendered_snapshot: Snapshot | None = None
        self._render_generation = 0
        self._claimed_at: dict[int, float] = {}
        self._actions: dict[str, Action] = {}  # validated actions by their stored JSON
        self._full_scan_at = 0.0  # time.monotonic() from which a claim looks past refusals
        self._wake = asyncio.Event()
        self._settled = asyncio.Event()
        self._stopping = False
        self._inflight: dict[asyncio.Task[None], int] = {}
        self._task: asyncio.Task[None] | None = None
        self._progress = asyncio.Condition()
        self.finished_attempts = 0  # attempts whose outcome has been recorded
        # Claimed deliveries whose outcome could not be written (store busy or full): they
        # are requeued by the next step instead of waiting in 'sending' for a restart.
        self._unrecorded: dict[int, ClaimedDelivery] = {}

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-worker")

    def wake(self) -> None:
        self._settled.clear()
        if self.yielding and (
            len(self._inflight) >= self._yield_concurrency or self._paced_for() > 0
        ):
            # Yielding to intake and holding its floor, or paused by its pace: a step per
            # accepted intake would only find no room or the pause. The end of a delivery it
            # holds wakes the worker (``_finished``), and ``_hold_floor`` looks again by
            # itself once the pause or the yield's poll is over.
            return
        self._wake.set()

    def _paced_for(self) -> float:
        """Seconds until the worker, yielding to intake, may claim again (0 or less: now)."""
        if self._yield_pace is None:
            return 0.0
        return self._paced_until - asyncio.get_running_loop().time()

    async def settled(self) -> None:
        """Return once nothing is pending, retrying or in flight (used by tests and benches)."""
        self.wake()
        await self._settled.wait()

    async def attempted(self, count: int) -> None:
        """Return once ``count`` attempts (since start) have had their outcome recorded."""
        async with self._progress:
            await self._progress.wait_for(lambda: self.finished_attempts >= count)

    async def stop(self, grace: float) -> None:
        """Stop claiming; put back the deliveries claimed ahead that are not being sent yet,
        give in-flight sends ``grace`` seconds, then put the rest back. No send starts once
        this is called, so a slot that a send frees meanwhile is not taken by a delivery
        claimed ahead: those all go back to pending."""
        self._stopping = True
        self._send_slots.close()
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._put_back_unsent()
        log.info(
            "worker stopping: waiting up to %g s for %d in-flight deliveries",
            grace,
            len(self._inflight),
        )
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=grace)
        unfinished = {t: i for t, i in self._inflight.items() if not t.done()}
        for task in unfinished:
            task.cancel()
        if unfinished:
            # Senders close their connections when cancelled; do not let one that does not
            # hold the shutdown up: its row is released either way.
            await asyncio.wait(list(unfinished), timeout=CANCEL_WAIT_SECONDS)
            ids = list(unfinished.values())
            await self._store.call(lambda s: s.release(ids))
            log.warning("shutdown: %d unfinished deliveries left pending", len(ids))
        if self._render_pool is not None:
            await asyncio.to_thread(self._render_pool.close)

    async def _put_back_unsent(self) -> None:
        """Cancel the deliveries still rendering or waiting for a connection (none of them
        has begun its send) and make them pending again: only sends get the grace period."""
        unsent = {
            task: delivery_id
            for task, delivery_id in self._inflight.items()
            if task in self._ahead_of and task not in self._in_send and not task.done()
        }
        if not unsent:
            return
        for task in unsent:
            task.cancel()
        await asyncio.wait(list(unsent), timeout=CANCEL_WAIT_SECONDS)
        ids = list(unsent.values())
        await self._store.call(lambda s: s.release(ids))
        log.info("shutdown: %d deliveries claimed ahead of their send left pending", len(ids))

    async def _run(self) -> None:
        recovered = False
        while not self._stopping:
            try:
                if not recovered:
                    count = await self._store.call(lambda s: s.recover_claimed(self._clock()))
                    recovered = True
                    if count:
                        log.warning("requeued %d deliveries interrupted by a previous stop", count)
                await self._step()
            except Exception:
                # The store failed (disk full, locked ...): keep the worker alive and try
                # again shortly; nothing is lost, the rows stay where they were.
                log.exception("delivery worker step failed; retrying in %g s", IDLE_POLL_SECONDS)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=IDLE_POLL_SECONDS)

    async def _step(self) -> None:
        """Claim what is due and start sending it, or wait until something may be due."""
        self._wake.clear()
        self._room_left = False
        if self._unrecorded:
            await self._requeue_unrecorded()
        ahead = self._ahead()
        _, limit = claim_room(self._slot_rule, ahead, leases=self._lease is not None)
        self.yielding = self._yield_at > 0 and self._store.intake_pressure() >= self._yield_at
        if self.yielding:
            limit = min(limit, self._yield_concurrency)
            paced = self._paced_for()
            if paced > 0:
                await self._hold_floor(paced)
                return
        room = limit - len(self._inflight)
        # At most ``concurrency`` in one claim: the store call that claims them, reading each
        # one's context, holds back the intakes queued behind it; the rest of the room is
        # claimed by the next step, at once (below).
        free = min(room, self._concurrency)
        if free <= 0:
            if self.yielding:
                await self._hold_floor()
            else:
                await self._idle(known=True)
            return
        now = self._clock()
        refused: list[int] = [0]  # deliveries due now that waited for their destination's room
        # A step that goes on with a full claim fills on past the refill mark (``_admitter``).
        filling, self._filling = self._filling, False
        admit = self._admitter(refused, ahead, filling=filling)
        started = time.monotonic()
        full = started >= self._full_scan_at  # look past deliveries turned away
        # Fewer than asked: the next due time is read in the same call, for ``_idle``.
        claimed, next_due = await self._claim(free, now, admit, full=full)
        rescan = None  # a claim that stopped at a refusal: when to look past it again
        if refused[0] and len(claimed) < free:
            if full:
                self._full_scan_at = started + FULL_SCAN_SECONDS
            rescan = max(self._full_scan_at - time.monotonic(), 0.001)
        self._room_left = len(claimed) < free
        pace = self._yield_pace if self.yielding and claimed else None
        if pace is not None:
            loop_now = asyncio.get_running_loop().time()
            self._paced_until = loop_now + len(claimed) * pace
        if self.yielding and (len(claimed) >= free or pace is not None):
            # Its floor just claimed, or paused by its pace (``wake`` then takes no intake's
            # wake-up, so ``_idle`` could wait all of ``IDLE_POLL_SECONDS``): look again
            # within the yield's poll, as any yield does, and with room left in its floor as
            # soon as the pause is over if that is sooner.
            partial = pace is not None and len(claimed) < free
            await self._hold_floor(self._paced_for() if partial else None)
            return
        if len(claimed) >= free and free < room:
            self._filling = True
            return  # a full claim with more room: the next step claims on at once
        # As many as asked: more may be due, and the next step claims as soon as a delivery
        # it holds ends (which wakes the worker: ``_finished``), so no look at the due times
        # now. Fewer than asked: whatever is due now is claimed or waits for its destination
        # to have room (the send that brings it down to its refill mark wakes the worker, and
        # a claim that turned some away looks again within ``rescan``); only later due times
        # matter.
        await self._idle(
            waiting=refused[0] > 0,
            within=rescan,
            known=len(claimed) >= free,
            next_due=next_due,
        )

    async def _claim(
        self, free: int, now: float, admit: Callable[[dict[str, object]], bool], *, full: bool
    ) -> tuple[list[tuple[ClaimedDelivery, Context]], float | None]:
        """Claim up to ``free`` deliveries due at ``now`` that ``admit`` lets in (looking past
        its refusals if ``full``), in one store call, and start an attempt for each; with the
        next due time when it took fewer (``claim_and_look_ahead``). The sends that end while
        it is under way are looked at once it is back (``_claimed_meanwhile``)."""
        self._claiming = True
        claimed: list[tuple[ClaimedDelivery, Context]] = []
        filled = True  # a failed claim: any delivery that ended meanwhile wakes the worker
        try:
            # Not waiting for the disk: a claim only marks rows 'sending', which a restart
            # puts back to pending whether or not the claim reached the disk
            # (recover_claimed).
            claimed, next_due = await self._store.call(
                lambda s: claim_and_look_ahead(s, free, now, admit, past_refused=full),
                durable=False,
            )
            for delivery, context in claimed:
                task = asyncio.create_task(self._attempt(delivery, context))
                key = sender_key(delivery.action)
                self._inflight[task] = delivery.id
                self._ahead_of[task] = key
                self._busy[key] += 1
                task.add_done_callback(self._finished)
            filled = len(claimed) >= free
        finally:
            self._claimed_meanwhile(filled=filled)
        return claimed, next_due

    async def _hold_floor(self, paced: float | None = None) -> None:
        """Yielding to intake, holding its floor or paused by its pace: wait until woken (a
        stop, or a delivery's end that ``_finished`` passes on), at most ``YIELD_POLL_SECONDS``
        or ``paced`` (the seconds left of the pause) if less; intake's wake-ups are not taken
        meanwhile (``wake``). Not woken: one store call of its own before the next step, which
        then waits out the rest of any pause."""
        if paced is not None:
            await self._wait_for_wake(min(paced, YIELD_POLL_SECONDS))
        else:
            await self._idle(known=True, within=YIELD_POLL_SECONDS)
        if self._wake.is_set():
            return
        # Not woken: a store call of its own, in a batch without intakes if intake has gone
        # quiet, lets the next step see that.
        await self._store.call(_nothing, durable=False)

    def _ahead(self) -> int:
        """How many times the slots it may use a destination may have claimed
        (``rounds_ahead``)."""
        snapshot = self._snapshot()
        if self._ahead_for is None or self._ahead_for[0] is not snapshot:
            deadlines = [sender.deadline_seconds for sender in snapshot.senders.values()]
            self._ahead_for = (snapshot, rounds_ahead(self._lease, deadlines))
        return self._ahead_for[1]

    def _mark(self, key: str, ahead: int) -> int:
        """``refill_mark`` for destination ``key``. For one that last ran into its deadline,
        every send's end wakes the worker, as before the refill: that end also makes room
        under the failing destinations' joint limit (``SlotRule.failing_limit``), which
        another failing destination may be waiting for."""
        if key in self._failing:
            return sys.maxsize
        return refill_mark(self._slot_rule, ahead, leases=self._lease is not None)

    def _admitter(
        self, refused: list[int], ahead: int, *, filling: bool = False
    ) -> Callable[[dict[str, object]], bool]:
        """Admits a due delivery while its destination has fewer claimed and not yet sent
        than ``claim_room`` gives it (``ahead`` times its share, and without leases ``ahead``
        for each slot it may borrow) and, for a destination that last ran into its deadline,
        while it has fewer than its share (nothing claimed ahead) and all such destinations
        together hold fewer than ``SlotRule.failing_limit`` (all slots but one); unless
        ``filling`` (the step goes on after a full claim), only for a destination that held
        no more than its ``refill_mark`` as the claim began (without leases, a round at a
        time); counts those it admits, and in ``refused[0]`` those it turns away (called in
        order on the store's thread). With leases (PostgreSQL) a destination claims ahead only
        for its share, so that a delivery claimed ahead is still sent within
        ``AHEAD_DEADLINES`` (a borrowed slot is not guaranteed): ``claim_room``."""
        busy = Counter(self._busy)
        held = dict(busy)  # at the claim's start, for the refill mark
        failing = frozenset(self._failing)
        failing_busy = [sum(busy[key] for key in failing)]
        rule = self._slot_rule
        cap, _ = claim_room(rule, ahead, leases=self._lease is not None)
        mark = cap if filling else refill_mark(rule, ahead, leases=self._lease is not None)

        def admit(action: dict[str, object]) -> bool:
            key = sender_key(action)
            limit = rule.share if key in failing else cap
            if busy[key] >= limit or held.get(key, 0) > mark:
                refused[0] += 1
                return False
            if key in failing:
                if failing_busy[0] >= rule.failing_limit:
                    refused[0] += 1
                    return False
                failing_busy[0] += 1
            busy[key] += 1
            return True

        return admit

    async def _requeue_unrecorded(self) -> None:
        now = self._clock()
        for delivery in list(self._unrecorded.values()):
            await self._store.call(
                lambda s, d=delivery: s.mark_retry(  # type: ignore[misc] # bound per delivery
                    d.id,
                    now,
                    "the outcome of an attempt could not be recorded",
                    d.done_recipients,
                    now,
                )
            )
            del self._unrecorded[delivery.id]
            log.warning("delivery %d requeued: its last outcome was not recorded", delivery.id)

    def _finished(self, task: asyncio.Task[None]) -> None:
        """A delivery ended. It wakes the worker only if that can change what a step does:
        the last step filled its room, or its claim under way turns out to take all it asked
        for (now there is more: ``_claimed_meanwhile``), no other delivery is held (the step
        sees whether all is settled), or an outcome was not recorded (the step requeues it).
        Otherwise the last step counted this delivery and still claimed all that was due and
        admitted: the end of its send (``_past_send``) freed its destination's room and woke
        the worker if that brought it down to its refill mark, and a retry's due time wakes
        the worker when it is recorded (``_retry_or_bury``), so a step now would claim
        nothing."""
        self._inflight.pop(task, None)
        self._past_send(task)
        if not self._inflight or self._unrecorded:
            self._wake.set()
        elif self._claiming:
            self._ended_meanwhile = True
        elif not self._room_left:
            self._wake.set()

    def _past_send(self, task: asyncio.Task[None] | None) -> None:
        """The delivery of ``task`` no longer counts against its destination's cap (its send
        ended, or it never got that far); once the destination is down to its refill mark
        (``_mark``), the next step may claim more for it, so this wakes the worker (during a
        claim, once it is back: ``_claimed_meanwhile``)."""
        key = None if task is None else self._ahead_of.pop(task, None)
        if key is not None:
            self._busy[key] -= 1
            left = self._busy[key]
            if left <= 0:
                del self._busy[key]
            if left > self._mark(key, self._ahead()):
                return
            if self._claiming:  # the claim under way may refill it: looked at once it is back
                self._refills.add(key)
            else:
                self._wake.set()

    def _claimed_meanwhile(self, *, filled: bool) -> None:
        """The claim is back (or failed): the deliveries that ended while it was under way
        wake the worker now if it took all it asked for (``filled``: the room they freed is
        more), and a destination whose send ended meanwhile wakes it if it is still down to
        its refill mark. Otherwise a step would only find them at their mark or above and
        the room taken, and claim nothing."""
        self._claiming = False
        ahead = self._ahead()
        refill = any(self._busy.get(key, 0) <= self._mark(key, ahead) for key in self._refills)
        if refill or (filled and self._ended_meanwhile):
            self._wake.set()
        self._refills.clear()
        self._ended_meanwhile = False

    async def _idle(
        self,
        *,
        waiting: bool = False,
        within: float | None = None,
        known: bool = False,
        next_due: float | None = None,
    ) -> None:
        """Wait for a wake-up or the next due time. ``waiting``: deliveries due now were
        turned away for room; if the sends that held it ended meanwhile, the wake-up they
        gave makes the next step claim them, and nothing is settled yet. ``within``: step
        again after at most this many seconds (a claim that did not look past a refusal).
        ``known``: the worker has as many deliveries as it may hold, so there is no room
        until one of them ends (which wakes it): no look at the due times. Otherwise
        ``next_due``: the next due time after the claim just made, read with it
        (``claim_and_look_ahead``); anything that changes it later (a retry recorded, an
        intake accepted) wakes the worker."""
        if known:
            if self._inflight:
                timeout = IDLE_POLL_SECONDS if within is None else within
                await self._wait_for_wake(timeout)
                return
            next_due = await self._store.call(lambda s: s.next_due_at(None))
        if next_due is None and not self._inflight and not waiting:
            self._settled.set()
        timeout = IDLE_POLL_SECONDS
        if next_due is not None:
            timeout = min(max(next_due - self._clock(), 0.0), IDLE_POLL_SECONDS)
        if within is not None:
            timeout = min(timeout, within) if timeout > 0 else within
        if timeout <= 0 and len(self._inflight) < self._concurrency:
            return
        await self._wait_for_wake(timeout or IDLE_POLL_SECONDS)

    async def _wait_for_wake(self, seconds: float) -> None:
        """Until woken, at most ``seconds`` (a timer on this task: no task of its own
        for the wait, as ``asyncio.wait_for`` would make)."""
        if self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _observe(self, delivery: ClaimedDelivery, outcome: str) -> None:
        claimed_at = self._claimed_at.pop(delivery.id, None)
        if self._observer is not None and claimed_at is not None:
            self._observer(delivery.channel, outcome, time.monotonic() - claimed_at)

    async def _attempt(self, delivery: ClaimedDelivery, context: Context) -> None:
        self._claimed_at[delivery.id] = time.monotonic()
        try:
            await self._send_and_record(delivery, context)
        except Exception:
            # Recording the outcome failed: requeued by the next step (at least once, never
            # lost); a crash before that leaves it 'sending', which a restart requeues.
            log.exception("delivery %d: could not record the outcome", delivery.id)
            self._unrecorded[delivery.id] = delivery
        finally:
            self._claimed_at.pop(delivery.id, None)
        async with self._progress:
            self.finished_attempts += 1
            self._progress.notify_all()

    def _action(self, delivery: ClaimedDelivery) -> Action:
        """The delivery's action, validated once per distinct stored action (the same few
        rules plan them all; validating one checks every address in it)."""
        key = json.dumps(delivery.action, sort_keys=True)
        action = self._actions.get(key)
        if action is None:
            if len(self._actions) >= ACTIONS_KEPT:
                self._actions.clear()
            action = self._actions[key] = _ACTION.validate_python(delivery.action)
        return action

    async def _render(
        self, snapshot: Snapshot, delivery: ClaimedDelivery, context: Context, *, flat: bool
    ) -> Content:
        """The content to send; a lead's email carries its links, its Slack post its buttons.
        ``flat``: the sender sends an email's bytes, so the render helper flattens it."""
        action = self._action(delivery)
        lead_id = await self._lead_id(snapshot, delivery, action)
        content = await self._render_content(
            snapshot, delivery, action, lead_id, context, flat=flat
        )
        # Buttons only where Slack's presses can be verified (a signing secret is set).
        signing = snapshot.settings.slack.signing_secret is not None
        if lead_id is not None and signing and isinstance(content, SlackContent):
            content = with_buttons(content, lead_id, snapshot.settings.render.locale)
        return content

    async def _render_content(
        self,
        snapshot: Snapshot,
        delivery: ClaimedDelivery,
        action: Action,
        lead_id: int | None,
        context: Context,
        *,
        flat: bool = False,
    ) -> Content:
        """Emails and Slack messages in the render pool when there is one; everything else
        in a thread, never on the event loop (a large conversation would stall intake)."""
        pool = self._render_pool
        follow_up = None
        if lead_id is not None and isinstance(action, EmailAction | TeamsAction):
            settings = snapshot.settings.follow_up
            follow_up = links_for(settings, snapshot.link_key, lead_id, delivery.created_at)
        if not isinstance(action, EmailAction | SlackAction):
            return await asyncio.to_thread(render_delivery, snapshot, delivery, follow_up=follow_up)
        # Returning-visitor context and sent Message-IDs: read with the claim, not here.
        earlier, references = context.earlier, context.references
        if pool is None:
            return await asyncio.to_thread(
                render_delivery, snapshot, delivery, earlier, follow_up, references=references
            )
        from_address = snapshot.from_address(action)
        if snapshot is not self._rendered_snapshot:
            self._rendered_snapshot = snapshot
            self._render_generation += 1
        job = RenderJob(
            snapshot.settings.render,
            from_address,
            delivery.raw,
            delivery.category,
            action,
            message_id(delivery.dedupe_key, from_address),
            self._render_generation,
            rule=delivery.rule,
            delivery_id=delivery.id,
            earlier=earlier,
            follow_up=follow_up,
            references=references,
            flat=flat,
        )
        try:
            return await pool.render(job)
        except PoolUnavailable:
            return await asyncio.to_thread(
                render_delivery, snapshot, delivery, earlier, follow_up, references=references
            )

    async def _lead_id(
        self, snapshot: Snapshot, delivery: ClaimedDelivery, action: Action
    ) -> int | None:
        """The lead an email, Slack post or Teams card is about, when follow-up is on: emails
        carry its claim and done links, Slack posts its Claim and Done buttons, Teams cards a
        claim button."""
        if not isinstance(action, EmailAction | SlackAction | TeamsAction):
            return None
        if not snapshot.link_key:
            return None
        lead = await self._store.call(lambda s: s.lead_for_conversation(delivery.conversation_id))
        return None if lead is None else lead.id

    async def _send_and_record(self, delivery: ClaimedDelivery, context: Context) -> None:
        snapshot = self._snapshot()
        key = sender_key(delivery.action)
        sender = snapshot.senders.get(key)
        try:
            content, result = await self._render_and_send(snapshot, sender, key, delivery, context)
        except TransientDeliveryError as exc:
            await self._retry_or_bury(delivery, exc)
        except PermanentDeliveryError as exc:
            await self._bury(delivery, exc.message, exc.done)
        except DeliveryError as exc:
            await self._retry_or_bury(delivery, TransientDeliveryError(exc.message, done=exc.done))
        except Exception as exc:
            log.exception("delivery %d: unexpected sender failure", delivery.id)
            await self._retry_or_bury(delivery, TransientDeliveryError(repr(exc)))
        else:
            sent_to = "outbox" if isinstance(sender, OutboxSender) else None
            ref = result.external_ref if isinstance(result, SendResult) else None
            if ref is not None:  # first: a crash before mark_sent retries with this id
                await self._outcomes.write(lambda s: s.record_external_ref(delivery.id, ref))
            skipped = result.skipped if isinstance(result, SendResult) else None
            sent_to = "skipped" if skipped else sent_to
            # An email really sent keeps its Message-ID: later emails about the visitor
            # reference it (In-Reply-To, References); an outbox file or a skip is no email.
            sent_id = None
            if sent_to is None and isinstance(content, EmailContent):
                sent_id = content.message_id or None
            await self._outcomes.write(
                lambda s: s.mark_sent(
                    delivery.id, self._clock(), sent_to=sent_to, message_id=sent_id
                )
            )
            if skipped:  # after mark_sent, which clears the last error
                await self._outcomes.write(
                    lambda s: s.record_external_ref(delivery.id, None, skipped)
                )
            self._observe(delivery, "outbox" if sent_to == "outbox" else "sent")
            log.info(
                "delivery %d %s: channel=%s rule=%s attempt=%d",
                delivery.id,
                skipped or ("written to the outbox, not sent" if sent_to else "sent"),
                delivery.channel,
                delivery.rule,
                delivery.attempts,
            )

    async def _render_and_send(
        self,
        snapshot: Snapshot,
        sender: Sender | None,
        key: str,
        delivery: ClaimedDelivery,
        context: Context,
    ) -> tuple[Content, SendResult | None]:
        """Render the delivery, then send it holding a connection slot of its destination:
        only the send holds one; rendering, and recording the outcome afterwards, do not, so
        the next delivery, rendered meanwhile, takes the slot as soon as the send ends."""
        try:
            if sender is None:
                raise PermanentDeliveryError(f"no sender configured for {key!r}")
            try:
                flat = getattr(sender, "sends_flat_email", False)
                content = await self._render(snapshot, delivery, context, flat=flat)
            except Exception as exc:
                log.exception("delivery %d: rendering failed", delivery.id)
                raise PermanentDeliveryError(f"rendering failed: {exc}") from exc
            if isinstance(content, CrmContent):  # the object an earlier delivery created
                known = await self._store.call(lambda s: s.known_external_ref(delivery.id))
                content = replace(content, known_ref=known)
            async with self._send_slots.slot(key):
                task = asyncio.current_task()
                self._in_send.add(task)  # a stop now gives it the grace period
                # The destination counts as failing, or no longer, before the slot goes back:
                # the slot rule decides who takes it by the send that just ended.
                try:
                    result = await send_within_deadline(
                        sender, content, delivery_id=delivery.id, skip=delivery.done_recipients
                    )
                except DeliveryTimeout:
                    self._failing.add(key)
                    raise
                finally:
                    self._in_send.discard(task)
                self._failing.discard(key)
                return content, result
        finally:
            self._past_send(asyncio.current_task())

    async def _retry_or_bury(self, delivery: ClaimedDelivery, exc: TransientDeliveryError) -> None:
        done = (*delivery.done_recipients, *exc.done)
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        now = self._clock()
        decision = decide(
            self._policy,
            attempts=delivery.attempts,
            created_at=delivery.created_at,
            now=now,
            jitter=self._jitter(),
            retry_after=retry_after,
        )
        if isinstance(decision, GiveUp):
            await self._bury(delivery, f"{exc.message} ({decision.reason})", done)
            return
        await self._outcomes.write(
            lambda s: s.mark_retry(delivery.id, decision.at, exc.message, done, now)
        )
        self._wake.set()  # a new due time, which the next step's look ahead reads
        self._observe(delivery, "retry")
        log.warning(
            "delivery %d failed (attempt %d), retry in %.1f s: %s",
            delivery.id,
            delivery.attempts,
            decision.delay,
            exc.message,
        )

    async def _bury(self, delivery: ClaimedDelivery, error: str, done: tuple[str, ...]) -> None:
        all_done = (*delivery.done_recipients, *done)
        await self._outcomes.write(
            lambda s: s.mark_dead(delivery.id, error, all_done, self._clock())
        )
        self._observe(delivery, "dead")
        log.error(
            "delivery %d is dead after %d attempts: %s", delivery.id, delivery.attempts, error
        )
