"""``relay routes test``: explain which rules a conversation matches and what would be sent."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from relay.model.content import Content
    from relay.routing.rules import AnyAction


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


@click.group(help="Inspect routing rules.")
def routes() -> None:
    pass


@routes.command(
    "test",
    short_help="Which rules PAYLOAD matches, and why.",
    help=(
        "Show, for each rule, whether PAYLOAD matches and why, and the resulting actions.\n"
        "Uses the same decision code as the running relay; nothing is sent or stored."
    ),
)
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
    # Imported here: ``relay --help`` loads this module and should stay quick.
    from relay.config.settings import load_settings  # noqa: PLC0415
    from relay.intake.pipeline import take  # noqa: PLC0415
    from relay.model.errors import ConfigError, PayloadError  # noqa: PLC0415
    from relay.routing.explain_text import decision_lines  # noqa: PLC0415

    at = parse_at(at_text)
    try:
        settings = load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    threshold = settings.classify.low_rating_threshold
    try:
        routed = take(
            payload.read_bytes(),
            settings.rule_set,
            low_rating_threshold=threshold,
            now=time.time(),
            at=at,
        )
    except PayloadError as exc:
        raise click.ClickException(f"{payload}: {exc.reason}: {exc.message}") from None
    for line in decision_lines(routed.conversation, routed.decision, settings):
        click.echo(line)


def write_preview(action: AnyAction, content: Content, stem: Path) -> tuple[Path, str]:
    """``relay preview``: write one rendered content to a file named ``stem`` + its suffix;
    the file and where the content would go."""
    import json  # noqa: PLC0415

    from relay.model.content import (  # noqa: PLC0415
        EmailContent,
        SlackContent,
        TeamsContent,
        WebhookContent,
    )
    from relay.model.crm import CrmContent  # noqa: PLC0415
    from relay.model.urls import redact_url  # noqa: PLC0415
    from relay.routing.rules import CrmAction, WebhookAction  # noqa: PLC0415

    if isinstance(content, EmailContent):
        path = stem.with_suffix(".eml")
        path.write_bytes(content.message.as_bytes())
        return path, ", ".join(content.recipients)
    if isinstance(content, SlackContent):
        path = stem.with_suffix(".json")
        body = {"channel": content.channel, "text": content.text, "blocks": list(content.blocks)}
        path.write_text(json.dumps(body, ensure_ascii=False, indent=2), encoding="utf-8")
        return path, content.channel or "(webhook)"
    if isinstance(content, TeamsContent):
        path = stem.with_suffix(".json")
        path.write_text(json.dumps(content.body(), ensure_ascii=False, indent=2), encoding="utf-8")
        return path, "(Teams webhook)"
    if isinstance(content, WebhookContent):
        path = stem.with_suffix(".json")
        path.write_bytes(content.body)
        destination = action.destination if isinstance(action, WebhookAction) else None
        return path, redact_url(content.url) if content.url else f"destination {destination!r}"
    if isinstance(content, CrmContent):
        path = stem.with_suffix(".html")
        title = content.title.replace("&", "&amp;").replace("<", "&lt;")
        path.write_text(f"<h1>{title}</h1>{content.html(60_000)}", "utf-8")
        destination = action.destination if isinstance(action, CrmAction) else None
        return path, f"destination {destination!r}"
    path = stem.with_suffix(".jsonl")
    path.write_bytes(content.line + b"\n")
    return path, content.path
