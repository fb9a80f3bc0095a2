"""Validation errors of the settings as one line per problem, naming rules by their names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from relay.routing.rules import ACTION_TYPES


def describe_validation_error(
    exc: ValidationError, path: Path | str | None, data: dict[str, Any] | None = None
) -> str:
    """One line per problem, naming the key; a rule's problem names the rule by its name."""
    where = f" in {path}" if path else ""
    lines = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        key = _describe_location(error["loc"], data or {})
        lines.append(f"{key}: {message}" if key else message)
    return f"invalid settings{where}: " + "; ".join(lines)


def _describe_location(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    # Drop pydantic's internal steps: validator names, union members, action type tags.
    parts = [
        str(p)
        for i, p in enumerate(loc)
        if not str(p).startswith("function-")
        and "[" not in str(p)
        and not (p in ACTION_TYPES and i > 0 and isinstance(loc[i - 1], int))
    ]
    if len(parts) >= 2 and parts[0] == "rules" and parts[1].isdigit():
        index = int(parts[1])
        rules = data.get("rules")
        rule = rules[index] if isinstance(rules, list) and index < len(rules) else None
        name = rule.get("name") if isinstance(rule, dict) else None
        label = f"rule {name!r}" if isinstance(name, str) else f"rule #{index + 1}"
        rest = ".".join(parts[2:])
        return f"{label}: {rest}" if rest else label
    return ".".join(parts)
