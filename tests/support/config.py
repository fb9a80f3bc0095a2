"""Write settings as a TOML file, so the CLI and a `relay serve` process read what a test means."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from relay.config.settings import Settings, load_settings
from tests.support.data import base_sections


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # a JSON string is a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as a TOML value here")


def to_toml(sections: dict[str, dict[str, Any]]) -> str:
    lines: list[str] = []
    for name, table in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {_value(value)}" for key, value in table.items())
        lines.append("")
    return "\n".join(lines)


def write_sections(path: Path, sections: dict[str, dict[str, Any]], more: str = "") -> Path:
    """Exactly ``sections`` (no defaults), then ``more`` (e.g. ``[[rules]]`` tables)."""
    path.write_text(to_toml(sections) + more, encoding="utf-8")
    return path


def write_config(directory: Path, **overrides: dict[str, Any]) -> tuple[Path, Settings]:
    """A config for a fresh state dir under ``directory``, with fast retries; sections in
    ``overrides`` are merged into the defaults. Returns the file and the settings it loads."""
    sections: dict[str, dict[str, Any]] = base_sections(directory / "state")
    for name, table in overrides.items():
        sections[name] = {**sections.get(name, {}), **table}
    path = directory / "relay.toml"
    path.write_text(to_toml(sections), encoding="utf-8")
    return path, load_settings(path)
