"""CrmContent: pure rendering, markers that survive any cut, one-line titles, inert values."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from pydantic import SecretStr

from relay.config.crm import HubSpotDestination
from relay.intake.payload import parse
from relay.model.category import Category
from relay.model.crm import one_line
from relay.render.crm import render_crm
from relay.routing.rules import HubSpotAction, PipedriveAction, ZendeskAction
from relay.senders.crm.hubspot import HubSpotSender
from tests.support.paths import SAMPLES

SAMPLE = SAMPLES / "missed-chat.json"
MISSED = Category.MISSED


def raw(**visitor: Any) -> bytes:
    data = json.loads(SAMPLE.read_text("utf-8"))
    data["visitor"].update(visitor)
    return json.dumps(data).encode()


def test_the_same_body_renders_the_same_content_and_another_version_another_revision() -> None:
    action = ZendeskAction(type="zendesk", destination="d")
    body = raw()
    first = render_crm(action, body, parse(body), Category.MISSED)
    again = render_crm(action, body, parse(body), Category.MISSED)
    assert first == again
    other = raw(note="changed")
    changed = render_crm(action, other, parse(other), Category.MISSED)
    assert changed.marker == first.marker == "smartsupp-208-55041"
    assert changed.revision != first.revision


def test_markers_survive_every_cut_and_the_limit_holds() -> None:
    action = ZendeskAction(type="zendesk", destination="d")
    body = raw(name="<b>" * 5000)
    content = render_crm(action, body, parse(body), Category.MISSED)
    for limit in (600, 2_000, 60_000):
        for text in (content.text(limit), content.html(limit)):
            assert len(text) <= limit
            assert f"[{content.marker}]" in text and f"[{content.revision_marker}]" in text
    html = content.html(60_000)
    assert "<b><b>" not in html and "&lt;b&gt;&lt;b&gt;" in html  # only its own tags


def test_a_title_template_sees_values_never_runs_them() -> None:
    action = PipedriveAction(type="pipedrive", destination="d", title="Chat: {{ name }}")
    body = raw(name="{{ 7*7 }}\r\nBcc: x@evil.test {% raw %}")
    content = render_crm(action, body, parse(body), Category.MISSED)
    assert content.title == "Chat: {{ 7*7 }} Bcc: x@evil.test {% raw %}"


def test_one_line_folds_whitespace_and_cuts() -> None:
    assert one_line("a\r\nb\t c") == "a b c"
    assert len(one_line("x" * 1000)) == 255


def test_a_link_back_is_an_escaped_anchor_and_only_ever_http() -> None:
    body = raw()
    action = ZendeskAction(type="zendesk", destination="d", link="https://x.test/c/{{ key }}")
    content = render_crm(action, body, parse(body), Category.MISSED)
    assert content.link == "https://x.test/c/208-55041"
    assert '<a href="https://x.test/c/208-55041">' in content.html(60_000)
    assert "Conversation: https://x.test/c/208-55041" in content.text(60_000)
    odd = ZendeskAction(type="zendesk", destination="d", link="https://x.test/{{ '\"><script>' }}")
    assert render_crm(odd, body, parse(body), Category.MISSED).link is None


def test_hubspot_contact_properties_carry_only_what_the_visitor_gave() -> None:
    sender = HubSpotSender(
        HubSpotDestination(token=SecretStr("t"), properties={"plan": "plan", "shop": "shop_id"})
    )
    body = raw()
    rendered = render_crm(HubSpotAction(type="hubspot", destination="d"), body, parse(body), MISSED)
    full = dataclasses.replace(
        rendered, phone="+420 123", country="CZ", variables={"plan": "x" * 1500, "shop": ""}
    )
    props = sender.contact_properties(full)
    assert (props["email"], props["firstname"], props["lastname"]) == (
        "dusan@domain.com",
        "Dusan",
        "Kmet",
    )
    assert (props["phone"], props["country"]) == ("+420 123", "CZ")
    assert props["plan"] == "x" * 1000  # cut to the property limit
    assert "shop_id" not in props  # an empty variable fills nothing
    one_name = dataclasses.replace(full, name="Cher", phone=None, country=None, variables={})
    assert sender.contact_properties(one_name) == {"email": "dusan@domain.com", "firstname": "Cher"}
    nameless = dataclasses.replace(one_name, name=None, email=None)
    assert sender.contact_properties(nameless) == {"email": ""}


def test_an_anonymous_header_and_one_huge_message_cut_to_its_end() -> None:
    body = raw()
    content = render_crm(ZendeskAction(type="zendesk", destination="d"), body, parse(body), MISSED)
    anonymous = dataclasses.replace(content, name=None, email=None, phone=None, country=None)
    assert not any(line.startswith("Visitor:") for line in anonymous.header_lines())
    assert any(line.startswith("Visitor:") for line in content.header_lines())
    last = dataclasses.replace(content.messages[-1], text="START " + "a" * 5000)
    huge = dataclasses.replace(content, messages=(last,))
    text = huge.text(600)
    assert len(text) == 600 and f"[{content.marker}]" in text
    assert "START" not in text  # the message's start did not fit
    assert text.endswith("a" * 100 + " [... cut]")  # the end of the message is kept
