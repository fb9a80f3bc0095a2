"""Jinja2 environments: built-in and override template loading, filters, and the subject sandbox."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup, escape

from relay.render.slack_text import slack_escape
from relay.render.view import is_greeting, url_spans

# Jinja is imported by the functions that build environments: the relay's own process builds
# none while idle (templates render in the render helper; the console and lead pages build
# theirs on their first request).
if TYPE_CHECKING:
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment


def _autoescape(template_name: str | None) -> bool:
    # Escape everything except plain-text templates (*.txt.j2), whose output is never HTML.
    return template_name is None or not template_name.endswith(".txt.j2")


def nl2br(text: object) -> Markup:
    """Escape ``text`` and turn its line breaks into ``<br>``."""
    whole = str(text)
    if "\n" not in whole and "\r" not in whole:
        return escape(whole)  # one line: what joining its only line would give
    lines = whole.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return Markup("<br>\n").join(escape(line) for line in lines)


def linkify(text: object, style: str = "") -> Markup:
    """``nl2br``, and absolute http(s) URLs in the text as links (nothing else is linked),
    with ``style`` as their inline style."""
    if "://" not in str(text):
        return nl2br(text)  # no URL: nothing to link
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    html_lines = []
    for line in lines:
        parts = []
        for piece, url in url_spans(line):
            if url is None:
                parts.append(escape(piece))
            else:
                attributes = Markup(' style="{}"').format(style) if style else Markup("")
                parts.append(Markup('<a href="{}"{}>{}</a>').format(url, attributes, piece))
        html_lines.append(Markup("").join(parts))
    return Markup("<br>\n").join(html_lines)


def indent_text(text: object, prefix: str = "    ") -> str:
    """Prefix every line of ``text`` (plain-text transcript continuation lines)."""
    lines = str(text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return ("\n" + prefix).join(lines)


def _slack_finalize(value: Any) -> Any:
    # Every {{ expression }} of a Slack template is escaped for mrkdwn, whatever it contains.
    return slack_escape("" if value is None else str(value))


def loader(templates_dir: Path | None) -> jinja2.BaseLoader:
    """Override directory first (same names), then the templates shipped in ``relay.templates``."""
    import jinja2  # noqa: PLC0415 -- see TYPE_CHECKING above

    builtin = jinja2.PackageLoader("relay.templates", "")
    if templates_dir is None:
        return builtin
    return jinja2.ChoiceLoader([jinja2.FileSystemLoader(str(templates_dir)), builtin])


def _common(environment: jinja2.Environment) -> jinja2.Environment:
    environment.filters["nl2br"] = nl2br
    environment.filters["indent_text"] = indent_text
    environment.filters["linkify"] = linkify
    environment.filters["is_greeting"] = lambda text: is_greeting(str(text))
    return environment


def email_environment(templates_dir: Path | None) -> jinja2.Environment:
    import jinja2  # noqa: PLC0415 -- see TYPE_CHECKING above

    from relay.render.jinja_environment import PlainGlobalsEnvironment  # noqa: PLC0415 -- as jinja2

    return _common(
        PlainGlobalsEnvironment(
            loader=loader(templates_dir),
            autoescape=_autoescape,  # escapes all but *.txt.j2 (plain text)
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            auto_reload=False,
        )
    )


def slack_environment(templates_dir: Path | None) -> jinja2.Environment:
    import jinja2  # noqa: PLC0415 -- see TYPE_CHECKING above

    from relay.render.jinja_environment import PlainGlobalsEnvironment  # noqa: PLC0415 -- as jinja2

    return PlainGlobalsEnvironment(
        loader=loader(templates_dir),
        # Slack output is not HTML; finalize applies Slack's own &, <, > escaping instead.
        autoescape=False,  # see above
        undefined=jinja2.StrictUndefined,
        finalize=_slack_finalize,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


def subject_environment() -> SandboxedEnvironment:
    """For user-supplied subject strings from the rules: sandboxed, no filesystem access."""
    import jinja2  # noqa: PLC0415 -- see TYPE_CHECKING above
    from jinja2.sandbox import SandboxedEnvironment  # noqa: PLC0415 -- as above

    return SandboxedEnvironment(
        loader=None,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
    )
