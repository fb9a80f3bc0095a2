"""JSON body templates for webhook actions: a table whose strings are sandboxed Jinja templates.

The JSON structure comes from the settings and is built as data, then encoded; conversation
content is only ever a value inside it, so nothing a visitor types can change the structure.

A string that is exactly one ``{{ expression }}`` keeps the expression's native JSON value
(``"{{ conversation.channel.rating }}"`` -> ``5``, a whole object stays an object); any other
string is rendered as text (``"Chat {{ key }} ({{ category }})"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import ChainableUndefined, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

_WHOLE = re.compile(r"\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}", re.DOTALL)

Compiled = Callable[[Mapping[str, Any]], Any]


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Undefined):
        return None
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


class BodyTemplates:
    """A sandboxed environment and the body templates compiled with it, by content. Each
    Renderer owns one (a settings reload builds new ones); validating settings uses its own."""

    def __init__(self) -> None:
        self._env = ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
        self._compiled: dict[str, Compiled] = {}

    def compile(self, template: Mapping[str, Any]) -> Compiled:
        """Compile once (kept by content); raises jinja2.TemplateSyntaxError."""
        spec = json.dumps(template, default=str)
        compiled = self._compiled.get(spec)
        if compiled is None:
            compiled = self._compiled[spec] = self._compile(json.loads(spec))
        return compiled

    def render(self, template: Mapping[str, Any], variables: Mapping[str, Any]) -> bytes:
        """The rendered JSON document, UTF-8 encoded."""
        document = self.compile(template)(variables)
        return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()

    def _compile_string(self, text: str) -> Compiled:
        whole = _WHOLE.fullmatch(text.strip())
        if whole is not None:
            expression = self._env.compile_expression(whole["expr"], undefined_to_none=True)
            return lambda variables: _jsonable(expression(**variables))
        if "{{" not in text and "{%" not in text:
            return lambda variables: text
        template = self._env.from_string(text)
        return template.render

    def _compile(self, value: Any) -> Compiled:
        if isinstance(value, str):
            return self._compile_string(value)
        if isinstance(value, Mapping):
            parts = [(str(k), self._compile(v)) for k, v in value.items()]
            return lambda variables: {k: part(variables) for k, part in parts}
        if isinstance(value, list | tuple):
            items = [self._compile(v) for v in value]
            return lambda variables: [item(variables) for item in items]
        return lambda variables: value
