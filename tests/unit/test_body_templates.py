"""Webhook body templates keep a whole expression's JSON value: lists and tuples become
arrays, mappings objects, a missing value null, anything else its text."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from relay.render.templating import BodyTemplates


def rendered(template: dict[str, object], **variables: object) -> object:
    return json.loads(BodyTemplates().render(template, variables))


def test_whole_expressions_keep_their_json_shape() -> None:
    template = {
        "tags": "{{ tags }}",
        "pair": "{{ pair }}",
        "visitor": "{{ visitor }}",
        "missing": "{{ [visitor.nothing, 1] }}",
        "when": "{{ when }}",
    }
    assert rendered(
        template,
        tags=["vip", "cz"],
        pair=("a", 2),
        visitor={"name": "Jana", "variables": {"plan": "pro", 3: None}},
        when=datetime(2026, 12, 3, 10, 0, tzinfo=UTC),
    ) == {
        "tags": ["vip", "cz"],
        "pair": ["a", 2],
        "visitor": {"name": "Jana", "variables": {"plan": "pro", "3": None}},
        "missing": [None, 1],
        "when": "2026-12-03 10:00:00+00:00",
    }


def test_a_template_is_compiled_once_per_content() -> None:
    templates = BodyTemplates()
    first = templates.compile({"key": "{{ key }}"})
    assert templates.compile({"key": "{{ key }}"}) is first
    assert templates.compile({"key": "{{ key }} "}) is not first
