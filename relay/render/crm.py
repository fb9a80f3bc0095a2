"""A CRM or help desk action made into content: one conversation as neutral fields, purely."""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING

from relay.model.category import Category
from relay.model.conversation import Conversation, SenderKind
from relay.model.crm import CrmContent, Message, one_line
from relay.routing.rules import CrmAction, HubSpotAction, PipedriveAction

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

PHONE_VARIABLES = ("phone", "telephone", "tel", "mobile")


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    """Built on first use: a relay without CRM actions imports no Jinja in its process."""
    from jinja2 import ChainableUndefined  # noqa: PLC0415 -- see above
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: PLC0415 -- see above

    return ImmutableSandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else ""


def _author(conversation: Conversation, kind: SenderKind, name: str | None) -> str:
    if kind is SenderKind.VISITOR:
        return conversation.visitor.display_name or "Visitor"
    if kind is SenderKind.AGENT:
        return name or "Agent"
    return name or "System"


def _link(action: CrmAction, conversation: Conversation) -> str | None:
    """The action's link template over the conversation's ids; None unless it renders to one
    http(s) URL without spaces or quotes."""
    if action.link is None:
        return None
    template = _environment().from_string(action.link)
    url = template.render(
        account_id=conversation.account_id, chat_id=conversation.channel.id, key=conversation.key
    )
    if not url.startswith(("https://", "http://")) or any(c in url for c in " \t\r\n\"'<>"):
        return None
    return url[:2000]


def render_crm(
    action: CrmAction, raw: bytes, conversation: Conversation, category: Category
) -> CrmContent:
    """Pure: the same body and action always give the same content."""
    visitor = conversation.visitor
    variables = {key: var.text for key, var in visitor.variable_items.items()}
    phone = next(
        (v for k, v in variables.items() if k.lower() in PHONE_VARIABLES and v.strip()), None
    )
    messages = tuple(
        Message(_when(m.sent), _author(conversation, m.sender[0], m.name), m.content or "")
        for m in conversation.messages
    )
    template = (
        action.title
        if isinstance(action, PipedriveAction)
        else ("" if isinstance(action, HubSpotAction) else action.subject)
    )
    names = {
        "name": visitor.display_name,
        "email": visitor.email_address,
        "key": conversation.key,
        "category": category.value,
        "country": visitor.country or visitor.country_code,
    }
    title = one_line(_environment().from_string(template).render(**names)) if template else ""
    tags = tuple(getattr(action, "tags", ()))
    return CrmContent(
        system=action.type,
        conversation_key=conversation.key,
        revision=hashlib.sha256(raw).hexdigest()[:12],
        category=category.value,
        email=visitor.email_address,
        name=visitor.display_name,
        phone=phone.strip() if phone else None,
        country=visitor.country or visitor.country_code,
        title=title or f"Smartsupp chat {conversation.key}",
        link=_link(action, conversation),
        messages=messages,
        variables=variables,
        rating=conversation.channel.rating,
        rating_text=conversation.channel.rating_desc,
        tags=tags,
        priority=getattr(action, "priority", "medium"),
    )
