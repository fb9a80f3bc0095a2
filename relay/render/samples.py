"""Built-in sample conversations that check() renders every template with (empty and full)."""

from __future__ import annotations

from functools import cache

from relay.model.category import Category
from relay.model.conversation import Channel, Conversation, Message, Page, Variable, Visitor

_BEGIN = 1_700_000_000_000


@cache
def check_conversations() -> tuple[tuple[Conversation, Category], ...]:
    """The smallest valid conversation, and one that sets every field, in every category."""
    empty = Conversation(account_id=0, channel=Channel(id=0))
    full = Conversation(
        account_id=1,
        channel=Channel(
            id=2,
            is_chat=True,
            duration=125,
            avg_response=20,
            first_response=12,
            messages_count=4,
            rating=2,
            rating_desc="Slow answer",
        ),
        begin_at=_BEGIN,
        end_at=_BEGIN + 125_000,
        visitor_or_none=Visitor(
            id=7,
            name="Sample Visitor",
            email="visitor@example.com",
            note="Note",
            group="sales",
            city="Brno",
            country="Czechia",
            country_code="CZ",
            ip_address="192.0.2.1",
            platform="Linux",
            user_agent="Mozilla/5.0",
            referer="https://example.com/",
            variables={"plan": Variable(label="Plan", value="pro")},
        ),
        paths_or_none=(Page(url="https://example.com/pricing", title="Pricing"),),
        messages_or_none=(
            Message(type="visitor", from_="visitor:1", content="Hello", sent_at=_BEGIN),
            Message(type="system", name="Agent", from_=3, content="agent.join", sent_at=_BEGIN),
            Message(
                type="agent", name="", content="Welcome", triggered_by="Trigger", sent_at=_BEGIN
            ),
            Message(type="agent", name="Agent", from_=3, content="Hi", sent_at=_BEGIN + 1000),
            Message(type="visitor", content="Offline", email="visitor@example.com"),
            Message(type="system", content="close.visitorClose", sent_at=_BEGIN + 125_000),
        ),
    )
    # Everything the action row and the transcript can show: phone numbers, links, an
    # unknown sender, many pages, no visitor address (the offline form's instead).
    lead = Conversation(
        account_id=3,
        channel=Channel(id=4, is_offline=True, rating=1, rating_desc="Bad\nservice"),
        begin_at=_BEGIN,
        visitor_or_none=Visitor(id="v9", name="محمد العلي"),
        paths_or_none=tuple(
            Page(url=f"https://example.com/{n}", title=f"Page {n}") for n in range(8)
        ),
        messages_or_none=(
            Message(type="visitor", content="Hi", sent_at=_BEGIN),
            Message(
                type="visitor",
                content="Call +420 603 123 456, see https://example.com/a?b=1&c=2.\nThanks",
                email="buyer@example.com",
                sent_at=_BEGIN + 86_400_000,
            ),
            Message(type="bot", from_="bot:1", content="?"),
        ),
    )
    return tuple((c, category) for category in Category for c in (empty, full, lead))
