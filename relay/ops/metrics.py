"""The relay's own Prometheus metrics, kept in one registry per app and exported at /metrics."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

from relay.model.category import Category
from relay.routing.rules import ACTION_TYPES
from relay.store import COUNTED

# "outbox": written to <state_dir>/outbox/ because no destination is configured, not sent.
OUTCOMES = ("sent", "outbox", "retry", "dead")
# Refusals the HTTP layer knows by name; payload reasons appear as they first happen.
KNOWN_REJECTIONS = (
    "forbidden_address",
    "wrong_token",
    "invalid_json",
    "invalid_utf8",
    "body_too_large",
)
SEND_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Counters moved by the request path and the worker, gauges set from the store per scrape.

    A registry of its own (not prometheus_client's global one) lets several apps live in one
    process without their counters colliding.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.conversations = Counter(
            "relay_conversations_received",
            "Hook bodies accepted and stored, by category; duplicate=true for exact re-posts.",
            ["category", "duplicate"],
            registry=self.registry,
        )
        self.rejections = Counter(
            "relay_conversations_rejected",
            "Hook calls refused, by reason (invalid body, wrong token, address not allowed...).",
            ["reason"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "relay_deliveries",
            "Delivery attempts by channel and outcome: sent, outbox (written to the local outbox"
            " because no destination is configured), retry (will try again), dead.",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "relay_delivery_send_duration_seconds",
            "Time per delivery attempt, from claiming it to recording its outcome, by channel.",
            ["channel"],
            buckets=SEND_BUCKETS,
            registry=self.registry,
        )
        self.queue = Gauge(
            "relay_delivery_queue_depth",
            "Deliveries in the store by status, counted when scraped; status=outbox: written to"
            " the local outbox instead of sent.",
            ["status"],
            registry=self.registry,
        )
        self.oldest_age = Gauge(
            "relay_oldest_pending_delivery_age_seconds",
            "Age of the oldest delivery not yet sent or dead (pending, retrying or sending); "
            "0 when there is none.",
            registry=self.registry,
        )
        self.leases = Gauge(
            "relay_delivery_leases",
            "PostgreSQL store: deliveries being sent, by lease, counted when scraped;"
            " holder=expired: held by a relay that stopped, taken by the next claim.",
            ["holder"],
            registry=self.registry,
        )
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """Create the expected series at 0 so rates and alerts see the first event."""
        for category in Category:
            for duplicate in ("false", "true"):
                self.conversations.labels(category.value, duplicate)
        for reason in KNOWN_REJECTIONS:
            self.rejections.labels(reason)
        for channel in ACTION_TYPES:
            self.send_seconds.labels(channel)
            for outcome in OUTCOMES:
                self.deliveries.labels(channel, outcome)
        self.set_queue({status: 0 for status in COUNTED}, 0.0)

    def received(self, category: str, *, duplicate: bool) -> None:
        self.conversations.labels(category, "true" if duplicate else "false").inc()

    def rejected(self, reason: str) -> None:
        self.rejections.labels(reason).inc()

    def delivery(self, channel: str, outcome: str, seconds: float) -> None:
        """One attempt's outcome (``sent``, ``outbox``, ``retry`` or ``dead``) and how long it
        took."""
        self.deliveries.labels(channel, outcome).inc()
        self.send_seconds.labels(channel).observe(seconds)

    def set_queue(self, counts: Mapping[str, int], oldest_age: float) -> None:
        for status, count in counts.items():
            self.queue.labels(status).set(count)
        self.oldest_age.set(oldest_age)

    def set_leases(self, counts: Mapping[str, int]) -> None:
        for holder, count in counts.items():
            self.leases.labels(holder).set(count)

    def exposition(self, extra: Iterable[CollectorRegistry] = (REGISTRY,)) -> bytes:
        """The Prometheus text format of the relay's metrics, then of ``extra`` registries
        (by default the process-wide one: process and Python runtime metrics, and the HTTP
        request metrics of Litestar's Prometheus middleware)."""
        return b"".join([generate_latest(self.registry), *map(generate_latest, extra)])
