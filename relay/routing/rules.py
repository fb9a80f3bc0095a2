"""The routing language: rules, their matchers and actions, validated (and compiled) at load."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
    model_validator,
)

from relay.config.addresses import Addresses
from relay.config.section import Section
from relay.model.category import Category
from relay.model.conversation import variable_text
from relay.model.urls import http_url

FALLBACK_RULE = "fallback"
WEEKDAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _one_or_many(value: Any) -> Any:
    """Let a list-valued key also take a single value: ``category = "missed"``."""
    return value if isinstance(value, list | tuple) else [value]


def _compile_regex(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return re.compile(value)
        except re.error as exc:
            raise ValueError(f"invalid regex {value!r}: {exc}") from None
    return value


OneOrMany = BeforeValidator(_one_or_many)
Regex = Annotated[
    re.Pattern[str],
    BeforeValidator(_compile_regex),
    PlainSerializer(lambda p: p.pattern, return_type=str),
]
Scalar = Annotated[str, BeforeValidator(lambda v: variable_text(v) if v is not None else v)]


def _weekday(name: str, item: str) -> int:
    wanted = name.strip().lower()
    for index, full in enumerate(WEEKDAY_NAMES):
        if len(wanted) >= 3 and full.startswith(wanted):
            return index
    raise ValueError(f"unknown weekday {item!r} (use mon..sun or a range like mon-fri)")


def _parse_weekdays(items: list[str]) -> frozenset[int]:
    days: set[int] = set()
    for item in items:
        first, _, last = item.partition("-")
        start, end = _weekday(first, item), _weekday(last or first, item)
        days.update(range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)])
    return frozenset(days)


def _minute(text: str, item: str) -> int:
    hours, sep, minutes = text.strip().partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise ValueError(f"bad hours range {item!r} (use HH:MM-HH:MM, e.g. 09:00-17:30)")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > 24 * 60:
        raise ValueError(f"bad time {text.strip()!r} in {item!r}")
    return value


def _parse_hours(items: list[str]) -> tuple[tuple[int, int], ...]:
    ranges = []
    for item in items:
        start, sep, end = item.partition("-")
        if not sep:
            raise ValueError(f"bad hours range {item!r} (use HH:MM-HH:MM, e.g. 09:00-17:30)")
        low, high = _minute(start, item), _minute(end, item)
        if low == high:
            raise ValueError(f"empty hours range {item!r}")
        ranges.append((low, high))
    return tuple(ranges)


class TimeWindow(Section):
    """Weekdays and hours in a time zone. ``active``: the rule matches only inside the window;
    ``mute``: only outside it. A range whose end is before its start wraps past midnight."""

    mode: Literal["active", "mute"] = "active"
    timezone: str
    weekdays: list[str] = ["mon-sun"]
    hours: list[str] = ["00:00-24:00"]

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value

    @field_validator("weekdays")
    @classmethod
    def _check_weekdays(cls, value: list[str]) -> list[str]:
        _parse_weekdays(value)
        return value

    @field_validator("hours")
    @classmethod
    def _check_hours(cls, value: list[str]) -> list[str]:
        _parse_hours(value)
        return value

    # Parsed on first use and kept (the validators above already proved they parse).
    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def days(self) -> frozenset[int]:
        return _parse_weekdays(self.weekdays)

    @cached_property
    def minute_ranges(self) -> tuple[tuple[int, int], ...]:
        return _parse_hours(self.hours)


class VariableMatch(Section):
    """Conditions on one visitor variable (all given must hold)."""

    present: bool | None = None
    equals: Scalar | None = None
    one_of: Annotated[list[Scalar], OneOrMany] | None = None
    regex: Regex | None = None

    @model_validator(mode="after")
    def _something(self) -> VariableMatch:
        if self.present is None and self.equals is None and self.one_of is None and not self.regex:
            raise ValueError("give at least one of present, equals, one_of, regex")
        return self


class Match(Section):
    """Matchers of one rule; every matcher given must hold (AND). None given: always matches."""

    category: Annotated[list[Category], OneOrMany] | None = None
    rating_min: int | None = None
    rating_max: int | None = None
    has_rating: bool | None = None
    account_id: Annotated[list[int], OneOrMany] | None = None
    country_code: Annotated[list[str], OneOrMany] | None = None
    group: Annotated[list[Scalar], OneOrMany] | None = None
    has_email: bool | None = None
    variables: dict[str, VariableMatch] | None = None
    message_regex: Regex | None = None
    triggered: bool | None = None
    triggered_by: Annotated[list[str], OneOrMany] | None = None
    duration_min: int | None = Field(default=None, ge=0)
    duration_max: int | None = Field(default=None, ge=0)
    messages_min: int | None = Field(default=None, ge=0)
    messages_max: int | None = Field(default=None, ge=0)
    time: TimeWindow | None = None

    @field_validator("country_code")
    @classmethod
    def _upper(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [code.upper() for code in value]


class EmailAction(Section):
    type: Literal["email"]
    to: Addresses = Field(min_length=1)
    cc: Addresses = []
    bcc: Addresses = []
    template: str = "transcript"
    subject: str | None = None
    # A [destinations.smtp.NAME] server; None: the [smtp] section.
    destination: str | None = None


class SlackAction(Section):
    type: Literal["slack"]
    channel: str | None = None
    template: str = "alert"
    # A [destinations.slack.NAME] workspace or webhook; None: the [slack] section.
    destination: str | None = None


class WebhookAction(Section):
    """POST to a named destination (URL, secret, headers) or a plain ``url``. Without ``body``
    the conversation is posted exactly as Smartsupp sent it; ``body`` is a JSON template."""

    type: Literal["webhook"]
    destination: str | None = None
    url: str | None = None
    body: dict[str, Any] | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("body")
    @classmethod
    def _template_compiles(cls, value: Any) -> Any:
        if isinstance(value, dict):
            from jinja2 import TemplateSyntaxError  # noqa: PLC0415 -- Jinja only where templates are

            from relay.render.templating import BodyTemplates  # noqa: PLC0415 -- imports Jinja

            try:
                BodyTemplates().compile(value)
            except TemplateSyntaxError as exc:
                raise ValueError(f"template error: {exc.message} in {exc.source!r}") from None
        return value

    @model_validator(mode="after")
    def _one_target(self) -> WebhookAction:
        if (self.destination is None) == (self.url is None):
            raise ValueError("give exactly one of destination or url")
        return self


class ArchiveAction(Section):
    """Append one JSON line per delivery; a relative ``path`` is under ``storage.state_dir``."""

    type: Literal["archive"]
    path: str = Field(min_length=1)


# The CRM and help desk action types (senders in relay/senders/crm/).
CRM_TYPES = ("hubspot", "pipedrive", "freshdesk", "zendesk")
DEFAULT_SUBJECT = "Smartsupp {{ category }} chat from {{ name or email or 'a visitor' }}"


def check_template(value: str) -> str:
    """A subject or title template must compile (sandboxed Jinja, values never re-parsed)."""
    from jinja2 import TemplateSyntaxError  # noqa: PLC0415 -- Jinja only where templates are
    from jinja2.sandbox import ImmutableSandboxedEnvironment  # noqa: PLC0415 -- as above

    try:
        ImmutableSandboxedEnvironment().parse(value)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template error: {exc.message} in {value!r}") from None
    return value


class _CrmAction(Section):
    # A [destinations.<type>.NAME] table: the account and its credential.
    destination: str = Field(min_length=1)
    # A link back to the conversation, shown in the note or ticket: a template over
    # account_id, chat_id and key, e.g. "https://support.example.com/chats/{{ chat_id }}".
    link: str | None = None

    @field_validator("link")
    @classmethod
    def _link_template(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value)
            if not value.startswith(("https://", "http://")):
                raise ValueError(f"{value!r}: a link must start with https:// or http://")
        return value


class HubSpotAction(_CrmAction):
    """Upsert the contact by email, then one note with the transcript on it."""

    type: Literal["hubspot"]


class PipedriveAction(_CrmAction):
    """Find or create the person by email, then one lead with the transcript as its note."""

    type: Literal["pipedrive"]
    title: str = DEFAULT_SUBJECT

    _template = field_validator("title")(check_template)


Priority = Literal["low", "medium", "high", "urgent"]


class _TicketAction(_CrmAction):
    subject: str = DEFAULT_SUBJECT
    tags: list[str] = ["smartsupp"]
    priority: Priority = "medium"

    _template = field_validator("subject")(check_template)

    @field_validator("tags")
    @classmethod
    def _plain_tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not tag or len(tag) > 32 or any(c in tag for c in " ,\r\n\t\0"):
                raise ValueError(f"tag {tag!r}: 1-32 characters, no spaces or commas")
        return value


class FreshdeskAction(_TicketAction):
    """One ticket per conversation; a later version of it adds a private note."""

    type: Literal["freshdesk"]


class ZendeskAction(_TicketAction):
    """One ticket per conversation (``external_id``); a later version adds a private comment."""

    type: Literal["zendesk"]


CrmAction = HubSpotAction | PipedriveAction | FreshdeskAction | ZendeskAction


class TeamsAction(Section):
    """Post an Adaptive Card to a Microsoft Teams Workflows webhook."""

    type: Literal["teams"]
    # A [destinations.teams.NAME] webhook; None: the [teams] section.
    destination: str | None = None


AnyAction = (
    EmailAction
    | SlackAction
    | WebhookAction
    | ArchiveAction
    | TeamsAction
    | HubSpotAction
    | PipedriveAction
    | FreshdeskAction
    | ZendeskAction
)
# "email", "slack", "webhook", "archive", "teams" and the CRM types: each action type's ``type``.
ACTION_TYPES: tuple[str, ...] = tuple(
    get_args(kind.model_fields["type"].annotation)[0] for kind in get_args(AnyAction)
)
Action = Annotated[AnyAction, Field(discriminator="type")]


class Rule(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    match: Match = Match()
    actions: list[Action] = Field(min_length=1)
    continue_: bool = Field(default=False, alias="continue")
    # Whether a matching conversation becomes a lead to follow up; None: missed and offline do.
    follow_up: bool | None = None

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value == FALLBACK_RULE:
            raise ValueError(f"{FALLBACK_RULE!r} is reserved for [routing] fallback")
        return value


@dataclass(frozen=True)
class PlannedDelivery:
    """One action of one matching rule, to be carried out for one conversation (a rule set
    makes each once and every conversation the rule matches shares it)."""

    rule: str
    action: AnyAction

    @property
    def channel(self) -> str:
        return self.action.type

    @cached_property
    def action_key(self) -> str:
        """Identifies the action by content, so an edited rule is a different action."""
        spec = f"{self.rule}\0{self.action.model_dump_json()}"
        return hashlib.sha256(spec.encode()).hexdigest()[:16]

    @cached_property
    def action_json(self) -> str:
        """The action as the stores keep it with each planned delivery."""
        return self.action.model_dump_json(by_alias=True)


@dataclass(frozen=True)
class RuleSet:
    """The rules in order and what happens to a conversation none of them matches."""

    rules: tuple[Rule, ...]
    fallback: tuple[AnyAction, ...] = ()  # empty: unmatched conversations are dropped (logged)

    @property
    def drops_unmatched(self) -> bool:
        return not self.fallback

    @cached_property
    def plans(self) -> tuple[tuple[PlannedDelivery, ...], ...]:
        """Each rule's deliveries (in the order of ``rules``), made once for every conversation
        it matches: their action keys and stored JSON are computed once, not per intake."""
        return tuple(tuple(PlannedDelivery(r.name, a) for a in r.actions) for r in self.rules)

    @cached_property
    def fallback_plans(self) -> tuple[PlannedDelivery, ...]:
        return tuple(PlannedDelivery(FALLBACK_RULE, action) for action in self.fallback)
