"""The one method every sender has, what it reports back, and reading a Retry-After answer."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Protocol

from relay.model.content import Content
from relay.model.errors import DeliveryTimeout

# The total deadline of a webhook call whose action names no destination (its own URL); here,
# not in relay.senders.webhook, so it is known without importing that module's HTTP client.
WEBHOOK_TIMEOUT_SECONDS = 10.0


def retry_after_seconds(
    value: str | None, now: float | None = None, *, default: float = 1.0
) -> float:
    """Seconds to wait from an HTTP Retry-After value: delta-seconds or an HTTP date (RFC 9110);
    ``default`` when it is missing or makes no sense ("soon", "nan", "inf")."""
    if value is None or not value.strip():
        return default
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:  # "nan", "inf" and "1e999" parse as floats but are no delay
        return max(seconds, 0.0) if math.isfinite(seconds) else default
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return default
    now = time.time() if now is None else now
    return max(when.timestamp() - now, 0.0)


@dataclass(frozen=True)
class SendResult:
    """What a sender reports back: the id of the object it created or updated (stored with
    the delivery), or why it did nothing at all (``skipped``, shown by `relay queue`)."""

    external_ref: str | None = None
    skipped: str | None = None


class Sender(Protocol):
    """Deliver ``content`` or raise a ``relay.model.errors.DeliveryError`` subclass.

    ``skip`` lists recipients that already received this delivery in an earlier attempt.
    ``delivery_id`` is stable across attempts, so a sender may use it to stay idempotent.
    ``deadline_seconds`` bounds one whole ``send`` (the worker cancels it then and counts a
    transient failure); None for local files, which have no remote end to wait for.
    A CRM sender returns a ``SendResult``: the id of what it created (the worker stores it
    with the delivery and hands it back as ``CrmContent.known_ref`` to the next delivery of
    the same conversation and action), or why it skipped; every other sender returns None.
    """

    @property
    def deadline_seconds(self) -> float | None: ...

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> SendResult | None: ...


async def send_within_deadline(
    sender: Sender, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
) -> SendResult | None:
    """``sender.send`` within the sender's deadline: past it the send is cancelled
    (connections closed) and raises ``DeliveryTimeout``, however the destination dribbles or
    stalls. The worker's, the daily digest's and ``relay send-test``'s Graph and Teams sends
    go through here: the SMTP transaction has no timeout of its own per reply
    (``relay.senders.smtp.sendmail``)."""
    deadline = sender.deadline_seconds
    if deadline is None:
        return await sender.send(content, delivery_id=delivery_id, skip=skip)
    scope = asyncio.timeout(deadline)
    try:
        async with scope:
            return await sender.send(content, delivery_id=delivery_id, skip=skip)
    except TimeoutError:
        if not scope.expired():
            raise  # the sender's own timeout, sorted like any other sender failure
        message = f"no complete answer within the {deadline:g} s deadline"
        raise DeliveryTimeout(message) from None
