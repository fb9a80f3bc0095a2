"""The follow-up pass the relay runs every half minute: escalate leads left open too long
(planned as deliveries, so the worker sends and retries them) and send the daily digest.
Everything is decided from stored timestamps and ``clock()``; nothing sleeps to decide."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo

from relay.intake.payload import parse
from relay.leads import schedule
from relay.leads.links import links_for
from relay.leads.model import Lead
from relay.leads.settings import FollowUpSettings
from relay.leads.texts import text
from relay.model.content import EmailContent
from relay.model.errors import DeliveryError
from relay.routing.rules import EmailAction, PlannedDelivery, SlackAction
from relay.senders.base import send_within_deadline
from relay.snapshot import Snapshot
from relay.store.storethread import StoreThread

log = logging.getLogger(__name__)

PASS_SECONDS = 30.0


def escalation_plan(
    settings: FollowUpSettings, step: int, locale: str
) -> tuple[PlannedDelivery, ...]:
    """The deliveries of escalation ``step``: one email to the addresses, one Slack post per
    channel; the worker adds the lead's links and buttons as to any message about a lead."""
    rule = f"follow-up-escalation-{step}"
    emails = [target for target in settings.escalate_to if not target.startswith("#")]
    channels = [target for target in settings.escalate_to if target.startswith("#")]
    prefix = text(locale, "escalated").replace("{", "(").replace("}", ")")
    planned = []
    if emails:
        subject = f"[{prefix}] {{{{ view.category_label }}}}: {{{{ view.visitor_name }}}}"
        action = EmailAction(type="email", to=emails, subject=subject)
        planned.append(PlannedDelivery(rule, action))
    planned.extend(
        PlannedDelivery(rule, SlackAction(type="slack", channel=channel)) for channel in channels
    )
    return tuple(planned)


@dataclass(frozen=True)
class PassResult:
    escalated: tuple[tuple[int, int], ...] = ()  # (lead id, step) planned by this pass
    digest: date | None = None  # the day whose digest this pass sent


