"""An immutable snapshot of everything built from the settings: rules, renderers, senders.

A reload builds a whole new snapshot and swaps it in with one assignment; a request or a
delivery attempt reads the current snapshot once and uses only that.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from relay.config.settings import Settings
from relay.render.renderer import Renderer
from relay.routing.rules import AnyAction, EmailAction, RuleSet, SlackAction
from relay.senders.base import Sender


@dataclass(frozen=True)
class Snapshot:
    settings: Settings
    rules: RuleSet
    hook_token: str
    senders: Mapping[str, Sender]  # by ``relay.senders.registry.sender_key``
    renderers: Mapping[str, Renderer]  # by From address
    link_key: bytes = b""  # signs lead links (relay.leads.links); empty: follow-up is off

    def from_address(self, action: AnyAction) -> str:
        """The From address ``action`` renders with: its mail destination's, else the default."""
        if not isinstance(action, EmailAction) or action.destination is None:
            return self.settings.smtp.from_address
        return self.settings.destinations.smtp[action.destination].from_address

    def renderer(self, from_address: str | None = None) -> Renderer:
        return self.renderers[from_address or self.settings.smtp.from_address]


def from_addresses(settings: Settings) -> list[str]:
    named = (smtp.from_address for smtp in settings.destinations.smtp.values())
    return list(dict.fromkeys([settings.smtp.from_address, *named]))


def build_renderers(settings: Settings) -> dict[str, Renderer]:
    """One renderer per From address (raises ConfigError for bad render settings)."""
    return {
        address: Renderer(settings.render, from_address=address)
        for address in from_addresses(settings)
    }


def template_problems(settings: Settings, renderers: Iterable[Renderer] | None = None) -> list[str]:
    """Every email/Slack template and subject the actions name, compiled and test-rendered;
    each problem names the rule (or the fallback) and the action."""
    renderer = next(iter(renderers or ()), None) or Renderer(
        settings.render, from_address=settings.smtp.from_address
    )
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
    return problems
