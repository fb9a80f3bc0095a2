"""The email and Slack message lead with what the visitor wants and how to answer: the ask,
one-click actions, contact details or their absence, informative subjects, local times with
the zone, wording per locale, and an HTML part that Gmail does not clip."""

from __future__ import annotations

import json
import re
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from relay.intake.payload import parse
from relay.model.category import Category
from relay.model.errors import ConfigError
from relay.render.view import LinkView, link, phone_numbers, url_spans
from tests.support.render import (
    EMAIL_ACTION,
    MESSAGE_ID,
    SLACK_ACTION,
    category_body,
    long_conversation,
    renderer_for,
)

SMARTSUPP_URL = "https://app.smartsupp.com/app/conversations/{account_id}/{chat_id}"


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return str(text.get_content()), str(html.get_content())


def render(
    data: dict[str, Any], category: Category, locale: str = "en", **settings: Any
) -> EmailMessage:
    conversation = parse(json.dumps(data).encode())
    return (
        renderer_for(locale, **settings)
        .email(conversation, category, EMAIL_ACTION, message_id=MESSAGE_ID)
        .message
    )


def slack_text(data: dict[str, Any], category: Category, **settings: Any) -> str:
    conversation = parse(json.dumps(data).encode())
    content = renderer_for("en", **settings).slack(conversation, category, SLACK_ACTION)
    return json.dumps(list(content.blocks), ensure_ascii=False)


def test_the_ask_comes_first_then_actions_then_transcript_then_pages() -> None:
    data = category_body(Category.MISSED)
    data["paths"] = [{"url": f"https://shop.test/p{n}", "title": f"Page {n}"} for n in range(20)]
    data["visitor"]["variables"] = {f"v{n}": {"label": f"Var {n}", "value": n} for n in range(15)}
    _, html = parts(render(data, Category.MISSED, conversation_url=SMARTSUPP_URL))
    ask = html.index("I would like to order the pro package.")
    reply = html.index("Reply to <bdi>Dusan Kmet</bdi>")
    transcript = html.index(">Transcript<")
    pages = html.index(">Pages visited<")
    variables = html.index(">Visitor details<")
    assert ask < reply < transcript < pages < variables
    # Pages as a short journey: the first four, how many more, the last one.
    shown = re.findall(r">(Page \d+)</a>", html)
    assert shown == ["Page 0", "Page 1", "Page 2", "Page 3", "Page 19"]
    assert "+15 more pages" in html


def test_action_row_reply_open_and_call() -> None:
    data = category_body(Category.MISSED)
    data["messages"][1]["content"] = "Call me on +420 603 123 456 please, about <b>pro</b>"
    message = render(data, Category.MISSED, conversation_url=SMARTSUPP_URL)
    text, html = parts(message)
    assert 'href="mailto:dusan@domain.com?subject=Re%3A%20Call%20me%20on%20%2B420' in html
    assert 'href="https://app.smartsupp.com/app/conversations/208/55039"' in html
    assert ">Open in Smartsupp<" in html
    assert 'href="tel:+420603123456"' in html and "Call +420 603 123 456" in html
    assert "&lt;b&gt;pro&lt;/b&gt;" in html and "<b>pro</b>" not in html
    assert "Open in Smartsupp: https://app.smartsupp.com/app/conversations/208/55039" in text
    assert "Call +420 603 123 456: tel:+420603123456" in text
    slack = slack_text(data, Category.MISSED, conversation_url=SMARTSUPP_URL)
    assert '"url": "https://app.smartsupp.com/app/conversations/208/55039"' in slack
    assert "<tel:+420603123456|Call +420 603 123 456>" in slack
    assert "<mailto:dusan@domain.com?subject=Re%3A%20Call" in slack


def test_no_open_link_without_a_conversation_url_and_bad_templates_are_refused() -> None:
    _, html = parts(render(category_body(Category.MISSED), Category.MISSED))
    assert "Open in Smartsupp" not in html
    for template in (
        "javascript:alert(1)//{chat_id}",
        "https://x.test/{nope}",
        "/c/{chat_id}",
        "https://x.test/{chat_id.x}",  # str.format would read an attribute
        "https://x.test/{chat_id.upper}",
    ):
        with pytest.raises(ConfigError, match="conversation_url"):
            renderer_for("en", conversation_url=template)


def test_phone_numbers_and_links_found_in_text() -> None:
    found = phone_numbers(["ring 603 123 456 or +49 (30) 1234-5678; order 12345, 2024-11-12"])
    assert [p.uri for p in found] == ["tel:603123456", "tel:+493012345678"]
    spans = url_spans("see https://shop.test/a?b=1. and javascript:alert(1) or ftp://x.test")
    assert spans == [
        ("see ", None),
        ("https://shop.test/a?b=1", "https://shop.test/a?b=1"),
        (". and javascript:alert(1) or ftp://x.test", None),
    ]


