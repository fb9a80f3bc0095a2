"""Turn a raw Smartsupp hook body into a ``Conversation``, or a ``PayloadError`` naming why not."""

from __future__ import annotations

import hashlib

import msgspec

from relay.conversation import Conversation
from relay.errors import PayloadError, PayloadTooLarge

_DECODER = msgspec.json.Decoder(Conversation, strict=False)
_ANY = msgspec.json.Decoder()


def parse(body: bytes, *, max_bytes: int | None = None) -> Conversation:
    """Decode ``body``. Accepts both documented shapes; unknown fields are ignored here
    (the raw body is stored separately so nothing is lost)."""
    if max_bytes is not None and len(body) > max_bytes:
        raise PayloadTooLarge(max_bytes)
    if not body.strip():
        raise PayloadError("empty_body", "request body is empty; expected a JSON object")
    try:
        return _DECODER.decode(body)
    except RecursionError:
        raise PayloadError("too_deeply_nested", "JSON nesting is too deep") from None
    except msgspec.ValidationError as exc:
        raise _validation_error(body, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise PayloadError("invalid_json", f"body is not valid JSON: {exc}") from None


def _validation_error(body: bytes, detail: str) -> PayloadError:
    try:
        top = _ANY.decode(body)
    except (msgspec.DecodeError, RecursionError):
        top = None
    if not isinstance(top, dict):
        kind = type(top).__name__ if top is not None else "null"
        return PayloadError("not_an_object", f"body must be a JSON object, got {kind}")
    if "missing required field" in detail:
        field = detail.split("`")[1] if "`" in detail else "?"
        where = detail.rsplit(" - at `", 1)
        path = f"{where[1].rstrip('`')}.{field}" if len(where) == 2 else f"$.{field}"
        return PayloadError("missing_field", f"required field {path.removeprefix('$.')} is missing")
    return PayloadError("wrong_type", detail.replace("`$.", "`").replace("- at", "at"))


def content_hash(body: bytes) -> str:
    """Hash of the body's JSON value, insensitive to key order and whitespace."""
    try:
        canonical = msgspec.json.encode(_ANY.decode(body), order="sorted")
    except (msgspec.DecodeError, RecursionError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()
