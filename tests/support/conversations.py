"""Sample conversations with small changes, for routing tests."""

from __future__ import annotations

from typing import Any

from relay.intake.payload import parse
from relay.model.conversation import Conversation
from tests.support.data import body, sample

NOW = 1_800_000_000.0


def conversation(changes: dict[str, Any] | None = None, name: str = "v1") -> Conversation:
    """The v1 sample with dotted-path changes; a value of ``...`` deletes the key."""
    data = sample(name)
    for path, value in (changes or {}).items():
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is ...:
            node.pop(last, None)
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return parse(body(data))
