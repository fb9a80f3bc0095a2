"""The durable store: conversations, planned deliveries, quarantined bodies; SQL in queries.py."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.store.base import ACTIVE, COUNTED, SCHEMA, STATUSES, connect
from relay.store.console import ConsoleOps
from relay.store.deliveries import DeliveryOps
from relay.store.intake import IntakeOps
from relay.store.leads import LeadOps
from relay.store.operator import RETRYABLE, OperatorOps
from relay.store.protocol import StoreProtocol
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
    "StoreProtocol",
    "connect",
]


class Store(IntakeOps, DeliveryOps, OperatorOps, LeadOps, ConsoleOps):
    """Intent-named operations over one connection: intake (``IntakeOps``), the worker's
    queue (``DeliveryOps``), operator tools (``OperatorOps``), leads (``LeadOps``) and the
    console (``ConsoleOps``). Not thread-safe."""


if TYPE_CHECKING:  # the SQLite store offers every operation of the protocol
    _CHECKED: type[StoreProtocol] = Store
