"""Templates of the relay's Jinja environments (``PlainGlobalsEnvironment``: their globals a
plain dict) see exactly the globals and render exactly the text a stock Jinja environment
gives: the shipped templates for every sample conversation, and templates using every
default global, an include and their own globals."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from relay.render import environment
from relay.render.renderer import email_template_paths
from relay.render.samples import check_conversations
from tests.support.render import LOCALES, renderer_for

OWN = """{%- set ns = namespace(total=0) -%}
{%- for i in range(3) %}{% set ns.total = ns.total + i %}{% endfor -%}
{%- set row = cycler("odd", "even") -%}{%- set comma = joiner(", ") -%}
{%- for key, value in dict(b=2, a=1) | dictsort -%}
{{ comma() }}{{ key }}={{ value }} {{ row.next() }}
{%- endfor %}
{{ ns.total }} {{ lipsum is callable }} {{ extra | default("none") }}
{% include "email/part.txt.j2" %}
"""


def stock(built: jinja2.Environment) -> jinja2.Environment:
    """A stock ``jinja2.Environment`` with ``built``'s loader, options and filters."""
    copy = jinja2.Environment(
        loader=built.loader,
        autoescape=built.autoescape,  # noqa: S701 -- the built environment's own choice
        undefined=built.undefined,
        finalize=built.finalize,
        trim_blocks=built.trim_blocks,
        lstrip_blocks=built.lstrip_blocks,
        keep_trailing_newline=built.keep_trailing_newline,
        auto_reload=False,
    )
    copy.filters.update(built.filters)
    return copy


def test_the_environments_templates_have_the_stock_globals(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "own.txt.j2").write_text(OWN, encoding="utf-8")
    (tmp_path / "email" / "part.txt.j2").write_text("{{ extra }}", encoding="utf-8")
    for make in (environment.email_environment, environment.slack_environment):
        built = make(tmp_path)
        reference = stock(built)
        for name in ("email/own.txt.j2", "email/transcript.html.j2", "slack/alert.txt.j2"):
            assert dict(built.get_template(name).globals) == dict(
                reference.get_template(name).globals
            )
        extra = {"extra": "given"}
        assert dict(built.get_template("email/part.txt.j2", globals=extra).globals) == dict(
            reference.get_template("email/part.txt.j2", globals=extra).globals
        )
        assert dict(built.from_string("x", globals=extra).globals) == dict(
            reference.from_string("x", globals=extra).globals
        )


@pytest.mark.parametrize("extra", [{}, {"extra": "<b>&amp;</b>"}])
def test_a_template_using_every_default_global_renders_as_with_stock_jinja(
    tmp_path: Path, extra: dict[str, str]
) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "own.txt.j2").write_text(OWN, encoding="utf-8")
    (tmp_path / "email" / "own.html.j2").write_text(OWN, encoding="utf-8")
    (tmp_path / "email" / "part.txt.j2").write_text("{{ extra | default('-') }}", encoding="utf-8")
    built = environment.email_environment(tmp_path)
    reference = stock(built)
    for name in ("email/own.txt.j2", "email/own.html.j2"):
        rendered = built.get_template(name).render(extra)
        assert rendered == reference.get_template(name).render(extra)
        assert "a=1 odd, b=2 even" in rendered
        assert "3 True" in rendered


@pytest.mark.parametrize("locale", LOCALES)
def test_the_shipped_templates_render_as_with_stock_jinja(locale: str) -> None:
    renderer = renderer_for(locale)
    built = renderer._email_env
    reference = stock(built)
    names = email_template_paths("transcript").values()
    for conversation, category in check_conversations():
        for history, attached in ((None, False), ("2 earlier conversations", True)):
            view = renderer._view(conversation, category, renderer._limits, history)
            variables = renderer._variables(conversation, category, view, attached=attached)
            for name in names:
                assert built.get_template(name).render(variables) == reference.get_template(
                    name
                ).render(variables), name
