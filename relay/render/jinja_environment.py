"""A Jinja environment whose templates take its globals as a plain dict, made once per template."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import jinja2


class PlainGlobalsEnvironment(jinja2.Environment):
    """``jinja2.Environment`` but for ``make_globals``: each template's globals are a dict of
    the environment's globals (and the template's own on top), as Jinja 2 made them, instead
    of Jinja 3's ChainMap. Every render copies its template's globals into a new context
    (twice: ``new_context`` and ``Context.__init__``), which for a ChainMap is a Python loop
    per name and was a tenth of the text template's render. The difference: globals added
    to the environment after a template is loaded are not seen by it, and the relay's
    environments are given theirs (Jinja's defaults) before any template is loaded."""

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        return {**self.globals, **(d or {})}
