"""From one planned action to its content: the one place that picks how each action type renders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.leads.links import LeadLinks
from relay.model.category import Category
from relay.model.content import Content
from relay.model.conversation import Conversation
from relay.render.actions import render_archive, render_webhook
from relay.render.crm import render_crm
from relay.routing.rules import (
    AnyAction,
    CrmAction,
    EmailAction,
    SlackAction,
    TeamsAction,
    WebhookAction,
)

if TYPE_CHECKING:  # the caller has one; the relay's process builds one only when it renders
    from relay.render.renderer import Renderer


@dataclass(frozen=True)
class Job:
    """One action to render for one conversation. ``rule`` and ``delivery_id`` go into webhook
    bodies and archive lines; ``message_id`` into emails; ``earlier`` (the visitor's earlier
    conversations as (category, Unix seconds), from the store's ``visitor_history``) into
    emails and Slack messages; ``follow_up`` (a lead's claim and done links) into emails
    about a lead; ``references`` (the Message-IDs of the visitor's earlier emails that were
    sent, oldest first, from the store's ``sent_email_ids``) into emails."""

    raw: bytes
    conversation: Conversation
    category: Category
    action: AnyAction
    rule: str
    delivery_id: int
    message_id: str = ""
    earlier: tuple[tuple[str, float], ...] = ()
    follow_up: LeadLinks | None = None
    references: tuple[str, ...] = ()


def render(job: Job, renderer: Renderer) -> Content:
    """``renderer`` renders emails, Slack messages and Teams cards (the caller picks it by
    From address); webhook bodies, archive lines and CRM content need no templates of it."""
    action = job.action
    if isinstance(action, EmailAction):
        return renderer.email(
            job.conversation,
            job.category,
            action,
            message_id=job.message_id,
            earlier=job.earlier,
            follow_up=job.follow_up,
            references=job.references,
        )
    if isinstance(action, SlackAction):
        return renderer.slack(job.conversation, job.category, action, earlier=job.earlier)
    if isinstance(action, CrmAction):
        return render_crm(action, job.raw, job.conversation, job.category)
    if isinstance(action, TeamsAction):
        return renderer.teams(job.conversation, job.category, follow_up=job.follow_up)
    if isinstance(action, WebhookAction):
        return render_webhook(
            action,
            job.raw,
            job.conversation,
            job.category,
            rule=job.rule,
            delivery_id=job.delivery_id,
            bodies=renderer.bodies,
        )
    return render_archive(
        action, job.raw, job.conversation, job.category, rule=job.rule, delivery_id=job.delivery_id
    )
