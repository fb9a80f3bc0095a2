"""The email's bytes written directly from the renderer's draft (``mime.Draft.flat``) against
the message object flattened by the stdlib (``headers.flatten``): the same headers, structure
and decoded bodies for sample and hostile conversations, the same size estimate, header folds
written without the stdlib only where they equal its own, and a failed check falling back to
the message object, which is refused as before."""

from __future__ import annotations

import email.policy
import json
import random
import re
import string
from datetime import UTC, datetime, timedelta, timezone
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from relay.config.settings import EmailAction
from relay.intake.payload import parse
from relay.model.category import Category, classify
from relay.model.content import EmailContent
from relay.model.conversation import Conversation
from relay.render.headers import UnsafeHeaders, flatten
from relay.render.mime import MimeBuilder, direct_fold, new_boundary
from relay.render.pool import flattened
from relay.render.renderer import Renderer, flattened_size
from tests.support.render import (
    EMAIL_ACTION,
    FROM_ADDRESS,
    MESSAGE_ID,
    category_body,
    conversation_for,
    long_conversation,
    renderer_for,
)

THREAD = ("<first@relay.example>", "<second@relay.example>")
HOSTILE_NAMES = (
    "Eve\r\nBcc: x@evil.test",
    "=?utf-8?q?x=0D=0ABcc:_v@evil.test?=",
    "Jana Nováková",
    "محمد العلي",
    "invoice\u202egpj.exe\u2066x\u2069",
    "Ann " * 60,
    '"Eve, x" <a@evil.test>',
    'J. R. "Bob" O\'Neil (admin)',
    # Too long for its line with the quotes a leading "." needs: folded without them, as
    # CPython folds a long quoted name, such a name is a phrase its own parser fails on.
    ".Bcc: e@evil.test" + "x" * 61,
    "." + "x" * 80,
    ". . ." + " word" * 20,
)
HOSTILE_TEXTS = (
    "<script>alert('x')</script></td><img src=x onerror=alert(1)>",
    "line one\r\nBcc: y@evil.test\r\n\r\nbody?",
    "=?utf-8?b?QmNjOiB4QGV2aWwudGVzdA==?= and =?utf-8?q?=0D=0A?=",
    "Příliš žluťoučký kůň úpěl ďábelské ódy. " * 40,
    "x" * 3000,
    "--===============0000000000000000000==\r\n--===============1234==--",
    "{{ 7*7 }} {% for x in range(3) %}loop{% endfor %} <!channel>",
    "\x00\x1b\x7f\u2028\u2029 tabs\tand\fforms",
)


def hostile(name: str, text: str, category: Category = Category.MISSED) -> Conversation:
    data = category_body(category)
    data["visitor"]["name"] = name
    data["channel"]["ratingDesc"] = text
    for message in data["messages"]:
        if message["type"] == "visitor":
            message["name"] = name
            message["content"] = text
    conversation = parse(json.dumps(data).encode())
    assert classify(conversation) is category
    return conversation


def cases() -> list[tuple[str, Renderer, Conversation, Category, dict[str, Any]]]:
    found: list[tuple[str, Renderer, Conversation, Category, dict[str, Any]]] = []
    for locale in ("en", "cs", "de"):
        renderer = renderer_for(locale)
        for category in Category:
            found.append((f"{locale}-{category.value}", renderer, *sample(category), {}))
            thread = {"references": THREAD}
            found.append((f"{locale}-{category.value}-thread", renderer, *sample(category), thread))
    renderer = renderer_for("cs")
    found.append(("long", renderer, long_conversation(2_000), Category.LOW_RATED, {}))
    for n, name in enumerate(HOSTILE_NAMES):
        for m, text in enumerate(HOSTILE_TEXTS):
            references = {"references": (*THREAD, "<two\r\nBcc: x@evil.test>", "=?x?=")}
            options = references if (n + m) % 2 else {}
            found.append(
                (f"hostile-{n}-{m}", renderer, hostile(name, text), Category.MISSED, options)
            )
    return found


def sample(category: Category) -> tuple[Conversation, Category]:
    return conversation_for(category), category


