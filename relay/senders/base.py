"""The one method every sender has, and reading a Retry-After answer."""

from __future__ import annotations

import math
import time
from email.utils import parsedate_to_datetime
from typing import Protocol

from relay.model.content import Content


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


class Sender(Protocol):
    """Deliver ``content`` or raise a ``relay.model.errors.DeliveryError`` subclass.

    ``skip`` lists recipients that already received this delivery in an earlier attempt.
    ``delivery_id`` is stable across attempts, so a sender may use it to stay idempotent.
    ``deadline_seconds`` bounds one whole ``send`` (the worker cancels it then and counts a
    transient failure); None for local files, which have no remote end to wait for.
    """

    @property
    def deadline_seconds(self) -> float | None: ...

    async def send(
        self, content: Content, *, delivery_id: int, skip: tuple[str, ...] = ()
    ) -> None: ...
