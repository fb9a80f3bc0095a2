"""CSS inlined into an HTML template's source once, at load, instead of into every email."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import jinja2

# Jinja expressions, statements and comments (default delimiters).
_JINJA = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_PLACEHOLDER = "jjinja{}x"  # lower case: the HTML parser lowercases names inside tags


def _inside_tag(source: str, position: int) -> bool:
    """Whether ``position`` is inside a tag (after a "<" not yet closed by ">")."""
    before = _JINJA.sub("", source[:position])
    return before.rfind("<") > before.rfind(">")


def protect(source: str) -> tuple[str, dict[str, str]]:
    """``source`` with every Jinja construct replaced by an inert placeholder the HTML parser
    keeps where it is: a comment between elements (a comment may stand anywhere, even
    between table rows), a plain word inside a tag or text."""
    originals: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        token = _PLACEHOLDER.format(len(originals))
        construct = match.group(0)
        if construct.startswith("{{") or _inside_tag(source, match.start()):
            originals[token] = construct
            return token
        originals[f"<!--{token}-->"] = construct
        return f"<!--{token}-->"

    return _JINJA.sub(replace, source), originals


def restore(html: str, originals: dict[str, str]) -> str | None:
    """The inlined HTML with the Jinja constructs back; None if any placeholder was lost,
    duplicated or changed by the parser."""
    for placeholder in originals:
        if html.count(placeholder) != 1:
            return None
    pattern = re.compile("|".join(re.escape(p) for p in sorted(originals, key=len, reverse=True)))
    return pattern.sub(lambda match: originals[match.group(0)], html)


def preinlined_template(
    environment: jinja2.Environment,
    path: str,
    inline: Callable[[str], str],
    samples: Iterable[dict[str, Any]],
) -> jinja2.Template | None:
    """The template at ``path`` compiled from its source with the CSS already inlined, or
    None when that would not give exactly what inlining each rendered email gives for every
    one of ``samples`` (a template whose structure depends on its data: a class name made by
    an expression, a tag split by a statement); then the caller inlines per email."""
    loader = environment.loader
    if loader is None:
        return None
    try:
        source, _, _ = loader.get_source(environment, path)
        protected, originals = protect(source)
        restored = restore(inline(protected), originals)
        if restored is None:
            return None
        compiled = environment.from_string(restored)
        original = environment.get_template(path)
        for variables in samples:
            if compiled.render(variables) != inline(original.render(variables)):
                return None
    except Exception:  # a Jinja or CSS error, or the template's own code raising (1/0 ...):
        return None  # inlined per email; `check` reports what is wrong with the template
    return compiled
