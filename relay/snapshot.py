"""An immutable snapshot of everything built from the settings: rules, renderers, senders.

A reload builds a whole new snapshot and swaps it in with one assignment; a request or a
delivery attempt reads the current snapshot once and uses only that.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from relay.config.settings import Settings
from relay.routing.rules import AnyAction, EmailAction, RuleSet, SlackAction
from relay.senders.base import Sender

if TYPE_CHECKING:
    from relay.render.renderer import Renderer


class Renderers:
    """One renderer per From address of the settings, each built when it is first asked for:
    emails and Slack messages render in the render pool's helper processes, so the relay's
    own process builds one (compiled templates, CSS inlined at load: several MB) only for
    what it renders itself (Teams cards, webhook bodies, a render without helpers)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._addresses = frozenset(from_addresses(settings))
        self._built: dict[str, Renderer] = {}
        self._lock = threading.Lock()  # the worker renders in threads (asyncio.to_thread)

    def get(self, from_address: str) -> Renderer:
        """KeyError for an address that is not one of the settings' From addresses."""
        if from_address not in self._addresses:
            raise KeyError(from_address)
        with self._lock:
            renderer = self._built.get(from_address)
            if renderer is None:
                from relay.render.renderer import Renderer  # noqa: PLC0415 -- see the class

                renderer = Renderer(self._settings.render, from_address=from_address)
                self._built[from_address] = renderer
            return renderer

    def built(self) -> list[str]:
        """The From addresses whose renderer has been built so far."""
        with self._lock:
            return list(self._built)


@dataclass(frozen=True)
class Snapshot:
    settings: Settings
    rules: RuleSet
    hook_token: str
    senders: Mapping[str, Sender]  # by ``relay.senders.registry.sender_key``
    renderers: Renderers  # by From address, each built on first use
    link_key: bytes = b""  # signs lead links (relay.leads.links); empty: follow-up is off

    def from_address(self, action: AnyAction) -> str:
        """The From address ``action`` renders with: its mail destination's, else the default."""
        if not isinstance(action, EmailAction) or action.destination is None:
            return self.settings.smtp.from_address
        return self.settings.destinations.smtp[action.destination].from_address

    def renderer(self, from_address: str | None = None) -> Renderer:
        return self.renderers.get(from_address or self.settings.smtp.from_address)


def lease_problem(settings: Settings, senders: Mapping[str, Sender]) -> str | None:
    """On PostgreSQL, why ``storage.lease_seconds`` is too short: a claim must outlast the
    longest send of a destination the settings' actions use (each sender's total deadline),
    or another relay takes the delivery over while it is still being sent and it goes out
    twice. None where it is long enough, or on SQLite (one relay, no leases)."""
    if settings.storage.url is None:
        return None
    from relay.senders.registry import sender_key  # noqa: PLC0415 -- only with PostgreSQL

    used = {sender_key(action.model_dump()) for _, action in settings.actions_by_place()}
    if settings.follow_up.enabled:
        used.add("email")  # escalations and digests
        if any(target.startswith("#") for target in settings.follow_up.escalate_to):
            used.add("slack")  # escalations to a Slack channel (relay.leads.scheduler)
    deadlines = {
        key: deadline
        for key in sorted(used)
        if key in senders and (deadline := senders[key].deadline_seconds) is not None
    }
    if not deadlines:
        return None
    key = max(deadlines, key=lambda k: deadlines[k])
    lease = settings.storage.lease_seconds
    if lease > deadlines[key]:
        return None
    return (
        f"storage.lease_seconds ({lease:g}) must be longer than the longest send deadline"
        f" ({key}: {deadlines[key]:g} s), or a delivery still being sent is taken over by"
        " another relay and sent twice"
    )


def from_addresses(settings: Settings) -> list[str]:
    named = (smtp.from_address for smtp in settings.destinations.smtp.values())
    return list(dict.fromkeys([settings.smtp.from_address, *named]))


def template_problems(settings: Settings) -> list[str]:
    """Every email/Slack template and subject the actions name, compiled and test-rendered;
    each problem names the rule (or the fallback) and the action. Raises ConfigError for bad
    render settings (time zone, templates directory, conversation URL). Only the templates
    named are compiled, by a renderer made for this check alone (``compile_all=False``)."""
    from relay.render.renderer import Renderer  # noqa: PLC0415 -- the relay renders in helpers

    renderer = Renderer(settings.render, from_address=settings.smtp.from_address, compile_all=False)
    problems: list[str] = []
    checked: dict[tuple[str, str], list[str]] = {}
    for where, action in settings.actions_by_place():
        if not isinstance(action, EmailAction | SlackAction):
            continue
        wanted = (action.type, action.template)
        if wanted not in checked:
            checked[wanted] = renderer.check([wanted])
        problems.extend(f"{where}.template: {p}" for p in checked[wanted])
        if isinstance(action, EmailAction) and action.subject is not None:
            problems.extend(f"{where}.subject: {p}" for p in renderer.check_subject(action.subject))
    if settings.follow_up.digest_at is not None:
        problems.extend(f"follow_up.digest: {p}" for p in _digest_problems(settings))
    return problems


def _digest_problems(settings: Settings) -> list[str]:
    """The daily digest's templates (``relay.leads.digest``), when the digest is on."""
    import time  # noqa: PLC0415 -- with the check only
    from zoneinfo import ZoneInfo  # noqa: PLC0415

    from relay.leads import digest  # noqa: PLC0415 -- the relay renders in helpers
    from relay.render.environment import email_environment  # noqa: PLC0415

    window = settings.follow_up.business_hours
    zone = window.zone if window is not None else ZoneInfo(settings.render.timezone)
    environment = email_environment(settings.render.templates_dir)
    return digest.template_problems(environment, settings.render.locale, zone, time.time())
