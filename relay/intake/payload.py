"""Turn a raw Smartsupp hook body into a ``Conversation``, or a ``PayloadError`` naming why not."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import msgspec

from relay.model.conversation import Conversation
from relay.model.errors import PayloadError, PayloadTooLarge

_DECODER = msgspec.json.Decoder(Conversation, strict=False)
_ANY = msgspec.json.Decoder()
MAX_ID = 2**63 - 1  # ids are stored as SQLite INTEGER (signed 64-bit)
_SURROGATE = re.compile("[\ud800-\udfff]")
_BOM = b"\xef\xbb\xbf"  # a UTF-8 byte-order mark some encoders put before the JSON
# A \uD800-\uDFFF escape: a UTF-16 surrogate, lone unless its pair follows.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def parse(body: bytes, *, max_bytes: int | None = None) -> Conversation:
    """Decode ``body``. Accepts both documented shapes; unknown fields are ignored here
    (the raw body is stored separately so nothing is lost)."""
    if max_bytes is not None and len(body) > max_bytes:
        raise PayloadTooLarge(max_bytes)
    if not body.strip():
        raise PayloadError("empty_body", "request body is empty; expected a JSON object")
    # The whole body, unknown fields included (the decoder skips those unchecked): what is
    # stored must be text. Checked before decoding, so neither the decoder (whose error for
    # bad UTF-8 differs between msgspec releases) nor the surrogate repair ever sees bad UTF-8.
    bad_utf8 = _utf8_error(body)
    if bad_utf8 is not None:
        raise PayloadError("invalid_utf8", f"body is not valid UTF-8: {bad_utf8}")
    try:
        try:
            conversation: Conversation = _decode(_DECODER, body)
        except msgspec.ValidationError as exc:
            conversation = _decode_tolerating_empty_arrays(body, exc)
    except RecursionError:
        raise PayloadError("too_deeply_nested", "JSON nesting is too deep") from None
    except msgspec.ValidationError as exc:
        raise _validation_error(body, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise PayloadError("invalid_json", f"body is not valid JSON: {exc}") from None
    for name, value in (
        ("accountId", conversation.account_id),
        ("channel.id", conversation.channel.id),
    ):
        if not 0 <= value <= MAX_ID:
            raise PayloadError("out_of_range", f"{name} must be between 0 and {MAX_ID}")
    return conversation


def _utf8_error(body: bytes) -> str | None:
    """Why ``body`` is not UTF-8 (with the byte offset), or None when it is."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"{exc.reason} at byte {exc.start}"
    return None


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes) -> Any:
    """``decoder.decode(body)``, except that a lone UTF-16 surrogate escape such as "\\ud83d"
    (a message cut inside an emoji by a JSON encoder that allows it) becomes U+FFFD instead
    of refusing the whole conversation."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    try:
        return decoder.decode(body)
    except msgspec.ValidationError:
        raise
    except msgspec.DecodeError:
        # msgspec's message for a lone surrogate varies ("... surrogate ...", or "Input data
        # was truncated" for a high surrogate before the closing quote): look at the body. A
        # lone surrogate can only be a \u escape: its UTF-8 form is not UTF-8 (parse refuses it).
        lone = _SURROGATE_ESCAPE.search(body) is not None
        repaired = _without_lone_surrogates(body) if lone else None
        if repaired is None:
            raise
        return decoder.decode(repaired)


_PATH_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")
MAX_REPAIRS = 20


def _decode_tolerating_empty_arrays(body: bytes, error: msgspec.ValidationError) -> Conversation:
    """PHP encodes an empty associative array as ``[]``: where an object is expected (visitor,
    variables, a message), an empty array is read as null instead of refusing the whole
    conversation. Any other wrong type is re-raised."""
    value: Any = None
    original = error
    for _ in range(MAX_REPAIRS):
        detail = str(error)
        head, at, path = detail.rpartition(" - at `")
        if not at or "got `array`" not in head or "Expected `object" not in head:
            raise original  # the top level, or not an empty-array-for-object case
        path = path.rstrip("`")
        if value is None:
            value = json_value(body)
        container, step = _locate(value, path)
        if container is None or container[step] != []:
            raise original
        container[step] = None
        try:
            return _DECODER.decode(msgspec.json.encode(value))
        except msgspec.ValidationError as again:
            error = again
    raise original


def _locate(value: Any, path: str) -> tuple[Any, Any]:
    """(container, key or index) of a msgspec error path such as ``$.messages[2].visitor``;
    (None, None) when the path cannot be followed (dict keys are not named in paths)."""
    steps = [m.group(1) or int(m.group(2)) for m in _PATH_STEP.finditer(path)]
    if not steps or "".join(m.group(0) for m in _PATH_STEP.finditer(path)) != path[1:]:
        return None, None
    try:
        container = value
        for step in steps[:-1]:
            container = container[step]
        container[steps[-1]]  # probes that the last step exists
    except (KeyError, IndexError, TypeError):
        return None, None
    return container, steps[-1]


def _without_lone_surrogates(body: bytes) -> bytes | None:
    """The body re-encoded with every lone surrogate replaced, or None if it is not JSON."""
    try:
        value = json.loads(body, parse_constant=_no_constant)
        return json.dumps(_replace_surrogates(value), ensure_ascii=False).encode()
    except (ValueError, RecursionError):
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


def json_value(body: bytes) -> Any:
    """The JSON value of a stored body, of any shape (lone surrogates replaced as in ``parse``)."""
    return _decode(_ANY, body)


_KINDS = {ord("["): "list", ord('"'): "str", ord("t"): "bool", ord("f"): "bool"}


def _top_level_kind(body: bytes) -> str:
    """Name the JSON type of ``body`` from its first character, without decoding it (a
    deeply nested array must not recurse)."""
    first = body.lstrip()[:1]
    if not first:
        return "nothing"
    if first in b"-0123456789":
        return "number"
    return _KINDS.get(first[0], "null" if first == b"n" else "object")


def _validation_error(body: bytes, detail: str) -> PayloadError:
    kind = _top_level_kind(body)
    if kind != "object":
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
        canonical = msgspec.json.encode(_decode(_ANY, body), order="sorted")
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError):
        canonical = body
    return hashlib.sha256(canonical).hexdigest()