def test_at_most_the_limit_of_phone_numbers_and_only_well_formed_links() -> None:
    many = phone_numbers(["603 123 451, 603 123 452, 603 123 453"], limit=2)
    assert [p.uri for p in many] == ["tel:603123451", "tel:603123452"]
    assert link("broken", "http://[::1/x") == LinkView("broken", None)  # not parseable
    assert link("tab", "https://shop.test/a\tb") == LinkView("tab", None)  # control character
    assert link(None, "  ") is None
    assert url_spans("see http://[::1/x then") == [("see http://[::1/x then", None)]


def test_urls_in_messages_become_links_with_safe_schemes_only() -> None:
    data = category_body(Category.MISSED)
    data["messages"][1]["content"] = (
        'See https://shop.test/x?a=1&b="2" or javascript:alert(1) <a href="https://evil.test">x</a>'
    )
    _, html = parts(render(data, Category.MISSED))
    assert re.search(
        r'<a href="https://shop.test/x\?a=1&amp;b="[^>]*>https://shop.test/x\?a=1&amp;b=</a>', html
    )
    assert 'href="javascript' not in html
    # The visitor's HTML is shown as text; the address in it is a link to itself only.
    assert "&lt;a href=&#34;" in html or "&lt;a href=&quot;" in html or '&lt;a href="' in html
    assert not re.search(r'<a href="https://evil.test"[^>]*>x</a>', html)


def test_rtl_name_is_isolated_from_the_time() -> None:
    data = category_body(Category.NORMAL)
    name = "محمد العلي"
    data["visitor"]["name"] = name
    for message in data["messages"]:
        if message["type"] == "visitor":
            message["name"] = name
    message = render(data, Category.NORMAL)
    _, html = parts(message)
    assert '<h1 dir="auto" style="' in html and f"<bdi>{name}</bdi></h1>" in html
    # In the transcript the name is isolated, so "9:00 AM" cannot be split around it.
    assert re.search(rf"<bdi>{name}</bdi></b> <span class=\"t\">[^<]+</span>", html)
    # The message text decides its own direction (not the name or the time before it).
    assert re.search(r'<div class="m mv" style="[^"]*"><b><bdi>', html)
    assert '<div dir="auto">Hello</div></div>' in html


def test_offline_form_email_is_the_reply_to_when_it_is_the_only_address() -> None:
    data = category_body(Category.OFFLINE)
    data["visitor"].update(email=None, name=None)
    data["messages"][0].update(email="buyer@firm.test", name=None)
    message = render(data, Category.OFFLINE)
    text, html = parts(message)
    assert message["Reply-To"] == "Unknown visitor <buyer@firm.test>"
    assert 'href="mailto:buyer@firm.test?subject=' in html
    assert "Reply to this email to answer Unknown visitor directly." in text
    assert "no contact" not in message["Subject"]


def test_no_contact_details_are_stated() -> None:
    data = category_body(Category.OFFLINE)
    data["visitor"].update(email=None, name=None)
    data["messages"][0].update(email=None, name=None)
    message = render(data, Category.OFFLINE)
    text, html = parts(message)
    assert message["Reply-To"] is None
    said = "No contact details: the visitor left no email address or phone number."
    assert said in text and said in html
    assert message["Subject"].startswith("[Offline message] Unknown visitor (CZ) · no contact: ")
    assert "mailto:" not in html
    assert "No contact details" in slack_text(data, Category.OFFLINE)


def test_subjects_skip_greetings_carry_the_rating_and_cut_at_a_word() -> None:
    low = category_body(Category.LOW_RATED)
    subject = render(low, Category.LOW_RATED)["Subject"]
    # A low-rated chat leads with the rating and the visitor's comment.
    assert subject == (
        "[Low-rated chat ★1] Dusan Kmet (CZ): Nobody answered my question about invoices."
    )
    normal = render(category_body(Category.NORMAL), Category.NORMAL)["Subject"]
    assert normal == "[Chat] Dusan Kmet (CZ): tanks."  # "Hello" is skipped
    greeting_only = category_body(Category.LOW_RATED)
    greeting_only["messages"] = [m for m in greeting_only["messages"] if m["type"] != "visitor"]
    greeting_only["messages"].insert(0, {"type": "visitor", "content": "Hi!", "sentAt": 1})
    subject = render(greeting_only, Category.LOW_RATED)["Subject"]
    assert subject.endswith(": Nobody answered my question about invoices.")
    long = category_body(Category.MISSED)
    long["messages"][1]["content"] = "Please quote " + "wonderful " * 30
    subject = render(long, Category.MISSED)["Subject"]
    assert len(subject) <= 120 and subject.endswith("wonderful…")