class FollowUpScheduler:
    def __init__(
        self,
        store: StoreThread,
        snapshot: Callable[[], Snapshot],
        *,
        clock: Callable[[], float] = time.time,
        wake: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._snapshot = snapshot
        self._clock = clock
        self._wake = wake
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # The digest that could not be made, and the snapshot it failed with: a reload (a new
        # snapshot) or a digest made starts over.
        self._backoff: schedule.DigestBackoff | None = None
        self._backoff_snapshot: Snapshot | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="relay-follow-up")

    async def stop(self, grace: float = 5.0) -> None:
        """End the pass loop; a pass still sending after ``grace`` seconds is cancelled (a
        digest not sent is sent by the next start)."""
        self._stop.set()
        if self._task is None:
            return
        done, _ = await asyncio.wait([self._task], timeout=grace)
        if not done:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while not self._stop.is_set():
            try:
                await self.run_once()
            except Exception:
                log.exception("follow-up pass failed; trying again in %g s", PASS_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=PASS_SECONDS)

    async def run_once(self) -> PassResult:
        snapshot = self._snapshot()
        settings = snapshot.settings.follow_up
        if not settings.enabled:
            return PassResult()
        escalated = await self._escalate(snapshot, settings)
        sent = await self._digest(snapshot, settings)
        return PassResult(escalated, sent)

    async def _escalate(
        self, snapshot: Snapshot, settings: FollowUpSettings
    ) -> tuple[tuple[int, int], ...]:
        now = self._clock()
        open_leads = await self._store.call(lambda s: s.leads("open", limit=10_000))
        recorded = await self._store.call(lambda s: s.escalations())
        done: list[tuple[int, int]] = []
        for due in schedule.due_escalations(open_leads, recorded, settings, now):
            planned = escalation_plan(settings, due.step, snapshot.settings.render.locale)
            count = await self._store.call(
                lambda s, d=due, p=planned: s.record_escalation(d.lead, d.step, p, now)  # type: ignore[misc]
            )
            if count is not None:
                done.append((due.lead.id, due.step))
                log.info("lead %d escalated (step %d): %d deliveries", due.lead.id, due.step, count)
        if done and self._wake is not None:
            self._wake()
        return tuple(done)

    def zone(self, snapshot: Snapshot) -> ZoneInfo:
        window = snapshot.settings.follow_up.business_hours
        return window.zone if window is not None else ZoneInfo(snapshot.settings.render.timezone)

    async def _digest(self, snapshot: Snapshot, settings: FollowUpSettings) -> date | None:
        now = self._clock()
        zone = self.zone(snapshot)
        sent = await self._store.call(lambda s: s.digest_days())
        day = schedule.digest_due(settings, zone, now, sent)
        if day is None:
            return None
        if self._backoff_snapshot is not snapshot:
            self._backoff, self._backoff_snapshot = None, None
        if not schedule.digest_retry_due(self._backoff, day, now):
            return None
        key = day.isoformat()
        if not await self._store.call(lambda s: s.take_digest_day(key, now)):
            return None  # another relay took it
        made = False
        try:
            content = await self.digest_email(snapshot, day, now)
            made = True
            sender = snapshot.senders["email"]
            # Bounded by the sender's deadline, as the worker's sends are.
            await send_within_deadline(sender, content, delivery_id=0)
        except (DeliveryError, OSError, TimeoutError) as exc:
            if made:
                self._backoff = None
            log.warning("the follow-up digest of %s could not be sent (%s); trying again", key, exc)
            await self._store.call(lambda s: s.release_digest_day(key))
            return None
        except asyncio.CancelledError:
            await asyncio.shield(self._store.call(lambda s: s.release_digest_day(key)))
            raise
        except Exception as exc:  # an overridden template that fails on this day's data
            backoff = schedule.digest_failed(self._backoff, day, now)
            self._backoff, self._backoff_snapshot = backoff, snapshot
            times = f", {backoff.failures} times in a row" if backoff.failures > 1 else ""
            log.error(
                "the follow-up digest of %s could not be %s (%s: %s)%s; trying again in %g s",
                key, "sent" if made else "made", type(exc).__name__, exc, times, backoff.delay,
            )  # fmt: skip
            await self._store.call(lambda s: s.release_digest_day(key))
            return None
        self._backoff = None
        log.info("follow-up digest of %s sent to %d recipients", key, len(settings.digest_to))
        return day

    async def digest_email(self, snapshot: Snapshot, day: date, now: float) -> EmailContent:
        # The digest's email, header and template modules, only where a digest is sent.
        from relay.leads import digest  # noqa: PLC0415
        from relay.render.environment import email_environment  # noqa: PLC0415

        settings = snapshot.settings
        zone = self.zone(snapshot)
        start, end = schedule.day_bounds(date.fromordinal(day.toordinal() - 1), zone)
        open_leads: list[Lead] = await self._store.call(lambda s: s.leads("open", limit=10_000))
        rows = await self._store.call(lambda s: s.day_conversations(start, end))
        created = await self._store.call(lambda s: s.leads_between(start, end))
        key = snapshot.link_key
        with_links = [
            (
                lead,
                found.claim_url
                if (found := links_for(settings.follow_up, key, lead.id, now))
                else None,
            )
            for lead in open_leads
        ]
        low = []
        for _, _, raw in rows:
            if raw is not None:
                with contextlib.suppress(Exception):
                    low.append(parse(raw))
        figures = schedule.day_figures([(c, at) for c, at, _ in rows], created, zone)
        data = digest.DigestInput(day, now, with_links, figures, low)
        view = digest.build_view(data, settings.render.locale, ZoneInfo(settings.render.timezone))
        digest_id = hashlib.sha256(f"digest/{day.isoformat()}".encode()).hexdigest()[:32]
        domain = settings.smtp.from_address.rpartition("@")[2].rstrip(">") or "relay.invalid"
        return digest.render(
            view,
            email_environment(settings.render.templates_dir),
            from_address=settings.smtp.from_address,
            to=settings.follow_up.digest_to,
            message_id=f"<{digest_id}@{domain}>",
            now=now,
        )
