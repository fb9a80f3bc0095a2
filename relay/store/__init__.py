"""The durable store: conversations, their planned deliveries (the outbox) and quarantined
bodies in one SQLite file. Every SQL statement of the relay lives in this package."""

from __future__ import annotations

from relay.store.base import ACTIVE, COUNTED, SCHEMA, STATUSES, connect
from relay.store.deliveries import DeliveryOps
from relay.store.intake import IntakeOps
from relay.store.leads import LeadOps
from relay.store.operator import RETRYABLE, OperatorOps
from relay.store.records import (
    Accepted,
    ClaimedDelivery,
    DeliveryRow,
    Intake,
    QuarantineRow,
)

__all__ = [
    "ACTIVE",
    "COUNTED",
    "RETRYABLE",
    "SCHEMA",
    "STATUSES",
    "Accepted",
    "ClaimedDelivery",
    "DeliveryRow",
    "Intake",
    "QuarantineRow",
    "Store",
    "connect",
]


class Store(IntakeOps, DeliveryOps, OperatorOps, LeadOps):
    """Intent-named operations over one connection: intake (``IntakeOps``), the worker's
    queue (``DeliveryOps``), operator tools (``OperatorOps``) and leads (``LeadOps``). Not
    thread-safe."""