def test_missed_chat_shows_no_response_times_and_plain_text_names_once() -> None:
    data = category_body(Category.MISSED)
    data["channel"].update(firstResponse=30, avgResponse=40)
    data["messages"][1].pop("name")
    text, html = parts(render(data, Category.MISSED))
    assert "No agent joined" in text and "No agent joined" in html
    assert "First response" not in text + html and "Average response" not in text + html
    anonymous = category_body(Category.MISSED)
    anonymous["visitor"]["name"] = None
    for message in anonymous["messages"]:
        message.pop("name", None)
    text, _ = parts(render(anonymous, Category.MISSED))
    assert "Visitor (Visitor):" not in text
    assert "Visitor:" in text


def test_every_time_has_the_zone_and_no_seconds() -> None:
    text, html = parts(render(category_body(Category.NORMAL), Category.NORMAL, "cs"))
    assert "Datum: 27. 3. 2015 16:33 CET" in text
    assert "[16:33 CET]" in text
    times = re.findall(r'<span class="t">([^<]+)</span>', html)
    assert times and all(re.fullmatch(r"\d{1,2}:\d{2} CET", time) for time in times)
    assert not re.search(r"\d:\d\d:\d\d", text + html)


def test_slack_times_are_date_tokens_with_a_fallback() -> None:
    slack = slack_text(category_body(Category.NORMAL), Category.NORMAL)
    assert "<!date^1427470439^{date_short_pretty} {time}|Mar 27, 2015 3:33\u202fPM GMT>" in slack
    assert "<!date^1427470446^{time}|3:34\u202fPM GMT>" in slack


def test_slack_offline_text_is_not_cut_before_2900_characters() -> None:
    data = category_body(Category.OFFLINE)
    words = "Please call me back about the order, my number is at the end. "
    body = (words * 50)[:2_880] + " +420 603 123 456"
    assert len(body) >= 2_890
    data["messages"][0]["content"] = body
    conversation = parse(json.dumps(data).encode())
    content = renderer_for("en").slack(conversation, Category.OFFLINE, SLACK_ACTION)
    texts = [block["text"]["text"] for block in content.blocks if "text" in block]
    assert any(body in text for text in texts)
    assert "<tel:+420603123456|" in json.dumps(list(content.blocks), ensure_ascii=False)


def test_swapped_city_and_country_are_put_right() -> None:
    text, _ = parts(render(category_body(Category.NORMAL), Category.NORMAL))
    assert "Location: Brno, Czech Republic (CZ)" in text
    assert "Czech Republic, Brno" not in text


@pytest.mark.parametrize(
    ("locale", "shown", "replaced"),
    [
        ("cs", "Průměrná doba odpovědi", "Průměrná odpověď"),
        ("cs", "Doba první odpovědi", "První odpověď:"),
        ("cs", "Zdroj návštěvy", "Přišel z"),
        ("de", "Durchschnittliche Antwortzeit", "Durchschnittliche Antwort:"),
        ("de", "Erste Antwortzeit", "Erste Antwort:"),
        ("de", "Herkunft", "Kam von"),
        ("de", "Automatisch gesendet von relay", "Von relay aus einer"),
    ],
)
def test_wording_fixes(locale: str, shown: str, replaced: str) -> None:
    data = category_body(Category.NORMAL)
    data["visitor"]["referer"] = "https://search.test/?q=shop"
    text, html = parts(render(data, Category.NORMAL, locale))
    assert shown in text and shown in html
    assert replaced not in text and replaced not in html


@pytest.mark.parametrize("count", [300, 2_000])
def test_html_part_stays_under_100_kb_with_the_whole_transcript_attached(count: int) -> None:
    conversation = long_conversation(count)
    # Budget enough for the attachment to hold every message (render.max_email_bytes).
    message = (
        renderer_for("en", max_messages=100_000, max_email_bytes=3_000_000)
        .email(conversation, Category.LOW_RATED, EMAIL_ACTION, message_id=MESSAGE_ID)
        .message
    )
    assert message.get_content_type() == "multipart/mixed"
    alternative, attachment = message.get_payload()  # type: ignore[misc]
    assert alternative.get_content_type() == "multipart/alternative"
    text, html = parts(message)
    assert len(html.encode("utf-8")) < 100_000
    assert f"Message {count - 1}:" in html
    shown = html.count('class="m ')
    assert (
        f"… {count - shown:,} earlier messages not shown; the whole transcript is attached" in html
    )
    assert attachment.get_filename() == "transcript.txt"
    transcript = str(attachment.get_content())
    assert "Message 0:" in transcript and f"Message {count - 1}:" in transcript
    # Every message once, and the first visitor message once more as the ask.
    assert transcript.count("\n    Message ") == count + 1
    assert "whole transcript is attached" in text


