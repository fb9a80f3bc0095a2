"""systemd unit files read as systemd reads them: sections of repeatable key=value lines."""

from __future__ import annotations


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as lists of (key, value); keys may repeat, as in systemd."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        assert "=" in line, f"not a key=value line: {line!r}"
        assert not line.endswith("\\"), "continuation lines are not used in this unit"
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def single(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= appears {len(found)} times, expected once"
    return found[0]


def python_environment(unit: dict[str, list[tuple[str, str]]], cache: str) -> dict[str, str]:
    """The unit's ``Environment=PYTHON*`` variables, with its cache directory (``%C``) at
    ``cache``: how the service's interpreter runs."""
    env = dict(value.split("=", 1) for value in values(unit, "Service", "Environment"))
    return {k: v.replace("%C", cache) for k, v in env.items() if k.startswith("PYTHON")}
