"""CSS is inlined into the HTML template once, at load: the emails are the same as inlining
each one, and a template whose structure depends on its data is inlined per email."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from relay.config.settings import RenderSettings
from relay.intake.payload import parse
from relay.model.category import Category
from relay.render.preinline import protect, restore
from relay.render.renderer import Renderer
from tests.support.render import (
    EMAIL_ACTION,
    LOCALES,
    MESSAGE_ID,
    category_body,
    conversation_for,
    long_conversation,
    renderer_for,
)

HTML = "email/transcript.html.j2"


def per_email_html(renderer: Renderer, data: dict[str, object], category: Category) -> str:
    """What the renderer made before: render the template, then inline the result."""
    conversation = parse(json.dumps(data).encode())
    view = renderer._view(conversation, category, renderer._limits)
    variables = renderer._variables(conversation, category, view)
    template = renderer._email_env.get_template(HTML)
    return renderer.inline_css(template.render(variables))


def email_html(renderer: Renderer, data: dict[str, object], category: Category) -> str:
    conversation = parse(json.dumps(data).encode())
    message = renderer.email(conversation, category, EMAIL_ACTION, message_id=MESSAGE_ID).message
    part = message.get_body(("html",))
    assert part is not None
    return str(part.get_content()).removesuffix("\n")  # the MIME part ends with a newline


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("category", list(Category), ids=[c.value for c in Category])
def test_the_built_in_template_is_inlined_once_and_gives_the_same_html(
    category: Category, locale: str
) -> None:
    renderer = renderer_for(locale, conversation_url="https://app.test/{chat_id}")
    assert renderer.preinlined(HTML)
    data = category_body(category)
    data["messages"].append(
        {
            "type": "visitor",
            "content": "<b>x</b> {{ 7*7 }} https://shop.test/a?b=1&c=2 call 603 123 456",
            "sentAt": 1427470476000,
        }
    )
    assert email_html(renderer, data, category) == per_email_html(renderer, data, category)


def test_hostile_content_stays_inert_in_the_preinlined_template() -> None:
    renderer = renderer_for("en")
    data = category_body(Category.MISSED)
    data["visitor"]["name"] = '"><script>alert(1)</script>{% raw %}'
    data["messages"][1]["content"] = "</div></td></tr></table><!-- {{ 6*7 }} -->"
    html = email_html(renderer, data, Category.MISSED)
    assert "<script>" not in html and "</table><!--" not in html
    assert "{{ 6*7 }}" in html and "&lt;/table&gt;&lt;!--" in html
    # Escaped by Jinja and never parsed again (inlining each email re-wrote &#34; as ").
    assert "<bdi>&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;{% raw %}</bdi>" in html


def test_a_long_chat_is_the_same_either_way() -> None:
    renderer = renderer_for("en")
    conversation = long_conversation(40)
    view = renderer._view(conversation, Category.LOW_RATED, renderer._limits)
    variables = renderer._variables(conversation, Category.LOW_RATED, view)
    template = renderer._email_env.get_template(HTML)
    assert renderer._html(HTML, variables) == renderer.inline_css(template.render(variables))


def test_a_template_built_from_data_is_inlined_per_email(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    # The class name comes from an expression: only the rendered email shows which rule applies.
    (tmp_path / "email" / "transcript.html.j2").write_text(
        "<html><head><style>.visitor { color: #123456; }</style></head><body>"
        '{% for message in view.messages %}<p class="{{ message.kind }}">{{ message.text }}</p>'
        "{% endfor %}</body></html>",
        encoding="utf-8",
    )
    renderer = Renderer(RenderSettings(templates_dir=tmp_path), from_address="Relay <r@shop.test>")
    assert not renderer.preinlined(HTML)
    message = renderer.email(
        conversation_for(Category.MISSED), Category.MISSED, EMAIL_ACTION, message_id="<m@x>"
    ).message
    part = message.get_body(("html",))
    assert part is not None
    assert '<p class="visitor" style="color: #123456;">Hello</p>' in str(part.get_content())


def test_placeholders_survive_the_html_parser_or_are_refused() -> None:
    protected, originals = protect(
        '<table>{% for row in rows %}<tr><td class="{{ row.kind }}">{{ row.text }}</td></tr>'
        "{% endfor %}</table>"
    )
    assert "{" not in protected
    assert restore(protected, originals) == (
        '<table>{% for row in rows %}<tr><td class="{{ row.kind }}">{{ row.text }}</td></tr>'
        "{% endfor %}</table>"
    )
    lost = next(iter(originals))
    assert restore(protected.replace(lost, ""), originals) is None
