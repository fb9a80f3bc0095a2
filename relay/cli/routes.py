"""``relay routes test``: explain which rules a conversation matches and what would be sent."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from relay.config.settings import ArchiveAction, WebhookAction
    from relay.model.category import Category
    from relay.model.conversation import Conversation


def parse_at(value: str | None) -> float | None:
    """ISO 8601 with an offset (``2026-03-29T03:30+02:00``, ``...Z``); no offset means UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-03-29T09:30+02:00)", param_hint="--at"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


@click.group()
def routes() -> None:
    """Inspect routing rules."""


@routes.command("test", short_help="Which rules PAYLOAD matches, and why.")
@click.argument("payload", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--at",
    "at_text",
    default=None,
    help="Evaluate time windows at this ISO 8601 time instead of the conversation's endAt.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (TOML). Default: $RELAY_CONFIG, else built-in defaults.",
)
def routes_test(payload: Path, at_text: str | None, config_path: Path | None) -> None:
    """Show, for each rule, whether PAYLOAD matches and why, and the resulting actions.
    Uses the same decision code as the running relay; nothing is sent or stored."""
    # Imported here: ``relay --help`` loads this module and should stay quick.
    from relay.config.settings import load_settings  # noqa: PLC0415
    from relay.intake.payload import parse  # noqa: PLC0415
    from relay.model.category import classify  # noqa: PLC0415
    from relay.model.errors import ConfigError, PayloadError  # noqa: PLC0415
    from relay.routing.decide import explain  # noqa: PLC0415
    from relay.routing.explain_text import decision_lines  # noqa: PLC0415

    at = parse_at(at_text)
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        conversation = parse(payload.read_bytes())
    except PayloadError as exc:
        raise click.ClickException(f"{payload}: {exc.reason}: {exc.message}") from None
    category = classify(conversation, low_rating_threshold=settings.classify.low_rating_threshold)
    decision = explain(conversation, category, settings.rule_set, now=time.time(), at=at)
    for line in decision_lines(conversation, decision, settings):
        click.echo(line)


def preview_extra(
    action: WebhookAction | ArchiveAction,
    raw: bytes,
    conversation: Conversation,
    category: Category,
    stem: Path,
    *,
    rule: str,
    index: int,
) -> tuple[Path, str]:
    """``relay preview`` for webhook and archive actions: write the body or line to a file."""
    from relay.config.settings import WebhookAction  # noqa: PLC0415
    from relay.model.urls import redact_url  # noqa: PLC0415
    from relay.render.actions import render_archive, render_webhook  # noqa: PLC0415

    if isinstance(action, WebhookAction):
        hook = render_webhook(action, raw, conversation, category, rule=rule, delivery_id=index)
        path = stem.with_suffix(".json")
        path.write_bytes(hook.body)
        return path, redact_url(action.url) if action.url else f"destination {action.destination!r}"
    line = render_archive(action, raw, conversation, category, rule=rule, delivery_id=index)
    path = stem.with_suffix(".jsonl")
    path.write_bytes(line.line + b"\n")
    return path, action.path
