"""When to escalate a lead and when the daily digest is due: pure functions of stored
timestamps, the settings and a clock value (the worker supplies ``now``)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo

from relay.leads.model import Lead, LeadState
from relay.leads.settings import FollowUpSettings
from relay.routing.matchers import in_window
from relay.routing.rules import TimeWindow

MINUTE = 60.0


def in_business(window: TimeWindow | None, at: float) -> bool:
    """Business time: inside the window (outside it for a "mute" window); always without."""
    if window is None:
        return True
    inside = in_window(window, at)
    return not inside if window.mode == "mute" else inside


def business_due_at(
    start: float, seconds: float, window: TimeWindow | None, until: float
) -> float | None:
    """The moment ``seconds`` of business time have passed since ``start``, or None if that
    is later than ``until``. Windows are in whole minutes, so minutes are walked."""
    if window is None:
        due = start + seconds
        return due if due <= until else None
    left, moment = seconds, start
    while moment < until:
        edge = min((math.floor(moment / MINUTE) + 1) * MINUTE, until)
        if in_business(window, moment):
            if edge - moment >= left:
                return moment + left
            left -= edge - moment
        moment = edge
    return None


@dataclass(frozen=True)
class Escalation:
    lead: Lead
    step: int  # 1: the first escalation, 2: the second


def due_escalations(
    leads: Iterable[Lead],
    escalated: set[tuple[int, int]],
    settings: FollowUpSettings,
    now: float,
) -> list[Escalation]:
    """Escalations to send now: open leads only (none after a claim), only in business
    time, each (lead, step) once (``escalated``: those already recorded in the store)."""
    first = settings.escalate_after_seconds
    if not settings.enabled or first is None or not settings.escalate_to:
        return []
    window = settings.business_hours
    if not in_business(window, now):
        return []
    steps = [(1, first)]
    if settings.escalate_again_after_seconds is not None:
        steps.append((2, first + settings.escalate_again_after_seconds))
    due: list[Escalation] = []
    for lead in leads:
        if lead.state is not LeadState.OPEN:
            continue
        # In order: a later step is reached only past the earlier ones already recorded.
        for step, seconds in steps:
            if (lead.id, step) in escalated:
                continue
            if business_due_at(lead.created_at, seconds, window, now) is None:
                break
            due.append(Escalation(lead, step))
            break  # one step per lead and pass
    return due


def local_day(at: float, zone: tzinfo) -> date:
    return datetime.fromtimestamp(at, zone).date()


def day_bounds(day: date, zone: tzinfo) -> tuple[float, float]:
    """The first instant of ``day`` and of the next day in ``zone``, as timestamps."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.timestamp(), end.timestamp()


# A digest that cannot be made (an overridden template failing on the day's data) is tried on
# the next pass, then after twice the delay each time, up to an hour.
DIGEST_RETRY_FIRST_SECONDS = 30.0
DIGEST_RETRY_MAX_SECONDS = 3600.0
# A pass may read the clock a little before the delay is over (it waits its 30 s on another
# clock): a retry that many seconds early is due.
DIGEST_RETRY_EARLY_SECONDS = 1.0


@dataclass(frozen=True)
class DigestBackoff:
    """The digest of ``day`` could not be made ``failures`` times in a row; the next attempt
    is due at ``retry_at``."""

    day: date
    failures: int
    retry_at: float
    delay: float  # retry_at - the last failure


def digest_failed(previous: DigestBackoff | None, day: date, now: float) -> DigestBackoff:
    """After an attempt at ``now`` to make the digest of ``day`` failed: 30 s after the first
    failure, doubling with each further failure for the same day, at most an hour."""
    failures = previous.failures + 1 if previous is not None and previous.day == day else 1
    doublings = min(failures - 1, 16)  # 30 s * 2**7 is beyond the hour already
    delay = min(DIGEST_RETRY_FIRST_SECONDS * 2.0**doublings, DIGEST_RETRY_MAX_SECONDS)
    return DigestBackoff(day, failures, now + delay, delay)


def digest_retry_due(backoff: DigestBackoff | None, day: date, now: float) -> bool:
    """May a pass at ``now`` try to make the digest of ``day``: no failure recorded for that
    day, or its delay is over."""
    if backoff is None or backoff.day != day:
        return True
    return now >= backoff.retry_at - DIGEST_RETRY_EARLY_SECONDS


def digest_due(settings: FollowUpSettings, zone: tzinfo, now: float, sent: set[str]) -> date | None:
    """Today's local date if the digest time has passed today and today's digest is not
    recorded as sent; None otherwise (a missed earlier day is not sent late)."""
    minute = settings.digest_minute
    if not settings.enabled or minute is None or not settings.digest_to:
        return None
    local = datetime.fromtimestamp(now, zone)
    if local.hour * 60 + local.minute < minute or local.date().isoformat() in sent:
        return None
    return local.date()


@dataclass(frozen=True)
class DayFigures:
    """Yesterday in numbers, for the digest."""

    counts: dict[str, int]  # conversations per category
    missed_by_hour: tuple[int, ...]  # 24 counts of missed and offline chats, local hours
    median_claim_seconds: float | None  # over leads created that day and claimed since


def day_figures(
    conversations: Sequence[tuple[str, float]], leads: Sequence[Lead], zone: tzinfo
) -> DayFigures:
    """``conversations``: (category, received_at) of one day; ``leads``: created that day."""
    counts = Counter(category for category, _ in conversations)
    hours = [0] * 24
    for category, at in conversations:
        if category in ("missed", "offline"):
            hours[datetime.fromtimestamp(at, zone).hour] += 1
    import statistics  # noqa: PLC0415 -- for the daily digest only: 0.2 MiB an idle relay spares

    waits = [
        lead.claimed_at - lead.created_at
        for lead in leads
        if lead.claimed_at is not None and lead.claimed_at >= lead.created_at
    ]
    return DayFigures(
        counts=dict(counts),
        missed_by_hour=tuple(hours),
        median_claim_seconds=statistics.median(waits) if waits else None,
    )