def test_a_short_chat_has_no_attachment() -> None:
    message = render(category_body(Category.NORMAL), Category.NORMAL)
    assert message.get_content_type() == "multipart/alternative"


@pytest.mark.parametrize(
    ("count", "shown", "more"),
    [
        (1, ["Page 0"], 0),
        (2, ["Page 0", "Page 1"], 0),
        (5, [f"Page {n}" for n in range(5)], 0),
        (6, ["Page 0", "Page 1", "Page 2", "Page 3", "Page 5"], 1),
    ],
)
def test_pages_are_a_journey_from_the_landing_page_to_where_the_chat_started(
    count: int, shown: list[str], more: int
) -> None:
    data = category_body(Category.MISSED)
    data["paths"] = [{"url": f"https://shop.test/p{n}", "title": f"Page {n}"} for n in range(count)]
    text, html = parts(render(data, Category.MISSED))
    assert re.findall(r">(Page \d+)</a>", html) == shown
    journey = text[text.index("Pages visited:") : text.index("Visitor details:")]
    assert re.findall(r"(Page \d+) <", journey) == shown
    if count == 1:
        assert "Landing page, chat started here:</span> <bdi>" in html
        assert "- Landing page, chat started here: Page 0 <" in journey
    else:
        assert 'Landing page:</span> <bdi><a href="https://shop.test/p0"' in html
        assert f'Chat started on:</span> <bdi><a href="https://shop.test/p{count - 1}"' in html
        assert "- Landing page: Page 0 <" in journey
        assert f"  → Chat started on: Page {count - 1} <" in journey
    assert ("+1 more page" in html and "  → +1 more page\n" in journey) == (more == 1)
    assert html.count(" &rarr; ") + html.count(" → ") == len(shown) - 1 + (1 if more else 0)


def test_a_right_to_left_location_has_every_part_isolated() -> None:
    data = category_body(Category.MISSED)
    city = "الرياض"
    data["visitor"].update(city=city, country="Saudi Arabia", countryCode="SA")
    text, html = parts(render(data, Category.MISSED))
    # Each part its own isolate: never "Saudi Arabia (SA) ,<city>" as one run.
    assert f"<bdi>{city}</bdi>, <bdi>Saudi Arabia</bdi> (<bdi>SA</bdi>) · " in html
    fsi, pdi = "\u2068", "\u2069"
    isolated = f"{fsi}{city}{pdi}, {fsi}Saudi Arabia{pdi} ({fsi}SA{pdi})"
    assert f"Location: {isolated}\n" in text
    assert isolated in slack_text(data, Category.MISSED)
    # Left-to-right places need no isolates in plain text.
    plain, _ = parts(render(category_body(Category.MISSED), Category.MISSED))
    assert "Location: Brno, Czech Republic (CZ)\n" in plain


def test_repeated_message_styles_are_shared_classes_not_inline() -> None:
    conversation = long_conversation(300)
    message = (
        renderer_for("en", max_html_bytes=10_000_000)
        .email(conversation, Category.LOW_RATED, EMAIL_ACTION, message_id=MESSAGE_ID)
        .message
    )
    _, html = parts(message)
    assert html.count('class="m ') == 300
    # One shared block styles every message; each message keeps only its border inline.
    assert html.count("<style data-shared>") == 1
    assert ".m { margin: 0 0 6px 0;" in html
    borders = re.findall(r'<div class="m (mv|ma)" style="([^"]*)"', html)
    assert len(borders) == 300
    assert {style for _, style in borders} == {
        "border-left: 4px solid #2563eb;",
        "border-left: 4px solid #16a34a;",
    }
    for tag in ("<b ", "<bdi ", '<span class="t" '):
        assert tag not in html
    inline = sum(len(style) for style in re.findall(r' style="[^"]*"', html))
    assert inline < 20_000


def test_a_templates_dir_that_is_no_directory_is_refused(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "templates.txt"
    not_a_dir.write_text("x")
    with pytest.raises(ConfigError, match=r"^render\.templates_dir: .* is not a directory$"):
        renderer_for("en", templates_dir=str(not_a_dir))
