"""The lead value and its state machine: pure functions from one frozen lead to the next."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, replace

from relay.model.category import Category
from relay.model.conversation import Conversation, SenderKind

# Categories that become leads unless a matching rule says ``follow_up = false``.
DEFAULT_CATEGORIES = frozenset({Category.MISSED, Category.OFFLINE})


class LeadState(enum.StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    DONE = "done"
    ANSWERED = "answered-in-chat"


@dataclass(frozen=True)
class Lead:
    id: int
    conv_key: str
    category: str
    created_at: float
    state: LeadState = LeadState.OPEN
    visitor_id: str | None = None
    visitor_email: str | None = None
    visitor_name: str | None = None
    claimed_by: str | None = None
    claimed_at: float | None = None
    done_by: str | None = None
    done_at: float | None = None
    note: str | None = None
    answered_at: float | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "conversation": self.conv_key,
            "category": self.category,
            "state": self.state.value,
            "created_at": self.created_at,
            "visitor_id": self.visitor_id,
            "visitor_email": self.visitor_email,
            "visitor_name": self.visitor_name,
            "claimed_by": self.claimed_by,
            "claimed_at": self.claimed_at,
            "done_by": self.done_by,
            "done_at": self.done_at,
            "note": self.note,
            "answered_at": self.answered_at,
        }


@dataclass(frozen=True)
class Refused:
    """Why a transition does not apply, with the lead as it is (for "already taken by X")."""

    reason: str  # "taken", "finished", "answered", "not_claimed"
    lead: Lead


MAX_NAME = 80
MAX_NOTE = 2000


def clean_name(text: str) -> str:
    """A claimer's name as shown: one line, control characters removed, at most 80 chars."""
    kept = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(kept.split())[:MAX_NAME]


def clean_note(text: str) -> str:
    kept = "".join(c for c in text if c.isprintable() or c == "\n")
    return kept.strip()[:MAX_NOTE]


def _closed(lead: Lead) -> Refused | None:
    if lead.state is LeadState.DONE:
        return Refused("finished", lead)
    if lead.state is LeadState.ANSWERED:
        return Refused("answered", lead)
    return None


def claim(lead: Lead, by: str, at: float) -> Lead | Refused:
    """open -> claimed. Claiming again by the same name is a no-op; by anyone else, refused."""
    closed = _closed(lead)
    if closed is not None:
        return closed
    if lead.state is LeadState.CLAIMED:
        return lead if lead.claimed_by == by else Refused("taken", lead)
    return replace(lead, state=LeadState.CLAIMED, claimed_by=by, claimed_at=at)


def finish(lead: Lead, by: str, at: float, note: str | None = None) -> Lead | Refused:
    """open or claimed -> done. An open lead is claimed by the finisher on the way; a lead
    claimed by someone else may still be finished (the claimer may have asked a colleague)."""
    closed = _closed(lead)
    if closed is not None:
        return closed
    claimed = lead if lead.state is LeadState.CLAIMED else claim(lead, by, at)
    assert isinstance(claimed, Lead)
    return replace(claimed, state=LeadState.DONE, done_by=by, done_at=at, note=(note or None))


def answered_in_chat(lead: Lead, at: float) -> Lead | Refused:
    """open -> answered-in-chat: a later conversation of the same visitor was answered."""
    if lead.state is not LeadState.OPEN:
        return Refused("taken" if lead.state is LeadState.CLAIMED else "finished", lead)
    return replace(lead, state=LeadState.ANSWERED, answered_at=at)


def wants_follow_up(category: Category, rule_choices: Iterable[bool | None]) -> bool:
    """Whether a conversation becomes a lead: the matched rules' ``follow_up`` settings decide
    (any true wins over false); none given, missed and offline conversations do."""
    given = [choice for choice in rule_choices if choice is not None]
    if given:
        return any(given)
    return category in DEFAULT_CATEGORIES


@dataclass(frozen=True)
class LeadFacts:
    """What intake stores about a conversation for leads: whether it becomes one, who the
    visitor is, and whether an agent answered (which settles the visitor's open leads)."""

    follow_up: bool
    answered: bool
    visitor_id: str | None = None
    visitor_email: str | None = None
    visitor_name: str | None = None


def lead_facts(conversation: Conversation, category: Category, follow_up: bool) -> LeadFacts:
    visitor = conversation.visitor
    answered = category not in DEFAULT_CATEGORIES and any(
        m.sender[0] is SenderKind.AGENT for m in conversation.messages
    )
    email = visitor.email_address
    return LeadFacts(
        follow_up=follow_up,
        answered=answered,
        visitor_id=None if visitor.id in (None, "") else str(visitor.id),
        visitor_email=email.lower() if email else None,
        visitor_name=visitor.display_name,
    )
