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
    return tuple((c, category) for category in Category for c in (empty, full))
