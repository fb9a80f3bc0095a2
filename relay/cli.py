"""The ``relay`` command: serve, check, preview, and the operator's queue tools."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

import click

from relay.app import create_app, database_path, outbox_path
from relay.classify import classify
from relay.errors import ConfigError, PayloadError, RelayError
from relay.logs import configure_logging
from relay.payload import parse
from relay.render import Renderer
from relay.routes_cli import preview_extra, routes
from relay.routing import route
from relay.senders.outbox import OutboxSender
from relay.serving import run_server
from relay.settings import ArchiveAction, EmailAction, Settings, WebhookAction, load_settings
from relay.snapshot import template_problems
from relay.store import RETRYABLE, Store

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (TOML). Default: $RELAY_CONFIG, else built-in defaults.",
)


def _load(config_path: Path | None) -> Settings:
    try:
        return load_settings(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group(context_settings={"max_content_width": 100})
@click.version_option(package_name="smartsupp-relay", prog_name="relay")
def main() -> None:
    """Receive Smartsupp conversations and route them to email and Slack."""


@main.command()
@config_option
def serve(config_path: Path | None) -> None:
    """Run the HTTP server and the delivery worker."""
    settings = _load(config_path)
    configure_logging(settings.logging)
    try:
        app = create_app(settings, reload=lambda: load_settings(config_path))
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    # uvicorn stops gracefully on SIGTERM, then raises the signal again with the handler that
    # was in place before it started; this one turns that into a clean exit status 0.
    signal.signal(signal.SIGTERM, _exit_after_graceful_stop)
    logging.getLogger("relay").info(
        "relay listening on http://%s:%d/hooks/smartsupp/<token> (state in %s)",
        settings.server.host,
        settings.server.port,
        settings.storage.state_dir,
    )
    run_server(
        app,
        host=settings.server.host,
        port=settings.server.port,
        graceful_seconds=settings.delivery.shutdown_grace_seconds,
        server=settings.server,
    )


def _exit_after_graceful_stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


@main.command()
@config_option
def check(config_path: Path | None) -> None:
    """Validate settings, rules and templates; exit 1 with a message if anything is wrong."""
    settings = _load(config_path)
    try:
        problems = template_problems(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if problems:
        raise click.ClickException("templates: " + "; ".join(problems))
    rules = settings.effective_rules
    fallback = settings.routing.fallback
    destinations = settings.destinations
    named = len(destinations.smtp) + len(destinations.slack) + len(destinations.webhook)
    click.echo(
        f"settings OK: {len(rules)} rules, fallback "
        f"{f'{len(fallback)} actions' if fallback else 'drop'}, {named} named destinations,"
        f" state in {settings.storage.state_dir}"
    )


@main.command()
@click.argument("payload", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("preview"),
    show_default=True,
    help="Directory for the rendered output.",
)
def preview(payload: Path, config_path: Path | None, out: Path) -> None:
    """Show the category and matching rules for PAYLOAD and write what would be sent."""
    settings = _load(config_path)
    raw = payload.read_bytes()
    try:
        conversation = parse(raw)
    except PayloadError as exc:
        raise click.ClickException(f"{payload}: {exc.reason}: {exc.message}") from None
    category = classify(conversation, low_rating_threshold=settings.classify.low_rating_threshold)
    planned = route(conversation, category, settings.rule_set, now=time.time())
    click.echo(f"conversation {conversation.key}: category {category.value}")
    if not planned:
        click.echo("no rule matches: nothing would be sent")
        return
    renderer = Renderer(settings.render, from_address=settings.smtp.from_address)
    out.mkdir(parents=True, exist_ok=True)
    for index, plan in enumerate(planned, start=1):
        action = plan.action
        stem = out / f"{index:02d}-{plan.rule}-{action.type}"
        if isinstance(action, EmailAction):
            content = renderer.email(
                conversation, category, action, message_id=f"<preview.{index}@relay.invalid>"
            )
            path = stem.with_suffix(".eml")
            path.write_bytes(content.message.as_bytes())
            target = ", ".join(content.recipients)
        elif isinstance(action, WebhookAction | ArchiveAction):
            path, target = preview_extra(
                action, raw, conversation, category, stem, rule=plan.rule, index=index
            )
        else:
            slack = renderer.slack(conversation, category, action)
            path = stem.with_suffix(".json")
            body = {"channel": slack.channel, "text": slack.text, "blocks": list(slack.blocks)}
            path.write_text(json.dumps(body, ensure_ascii=False, indent=2), encoding="utf-8")
            target = slack.channel or "(webhook)"
        click.echo(f"rule {plan.rule}: {action.type} to {target} -> {path}")


def _open_store(settings: Settings) -> Store:
    path = database_path(settings)
    if not path.exists():
        raise click.ClickException(f"no store at {path} (has the relay run with this config?)")
    return Store(path)


@main.command()
@config_option
@click.option("--all", "show_all", is_flag=True, help="Also list sent deliveries.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
def queue(config_path: Path | None, show_all: bool, limit: int) -> None:
    """Delivery counts, and every pending, retrying or dead delivery with its last error."""
    store = _open_store(_load(config_path))
    try:
        counts = store.counts()
        statuses = ("pending", "sending", "retrying", "dead") + (("sent",) if show_all else ())
        rows = store.deliveries(statuses, limit=limit)
    finally:
        store.close()
    click.echo("  ".join(f"{status}={n}" for status, n in counts.items()))
    if rows:
        click.echo(
            f"{'ID':>6}  {'STATUS':8}  {'CHANNEL':7}  {'TRIES':>5}  {'NEXT ATTEMPT (UTC)':19}  "
            "CONVERSATION  RULE"
        )
    for row in rows:
        nxt = _when(row.next_attempt_at) if row.status in ("pending", "retrying") else "-"
        click.echo(
            f"{row.id:>6}  {row.status:8}  {row.channel:7}  {row.attempts:>5}  {nxt:19}  "
            f"{row.conv_key}  {row.rule}"
        )
        if row.last_error:
            click.echo(f"{'':8}last error: {row.last_error}")
    listed = sum(counts[s] for s in statuses)
    if listed > len(rows):
        click.echo(f"... {listed - len(rows)} more not shown (--limit)")


@main.command()
@config_option
@click.argument("delivery_ids", type=int, nargs=-1)
@click.option("--dead", "all_dead", is_flag=True, help="Retry every dead delivery.")
def retry(config_path: Path | None, delivery_ids: tuple[int, ...], all_dead: bool) -> None:
    """Schedule deliveries (by ID, or all dead ones) for an immediate new attempt. A requeued
    delivery starts afresh: attempts, backoff and the age limit count from now."""
    if not delivery_ids and not all_dead:
        raise click.UsageError("give delivery IDs or --dead")
    store = _open_store(_load(config_path))
    try:
        problems = []
        for delivery_id in delivery_ids:
            row = store.delivery(delivery_id)
            if row is None:
                problems.append(f"no delivery {delivery_id}")
            elif row.status not in RETRYABLE:
                hint = " (relay replay sends a conversation again)" if row.status == "sent" else ""
                problems.append(f"delivery {delivery_id} is {row.status}, not retried{hint}")
        changed = store.retry_now(None if all_dead else list(delivery_ids))
    finally:
        store.close()
    for problem in problems:
        click.echo(problem, err=True)
    click.echo(f"{changed} deliveries scheduled for retry")
    if problems:
        sys.exit(1)


@main.command()
@config_option
@click.argument("conversation")
def replay(config_path: Path | None, conversation: str) -> None:
    """Route a stored conversation again with the current rules and deliver it again.

    CONVERSATION is a stored conversation's numeric id, or its key "<accountId>-<channelId>"
    (the newest version is replayed)."""
    settings = _load(config_path)
    store = _open_store(settings)
    try:
        conversation_id = (
            int(conversation) if conversation.isdigit() else store.latest_version_id(conversation)
        )
        found = None if conversation_id is None else store.conversation_raw(conversation_id)
        if conversation_id is None or found is None:
            raise click.ClickException(f"no stored conversation {conversation}")
        raw, _, key = found
        parsed = parse(raw)
        category = classify(parsed, low_rating_threshold=settings.classify.low_rating_threshold)
        planned = route(parsed, category, settings.rule_set, now=time.time())
        created = store.replan(conversation_id, planned)
    finally:
        store.close()
    click.echo(
        f"conversation {key} (id {conversation_id}, {category.value}): {created} deliveries planned"
    )


@main.group(invoke_without_command=True)
@config_option
@click.pass_context
def quarantine(ctx: click.Context, config_path: Path | None) -> None:
    """List refused bodies kept for inspection."""
    ctx.obj = config_path
    if ctx.invoked_subcommand is not None:
        return
    store = _open_store(_load(config_path))
    try:
        rows = store.quarantined()
    finally:
        store.close()
    if not rows:
        click.echo("quarantine is empty")
    for row in rows:
        click.echo(
            f"{row.id:>6}  {_when(row.received_at)}  {row.reason:18}  {row.size:>8} B  "
            f"{row.remote or '-':15}  {row.message}"
        )


@quarantine.command("show")
@click.argument("entry_id", type=int)
@config_option
@click.pass_obj
def quarantine_show(group_config: Path | None, entry_id: int, config_path: Path | None) -> None:
    """Print one refused body and why it was refused."""
    store = _open_store(_load(config_path or group_config))
    row = store.quarantine_entry(entry_id)
    store.close()
    if row is None:
        raise click.ClickException(f"no quarantine entry {entry_id}")
    click.echo(f"id: {row.id}\nreceived: {_when(row.received_at)}\nfrom: {row.remote or '-'}")
    click.echo(f"reason: {row.reason}\nmessage: {row.message}\nsize: {row.size} bytes\n")
    click.echo(row.body.decode("utf-8", errors="replace"))


@main.command()
@config_option
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0),
    default=None,
    help="Days (default: storage.retention_days).",
)
def purge(config_path: Path | None, days: float | None) -> None:
    """Delete conversations (and the personal data they carry) older than the retention period.
    Conversations with deliveries still pending are kept."""
    from rich.console import Console  # noqa: PLC0415 -- only purge shows a progress bar
    from rich.progress import Progress  # noqa: PLC0415 -- only purge shows a progress bar

    settings = _load(config_path)
    days = settings.storage.retention_days if days is None else days
    store = _open_store(settings)
    cutoff = time.time() - days * 86400
    ids = store.conversations_older_than(cutoff)
    batch = 500
    outbox = OutboxSender(outbox_path(settings))
    files = 0
    console = Console(stderr=True)
    with Progress(console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("purging", total=len(ids))
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            files += outbox.remove(store.delivery_ids_of(chunk))
            store.purge(chunk)
            progress.advance(task, len(chunk))
    dropped = store.purge_quarantine_older_than(cutoff)
    store.checkpoint()
    store.close()
    click.echo(
        f"purged {len(ids)} conversations, {files} outbox files and {dropped} quarantined"
        f" bodies older than {days:g} days"
    )


main.add_command(routes)


def run() -> None:  # pragma: no cover - console entry point wrapper
    try:
        main()
    except RelayError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
