"""Frozen rows the store hands out and takes in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from relay.leads.model import LeadFacts
from relay.routing.rules import PlannedDelivery


@dataclass(frozen=True)
class Intake:
    """Everything the request path wants stored for one accepted body."""

    raw: bytes
    conv_key: str
    account_id: int
    channel_id: int
    content_hash: str
    category: str
    planned: tuple[PlannedDelivery, ...]
    dropped: bool = False  # no rule matched and the fallback is "drop" (for the log line)
    lead: LeadFacts | None = None  # stored in the same transaction (relay.store.leads)
    # The body's beginAt in Unix seconds (``begin_seconds``), kept beside the body so a
    # returning visitor's history reads no stored body; None: read from the body instead,
    # by SQLite's INSERT (queries.BEGIN_OF) or by PostgreSQL's history.
    begin_at: float | None = None


def begin_seconds(begin_at_ms: int | None) -> float | None:
    """A beginAt (milliseconds) in Unix seconds exactly as the stores compute it from a stored
    body (the number as a double, divided by 1000.0), so the column and the body agree. None
    for an integer no double holds (JSON's integers have no limit): the body is read then."""
    if begin_at_ms is None:
        return None
    try:
        return float(begin_at_ms) / 1000.0
    except OverflowError:
        return None


@dataclass(frozen=True)
class Accepted:
    conversation_id: int
    version: int
    duplicate: bool
    deliveries: int


@dataclass(frozen=True)
class ClaimedDelivery:
    id: int
    conversation_id: int
    rule: str
    channel: str
    action: dict[str, Any]
    category: str
    attempts: int  # including the one now starting
    created_at: float
    dedupe_key: str
    done_recipients: tuple[str, ...]
    raw: bytes


@dataclass(frozen=True)
class DeliveryRow:
    id: int
    conversation_id: int
    conv_key: str
    rule: str
    channel: str
    status: str
    attempts: int
    created_at: float
    next_attempt_at: float
    updated_at: float
    last_error: str | None
    sent_to: str | None = None  # 'outbox': written to the local outbox, not really sent
    destination: str | None = None  # the action's named destination ([destinations.*])

    @property
    def where(self) -> str:
        """The channel and, if the action names one, its destination: "email: billing"."""
        return self.channel if self.destination is None else f"{self.channel}: {self.destination}"


@dataclass(frozen=True)
class QuarantineRow:
    id: int
    received_at: float
    reason: str
    message: str
    remote: str | None
    size: int
    body: bytes


@dataclass(frozen=True)
class AuditRow:
    """One operator action: who did what to what, when."""

    id: int
    at: float
    actor: str
    action: str
    target: str
    detail: str


@dataclass(frozen=True)
class ConversationRow:
    """A stored conversation version as the console lists it."""

    id: int
    conv_key: str
    version: int
    category: str
    received_at: float
    visitor_name: str | None
    visitor_email: str | None


@dataclass(frozen=True)
class DestinationHealth:
    """One destination's deliveries since a time (a channel and its named destination, None
    for the channel's default): how many, their attempts, the failed ones, and the newest
    error (None if none)."""

    channel: str
    destination: str | None
    deliveries: int
    attempts: int
    failed_attempts: int
    last_error: str | None = None
    last_error_at: float | None = None

    @property
    def where(self) -> str:
        return self.channel if self.destination is None else f"{self.channel}: {self.destination}"

    @property
    def failure_rate(self) -> float:
        return self.failed_attempts / self.attempts if self.attempts else 0.0