def read(data: bytes) -> EmailMessage:
    message = BytesParser(_class=EmailMessage, policy=email.policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


def described(message: EmailMessage) -> list[Any]:
    """Every header's decoded value, the structure, and every part's decoded body."""
    found: list[Any] = []
    for depth, part in walk(message, 0):
        headers = [(name, str(value)) for name, value in part.items()]
        # The boundaries are random: compared as present, not by value.
        headers = [(n, re.sub(r'boundary="[^"]+"', "boundary=B", v)) for n, v in headers]
        body = None if part.is_multipart() else part.get_content()
        found.append((depth, part.get_content_type(), part.get_filename(), headers, body))
        found.append([str(defect) for defect in part.defects])
    return found


def walk(message: EmailMessage, depth: int) -> list[tuple[int, EmailMessage]]:
    found = [(depth, message)]
    for part in message.iter_parts() if message.is_multipart() else ():
        assert isinstance(part, EmailMessage)
        found.extend(walk(part, depth + 1))
    return found


def same_boundaries(data: bytes) -> bytes:
    for boundary in set(re.findall(rb'boundary="([^"]+)"', data)):
        data = data.replace(boundary, b"BOUNDARY-%d" % len(boundary))
    return data


CASES = cases()


@pytest.mark.parametrize(
    ("renderer", "conversation", "category", "options"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_the_bytes_written_directly_are_the_bytes_the_stdlib_writes(
    renderer: Renderer, conversation: Conversation, category: Category, options: dict[str, Any]
) -> None:
    content = renderer.email(conversation, category, EMAIL_ACTION, message_id=MESSAGE_ID, **options)
    assert content.source is not None
    direct = content.source.flat()
    assert direct is not None
    stdlib = flatten(content.source.message())
    assert described(read(direct)) == described(read(stdlib))
    # Byte for byte, but for the random boundaries (36 characters in both).
    assert same_boundaries(direct) == same_boundaries(stdlib)
    # The size estimate the renderer keeps an email within is the message object's.
    assert content.source.size() == flattened_size(content.source.message())
    assert content.message_id == str(content.message["Message-ID"]) == MESSAGE_ID


def test_the_render_helper_sends_the_direct_bytes_and_keeps_smtputf8_on_the_old_path() -> None:
    conversation = conversation_for(Category.MISSED)
    content = renderer_for().email(
        conversation, Category.MISSED, EMAIL_ACTION, message_id=MESSAGE_ID
    )
    flat = flattened(content, FROM_ADDRESS).flat
    assert flat is not None and flat.utf8 is False and flat.message_id == MESSAGE_ID
    assert described(read(flat.data)) == described(read(flatten(content.message)))
    # A non-ASCII envelope needs SMTPUTF8 headers: those still come from the stdlib.
    action = EmailAction(type="email", to=["sales@shop.example"], bcc=["zoë@shop.example"])
    wide = renderer_for().email(conversation, Category.MISSED, action, message_id=MESSAGE_ID)
    assert wide.flat_for(utf8=True, eight_bit=True) is None
    flat = flattened(wide, FROM_ADDRESS).flat
    assert flat is not None and flat.utf8 is True
    assert described(read(flat.data)) == described(read(flatten(wide.message, utf8=True)))


def test_a_message_handed_out_is_flattened_as_it_is_now() -> None:
    content = renderer_for().email(
        conversation_for(Category.MISSED), Category.MISSED, EMAIL_ACTION, message_id=MESSAGE_ID
    )
    content.message["X-Changed"] = "after rendering"
    assert content.flat_for(utf8=False, eight_bit=True) is None
    assert read(flattened(content, FROM_ADDRESS).message.as_bytes())["X-Changed"] is not None
    flat = flattened(content, FROM_ADDRESS).flat
    assert flat is not None and b"X-Changed: after rendering\r\n" in flat.data


def test_headers_that_fail_the_check_leave_the_message_for_the_sender_to_refuse() -> None:
    builder = MimeBuilder()
    forged = "Hi =?utf-8?q?x=0D=0ABcc:_v@evil.test?="  # not through header_safe
    fields = [
        ("From", builder.header("From", "R <r@shop.test>")),
        ("To", builder.header("To", "sales@shop.test")),
        ("Subject", forged),
        ("Message-ID", "<m@shop.test>"),
    ]
    draft = builder.draft(fields, text="hello\n", html="<p>hello</p>", attachment=None, filename="")
    unsafe = False
    try:
        flatten(draft.message())
    except UnsafeHeaders:
        unsafe = True
    direct = draft.flat()
    # Where the stdlib writes the decoded CR/LF out (CVE-2024-6923), both refuse; where it
    # does not, both give the same one Subject line.
    if unsafe:
        assert direct is None
        content = flattened(
            EmailContent(recipients=("sales@shop.test",), source=draft), "R <r@shop.test>"
        )
        assert content.flat is None
    else:
        assert direct is not None
        assert described(read(direct)) == described(read(flatten(draft.message())))
        assert b"\r\nBcc:" not in direct.partition(b"\r\n\r\n")[0]


def test_a_bcc_header_is_never_written_directly() -> None:
    builder = MimeBuilder()
    fields = [
        ("From", builder.header("From", "R <r@shop.test>")),
        ("To", builder.header("To", "sales@shop.test")),
        ("Bcc", "hidden@shop.test"),
    ]
    draft = builder.draft(fields, text="hello\n", html="<p>hello</p>", attachment=None, filename="")
    assert draft.flat() is None


def stdlib_fold(name: str, value: Any) -> bytes:
    policy = email.policy.SMTP
    return policy.fold_binary(name, policy.header_factory(name, value))


def test_header_folds_written_directly_are_the_stdlib_folds() -> None:
    chooser = random.Random(19)  # noqa: S311 -- test data
    alphabet = string.ascii_letters + string.digits + string.punctuation + "  "
    values = [
        "".join(chooser.choice(alphabet) for _ in range(chooser.randrange(1, 90)))
        for _ in range(3_000)
    ]
    printable = string.ascii_letters + string.digits + string.punctuation
    words = ["".join(chooser.choice(printable) for _ in range(n)) for n in range(1, 80)]
    short = words[:12]
    values += [" ".join(chooser.choices(short, k=chooser.randrange(1, 40))) for _ in range(1500)]
    values += [" ".join(chooser.choices(words, k=chooser.randrange(1, 8))) for _ in range(1500)]
    # Lengths around the line's end: one line, the whole value on the next, word by word.
    values += [" ".join(["ab"] * n) + tail for n in range(20, 45) for tail in ("", " x", "yz")]
    values += [
        "<a.b@c.d>",
        "<a..b@c>",
        "<.a@b>",
        "<a@b.>",
        "<a_b-c@d-e.f>",
        "<a@[1.2.3.4]>",
        "<a b@c>",
        "a@b",
        "<a@b> trailing",
        "(comment) x",
        '"quoted" x',
        "= ?utf-8?q?x?=",
        "=?utf-8?q?x?=",
        " leading",
        "trailing ",
        "two  spaces",
        "",
        "x" * 69,
        "x" * 70,
        "y " * 34,
        "ü",
    ]
    direct = 0
    for name in ("Subject", "Message-ID", "In-Reply-To", "References", "Auto-Submitted", "To"):
        for value in values:
            written = direct_fold(name, value)
            if written is not None:
                direct += 1
                assert written == stdlib_fold(name, value), (name, value)
    assert direct > 3_000  # the cases the direct path is for were among them
    folded = [
        direct_fold("Subject", value) or b""
        for value in values
        if len(value) > 78 and direct_fold("Subject", value)
    ]
    assert len(folded) > 500 and all(b"\r\n " in value for value in folded)
    zones = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))
    for zone in zones:
        for day in range(0, 400, 7):
            date = datetime(2026, 1, 1, 9, 5, 7, tzinfo=zone) + timedelta(days=day, seconds=day)
            assert direct_fold("Date", date) == stdlib_fold("Date", date)
    assert direct_fold("Date", datetime(2026, 1, 1)) == stdlib_fold("Date", datetime(2026, 1, 1))
    assert direct_fold("Subject", datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert direct_fold("To", "a@b") is None  # address headers always go through the stdlib
    assert direct_fold("Subject", "Příliš") is None
    assert direct_fold("Subject", "a\r\nBcc: x@evil.test") is None


def test_every_boundary_folds_as_the_placeholder() -> None:
    builder = MimeBuilder()
    policy = email.policy.SMTP
    for _ in range(50):
        boundary = new_boundary()
        for subtype in ("alternative", "mixed"):
            value = f'multipart/{subtype}; boundary="{boundary}"'
            expected = policy.fold_binary(
                "Content-Type", policy.header_factory("Content-Type", value)
            )
            assert builder.boundary_header(subtype, boundary) == expected


def test_reply_to_addresses_written_directly_are_the_stdlib_folds() -> None:
    chooser = random.Random(5)  # noqa: S311 -- test data
    names = [*HOSTILE_NAMES, "", "Dusan Kmet", "Ann O'Neil", "a-b_c 9", "x" * 60, "Ann " * 30]
    names += ["".join(chooser.choices(string.ascii_letters + " .'-_", k=n)) for n in range(40)]
    users = ["dusan", "a.b", "a+tag", "x_y-z", "a..b", ".a", "ü", "a b", "a" * 70]
    domains = ["domain.com", "a-b.example", "x", "a..b", "[1.2.3.4]", "é.cz", "d" * 70]
    direct = 0
    for name in names:
        for user in users:
            for domain in domains:
                try:
                    address = Address(display_name=name, username=user, domain=domain)
                except (ValueError, IndexError, HeaderParseError):
                    continue
                written = direct_fold("Reply-To", address)
                if written is not None:
                    direct += 1
                    assert written == stdlib_fold("Reply-To", address), address
                    header = email.policy.SMTP.header_factory("Reply-To", address)
                    assert [a.addr_spec for a in header.addresses] == [address.addr_spec]
    assert direct > 100
    plain = Address(display_name="Ann", username="ann", domain="shop.example")
    assert direct_fold("From", plain) is None  # only Reply-To is written this way


def test_a_renderer_that_rendered_many_emails_writes_each_as_a_new_one_would() -> None:
    """What a renderer keeps from email to email (quoted-printable lines, durations,
    envelopes, header folds) changes no byte: the sample cases and every third hostile one,
    rendered in turn on one renderer per locale (twice, the second time from what the
    first kept), give the bytes a renderer that never rendered before gives them."""
    chosen = [
        case for n, case in enumerate(CASES) if not case[0].startswith("hostile") or n % 3 == 0
    ]
    warm = {locale: renderer_for(locale) for locale in ("en", "cs", "de")}
    expected: dict[str, bytes] = {}
    for name, renderer, conversation, category, options in chosen:
        fresh = renderer_for(renderer._translator.locale).email(
            conversation, category, EMAIL_ACTION, message_id=MESSAGE_ID, **options
        )
        flat = flattened(fresh, FROM_ADDRESS).flat
        assert flat is not None
        expected[name] = same_boundaries(flat.data)
    for _ in range(2):
        for name, renderer, conversation, category, options in chosen:
            again = warm[renderer._translator.locale].email(
                conversation, category, EMAIL_ACTION, message_id=MESSAGE_ID, **options
            )
            assert again.recipients == tuple(EMAIL_ACTION.to + EMAIL_ACTION.cc), name
            flat = flattened(again, FROM_ADDRESS).flat
            assert flat is not None, name
            assert same_boundaries(flat.data) == expected[name], name


def test_a_date_folded_by_one_builder_is_the_date_folded_afresh() -> None:
    """The builder remembers the last Date it folded (its second and UTC offset): every
    Date, in turn on one builder, folds as ``direct_fold`` folds it alone (as the stdlib
    writes it): within one second and across seconds, the same instant in other zones,
    both sides of a repeated hour, and a naive datetime."""
    london = ZoneInfo("Europe/London")
    start = datetime(2026, 10, 25, 0, 59, 59, 999_999, tzinfo=UTC)
    moments = [start + timedelta(microseconds=step * 250_001) for step in range(12)]
    moments += [
        m.astimezone(timezone(timedelta(hours=h, minutes=30)))
        for m in moments[:4]
        for h in (-3, 0, 5)
    ]
    moments += [
        datetime(2026, 10, 25, 1, 30, 5, micro, tzinfo=london, fold=f)
        for f in (0, 1, 0)
        for micro in (0, 7)
    ]
    moments += [datetime(2026, 10, 25, 1, 30, 5), datetime(2026, 10, 25, 1, 30, 5, 1)]
    builder = MimeBuilder()
    for moment in moments * 2:
        value, folded = builder.field("Date", moment)
        assert value is moment
        assert folded == direct_fold("Date", moment), moment
