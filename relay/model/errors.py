"""The relay's exception tree.

    RelayError
    ├── ConfigError                  settings or templates are unusable (ValueError)
    ├── PayloadError                 a hook body cannot be accepted (ValueError)
    │   └── PayloadTooLarge
    ├── StoreError                   the state directory or database cannot be used as it is
    │   ├── StoreVersionError        written by a newer relay (schema version too high)
    │   └── StateDirInUse            another relay process serves the same state directory
    └── DeliveryError                a sender could not deliver
        ├── TransientDeliveryError   worth retrying later
        │   ├── DeliveryTimeout      (also TimeoutError)
        │   ├── DeliveryConnectionError  (also ConnectionError)
        │   └── RateLimited          carries the server's Retry-After
        └── PermanentDeliveryError   retrying cannot help (bad address, auth, 5xx)

Senders raise only DeliveryError subclasses; the worker turns them into retry
decisions. A sender that delivered to some recipients but not others raises with
``done`` naming who already has the message, so a retry skips them.
"""

from __future__ import annotations

from collections.abc import Iterable

from relay.model.urls import redact_text


class RelayError(Exception):
    """Base class of every error the relay raises on purpose."""


class ConfigError(RelayError, ValueError):
    """Settings, rules or templates are invalid; the message names the key."""


class PayloadError(RelayError, ValueError):
    """A hook body was refused. ``reason`` is a stable machine-readable code."""

    status_code = 400

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class PayloadTooLarge(PayloadError):
    status_code = 413

    def __init__(self, limit: int) -> None:
        super().__init__("body_too_large", f"request body exceeds the limit of {limit} bytes")
        self.limit = limit


class StoreError(RelayError):
    """The store or its state directory cannot be used: damaged, deleted or replaced while
    open, from a newer relay, or in use by another relay. The message names the path."""


class StoreVersionError(StoreError):
    pass


class StateDirInUse(StoreError):
    pass


class DeliveryError(RelayError):
    """A delivery attempt failed. ``done`` lists recipients that did get it. The message is
    logged and stored as the delivery's last error, so credentials in URLs are masked."""

    def __init__(self, message: str, *, done: Iterable[str] = ()) -> None:
        message = redact_text(message)
        super().__init__(message)
        self.message = message
        self.done = tuple(done)


class TransientDeliveryError(DeliveryError):
    """The destination may accept the same delivery later."""


class DeliveryTimeout(TransientDeliveryError, TimeoutError):
    pass


class DeliveryConnectionError(TransientDeliveryError, ConnectionError):
    pass


class RateLimited(TransientDeliveryError):
    def __init__(self, message: str, *, retry_after: float, done: Iterable[str] = ()) -> None:
        super().__init__(message, done=done)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """The destination refused the delivery for good."""
