"""The ``relay`` command: serve, check, preview, send-test, and the operator's queue tools.

Imports of the web framework, the store and the renderers happen inside the commands that
use them, so ``relay --help`` and ``relay check`` start quickly."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from relay.cli.routes import routes
from relay.model.errors import ConfigError, RelayError, StoreError

if TYPE_CHECKING:
    import socket
    import threading
    from types import FrameType

    from relay.config.settings import Settings
    from relay.store import StoreProtocol
    from relay.store.postgres.copy import Copied

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Settings file (TOML). Default: $RELAY_CONFIG, else built-in defaults.",
)


def _load(config_path: Path | None) -> Settings:
    from relay.config.settings import load_settings  # noqa: PLC0415

    try:
        return load_settings(config_path)
    except ConfigError as exc:
        from relay.model.urls import redact_text  # noqa: PLC0415

        raise click.ClickException(redact_text(str(exc))) from None


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group(
    context_settings={"max_content_width": 100},
    help="Receive Smartsupp conversations and route them to email and Slack.",
)
@click.version_option(package_name="smartsupp-relay", prog_name="relay")
def main() -> None:
    pass


@main.command(
    short_help="Run the HTTP server and the delivery worker.",
    help="Run the HTTP server and the delivery worker.",
)
@config_option
@click.option("--host", default=None, help="Listen on this address (default: [server] host).")
@click.option(
    "--port", type=click.IntRange(1, 65535), default=None, help="Port (default: [server] port)."
)
def serve(config_path: Path | None, host: str | None, port: int | None) -> None:
    import signal  # noqa: PLC0415
    import threading  # noqa: PLC0415

    # First of all: SIGHUP's default action ends the process, and systemd's reload may come
    # while the relay starts. Remember it; the reloader applies it once it is installed.
    reload_asked = threading.Event()
    signal.signal(signal.SIGHUP, lambda signum, frame: reload_asked.set())

    from relay.ops.logs import configure_logging, lighten_records  # noqa: PLC0415

    settings = _load(config_path)
    # Lines are formatted and written by a thread of their own, off the event loop; each way
    # out of this command writes what was logged before click prints its own message.
    handler = configure_logging(settings.logging, threaded=True)
    lighten_records()
    try:
        _serve(settings, config_path, host, port, reload_asked)
    finally:
        handler.flush()


def _serve(
    settings: Settings,
    config_path: Path | None,
    host: str | None,
    port: int | None,
    reload_asked: threading.Event,
) -> None:
    import logging  # noqa: PLC0415
    import signal  # noqa: PLC0415

    from relay.config.destinations import mode, outbox_dir, targets  # noqa: PLC0415
    from relay.config.settings import load_settings  # noqa: PLC0415
    from relay.ops.statedir import lock_state_dir  # noqa: PLC0415
    from relay.serving import bind, run_server  # noqa: PLC0415

    log = logging.getLogger("relay")
    host = host or settings.server.host
    port = port or settings.server.port
    try:
        lock = lock_state_dir(Path(settings.storage.state_dir))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        sock = bind(host, port)
    except OSError as exc:
        lock.release()
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    try:
        more = _console_listener(settings, host)
    except click.ClickException:
        sock.close()
        lock.release()
        raise
    from relay.app import create_app  # noqa: PLC0415

    try:
        app = create_app(
            settings, reload=lambda: load_settings(config_path), reload_asked=reload_asked
        )
    except (ConfigError, StoreError) as exc:
        for listener in (sock, *more):
            listener.close()
        lock.release()
        raise click.ClickException(str(exc)) from None
    found = targets(settings)
    if mode(found) != "live":
        outboxed = [t for t in found if t.outbox]
        log.warning(
            "OUTBOX MODE: %d of %d configured actions are NOT sent but written to %s/ "
            "(%s); configure [smtp] / [slack] to deliver them (relay check lists each action)",
            len(outboxed),
            len(found),
            outbox_dir(settings),
            "; ".join(f"{t.where}: {t.action}" for t in outboxed),
        )
    # uvicorn stops gracefully on SIGTERM, then raises the signal again with the handler that
    # was in place before it started; this one turns that into a clean exit status 0.
    signal.signal(signal.SIGTERM, _exit_after_graceful_stop)
    log.info(
        "relay starting: hook at http://%s:%d/hooks/smartsupp/<token> (state in %s)",
        host,
        port,
        settings.storage.state_dir,
    )
    try:
        run_server(
            app,
            sock=sock,
            more_sockets=more,
            graceful_seconds=settings.delivery.shutdown_grace_seconds,
            server=settings.server,
        )
    finally:
        lock.release()


def _console_listener(settings: Settings, host: str) -> list[socket.socket]:
    """The console's own listening socket when ``[console] port`` is set (else none)."""
    import logging  # noqa: PLC0415

    from relay.serving import bind  # noqa: PLC0415

    console = settings.console
    if console.port is None:
        return []
    console_host = console.host or host
    try:
        listener = bind(console_host, console.port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {console_host}:{console.port} ([console]): {exc.strerror}"
        ) from None
    logging.getLogger("relay").info(
        "console on its own listener: http://%s:%d/console", console_host, console.port
    )
    return [listener]


def _exit_after_graceful_stop(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


@main.command(
    short_help="Validate settings; show where each action goes.",
    help="Validate settings, rules and templates, and say where each action's output goes.",
)
@config_option
def check(config_path: Path | None) -> None:
    from relay.config.destinations import mode, preset_notes, targets  # noqa: PLC0415
    from relay.snapshot import template_problems  # noqa: PLC0415

    settings = _load(config_path)
    try:
        problems = template_problems(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    if problems:
        raise click.ClickException("templates: " + "; ".join(problems))
    if settings.storage.url is not None:  # several relays: claims are leases
        from relay.senders.registry import SenderRegistry  # noqa: PLC0415
        from relay.snapshot import lease_problem  # noqa: PLC0415

        lease = lease_problem(settings, SenderRegistry().build(settings))
        if lease is not None:
            raise click.ClickException(lease)
    rules = settings.effective_rules
    fallback = settings.routing.fallback
    destinations = settings.destinations
    named = sum(len(getattr(destinations, kind)) for kind in type(destinations).model_fields)
    click.echo(
        f"settings OK: {len(rules)} rules, fallback "
        f"{f'{len(fallback)} actions' if fallback else 'drop'}, {named} named destinations,"
        f" state in {settings.storage.state_dir}"
    )
    for note in preset_notes(settings):
        click.echo(f"  {note}")
    found = targets(settings)
    for target in found:
        mark = "OUTBOX" if target.outbox else "ok"
        click.echo(f"  {mark:6} {target.where}: {target.action} -> {target.goes_to}")
    if mode(found) != "live":
        click.echo(
            "WARNING: actions marked OUTBOX are written to files, not delivered: configure "
            "[smtp] and [slack] (see settings.example.toml)",
            err=True,
        )


@main.command(
    short_help="Render what PAYLOAD would send; send nothing.",
    help="Show the category and matching rules for PAYLOAD and write what would be sent.",
)
@click.argument("payload", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@config_option
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for the rendered output (default: a new temporary directory).",
)
def preview(payload: Path, config_path: Path | None, out: Path | None) -> None:
    import tempfile  # noqa: PLC0415

    from relay.cli.routes import write_preview  # noqa: PLC0415
    from relay.intake.pipeline import take  # noqa: PLC0415
    from relay.model.errors import PayloadError  # noqa: PLC0415
    from relay.render.dispatch import Job, render  # noqa: PLC0415
    from relay.render.renderer import Renderer  # noqa: PLC0415

    settings = _load(config_path)
    raw = payload.read_bytes()
    threshold = settings.classify.low_rating_threshold
    try:
        routed = take(raw, settings.rule_set, low_rating_threshold=threshold, now=time.time())
    except PayloadError as exc:
        raise click.ClickException(f"{payload}: {exc.reason}: {exc.message}") from None
    conversation, category, planned = routed.conversation, routed.category, routed.decision.planned
    click.echo(f"conversation {conversation.key}: category {category.value}")
    if not planned:
        click.echo("no rule matches: nothing would be sent")
        return
    renderer = Renderer(settings.render, from_address=settings.smtp.from_address)
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="relay-preview-"))
    out.mkdir(parents=True, exist_ok=True)
    for index, plan in enumerate(planned, start=1):
        action = plan.action
        job = Job(
            raw,
            conversation,
            category,
            action,
            rule=plan.rule,
            delivery_id=index,
            message_id=f"<preview.{index}@relay.invalid>",
        )
        stem = out / f"{index:02d}-{plan.rule}-{action.type}"
        path, target = write_preview(action, render(job, renderer), stem)
        click.echo(f"rule {plan.rule}: {action.type} to {target} -> {path}")
    click.echo(f"written to {out}")


@main.command(
    "send-test",
    short_help="Send one real test email / Slack message.",
    help=(
        "Send one real test email (and Slack message, Teams card) through the configured path\n"
        "and print exactly what the server answered; with --crm, check every CRM destination too."
    ),
)
@config_option
@click.option("--to", "to", default=None, help="Send one test email to this address.")
@click.option("--channel", default=None, help="Also post one test Slack message here.")
@click.option(
    "--crm",
    is_flag=True,
    help="Check each CRM / help desk destination's credential (read-only, creates nothing).",
)
@click.option("--teams", is_flag=True, help="Also post one test card to the [teams] webhook.")
def send_test(
    config_path: Path | None, to: str | None, channel: str | None, crm: bool, teams: bool
) -> None:
    import asyncio  # noqa: PLC0415

    from relay.cli.sendtest import check_crm, send_test_messages  # noqa: PLC0415

    if to is None and not crm:
        raise click.UsageError("give --to ADDRESS (and --channel), or --crm")
    settings = _load(config_path)
    results = []
    if to is not None:
        results += asyncio.run(send_test_messages(settings, to=to, channel=channel, teams=teams))
    if crm:
        results += asyncio.run(check_crm(settings))
    for result in results:
        click.echo(f"{'ok' if result.ok else 'FAILED':6} {result.what}: {result.answer}")
    if not all(result.ok for result in results):
        sys.exit(1)


def _open_store(settings: Settings) -> StoreProtocol:
    from relay.store.opening import database_path, open_store, postgres_url  # noqa: PLC0415

    path = database_path(settings)
    if postgres_url(settings) is None and not path.exists():
        raise click.ClickException(f"no store at {path} (has the relay run with this config?)")
    try:
        return open_store(settings, check=True)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@main.command(
    short_help="Delivery counts and undelivered deliveries.",
    help="Delivery counts, and every pending, retrying or dead delivery with its last error.",
)
@config_option
@click.option("--all", "show_all", is_flag=True, help="Also list sent deliveries.")
@click.option("--limit", type=click.IntRange(min=1), default=200, show_default=True)
def queue(config_path: Path | None, show_all: bool, limit: int) -> None:
    settings = _load(config_path)
    store = _open_store(settings)
    try:
        counts = store.counts()
        statuses = ("pending", "sending", "retrying", "dead") + (("sent",) if show_all else ())
        rows = store.deliveries(statuses, limit=limit)
    finally:
        store.close()
    click.echo("  ".join(f"{status}={n}" for status, n in counts.items()))
    if counts.get("outbox"):
        from relay.config.destinations import outbox_dir  # noqa: PLC0415

        click.echo(
            f"outbox={counts['outbox']}: written to {outbox_dir(settings)}/, NOT sent "
            "(no destination was configured for them; relay check shows where actions go)"
        )
    if rows:
        click.echo(
            f"{'ID':>6}  {'STATUS':8}  {'CHANNEL':7}  {'TRIES':>5}  {'NEXT ATTEMPT (UTC)':19}  "
            "CONVERSATION  RULE"
        )
    from relay.model.urls import redact_text  # noqa: PLC0415

    for row in rows:
        nxt = _when(row.next_attempt_at) if row.status in ("pending", "retrying") else "-"
        status = row.sent_to if row.sent_to in ("outbox", "skipped") else row.status
        click.echo(
            f"{row.id:>6}  {status:8}  {row.channel:7}  {row.attempts:>5}  {nxt:19}  "
            f"{row.conv_key}  {row.rule}"
        )
        if row.last_error:
            label = "reason" if row.sent_to == "skipped" else "last error"
            click.echo(f"{'':8}{label}: {redact_text(row.last_error)}")
    listed = sum(counts[s] for s in statuses)
    if listed > len(rows):
        click.echo(f"... {listed - len(rows)} more not shown (--limit)")


@main.command(
    short_help="Try deliveries (IDs or --dead) again now.",
    help=(
        "Schedule deliveries (by ID, or all dead ones) for an immediate new attempt. A requeued\n"
        "delivery starts afresh: attempts, backoff and the age limit count from now."
    ),
)
@config_option
@click.argument("delivery_ids", type=int, nargs=-1)
@click.option("--dead", "all_dead", is_flag=True, help="Retry every dead delivery.")
def retry(config_path: Path | None, delivery_ids: tuple[int, ...], all_dead: bool) -> None:
    from relay.store import RETRYABLE  # noqa: PLC0415

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


@main.command(
    short_help="Route a stored conversation again, deliver it.",
    help=(
        "Route a stored conversation again with the current rules and deliver it again.\n"
        "\n"
        "CONVERSATION is a stored conversation's numeric id, or its key"
        ' "<accountId>-<channelId>"\n'
        "(the newest version is replayed)."
    ),
)
@config_option
@click.argument("conversation")
def replay(config_path: Path | None, conversation: str) -> None:
    from relay.intake.pipeline import take  # noqa: PLC0415

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
        threshold = settings.classify.low_rating_threshold
        routed = take(raw, settings.rule_set, low_rating_threshold=threshold, now=time.time())
        category = routed.category
        created = store.replan(conversation_id, routed.decision.planned)
    finally:
        store.close()
    click.echo(
        f"conversation {key} (id {conversation_id}, {category.value}): {created} deliveries planned"
    )


@main.command(
    short_help="List leads to follow up and who took them.",
    help="List the leads (missed chats and offline messages to follow up), oldest first.",
)
@config_option
@click.option(
    "--state",
    type=click.Choice(["open", "claimed", "done", "answered-in-chat"]),
    default=None,
    help="Only leads in this state.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON array.")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
def leads(config_path: Path | None, state: str | None, as_json: bool, limit: int) -> None:
    from relay.leads import listing  # noqa: PLC0415

    store = _open_store(_load(config_path))
    try:
        found = store.leads(state, limit)
    finally:
        store.close()
    if as_json:
        click.echo(listing.as_json(found))
        return
    for line in listing.as_table(found):
        click.echo(line)


@main.group(
    invoke_without_command=True,
    short_help="List refused bodies; show one.",
    help="List refused bodies kept for inspection.",
)
@config_option
@click.pass_context
def quarantine(ctx: click.Context, config_path: Path | None) -> None:
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


@quarantine.command("show", help="Print one refused body and why it was refused.")
@click.argument("entry_id", type=int)
@config_option
@click.pass_obj
def quarantine_show(group_config: Path | None, entry_id: int, config_path: Path | None) -> None:
    store = _open_store(_load(config_path or group_config))
    row = store.quarantine_entry(entry_id)
    store.close()
    if row is None:
        raise click.ClickException(f"no quarantine entry {entry_id}")
    click.echo(f"id: {row.id}\nreceived: {_when(row.received_at)}\nfrom: {row.remote or '-'}")
    click.echo(f"reason: {row.reason}\nmessage: {row.message}\nsize: {row.size} bytes\n")
    click.echo(row.body.decode("utf-8", errors="replace"))


@main.command(
    short_help="Delete conversations past the retention period.",
    help=(
        "Delete conversations (and the personal data they carry) older than the retention period.\n"
        "Conversations with deliveries still pending are kept."
    ),
)
@config_option
@click.option(
    "--older-than",
    "days",
    type=click.FloatRange(min=0),
    default=None,
    help="Days (default: storage.retention_days).",
)
def purge(config_path: Path | None, days: float | None) -> None:
    from rich.console import Console  # noqa: PLC0415 -- only purge shows a progress bar
    from rich.progress import Progress  # noqa: PLC0415 -- only purge shows a progress bar

    from relay.senders.outbox import OutboxSender  # noqa: PLC0415
    from relay.senders.registry import outbox_path  # noqa: PLC0415

    settings = _load(config_path)
    days = settings.storage.retention_days if days is None else days
    store = _open_store(settings)
    cutoff = time.time() - days * 86400
    # Once across the relays sharing a PostgreSQL database: another one purging now is enough.
    with store.exclusive("purge") as mine:
        if not mine:
            store.close()
            click.echo("another relay is purging this store now; nothing to do")
            return
        ids = store.conversations_older_than(cutoff)
        batch = 500
        outbox = OutboxSender(outbox_path(settings))
        files = 0
        console = Console(stderr=True)
        with Progress(console=console, transient=True, disable=not console.is_terminal) as bar:
            task = bar.add_task("purging", total=len(ids))
            for start in range(0, len(ids), batch):
                chunk = ids[start : start + batch]
                files += outbox.remove(store.delivery_ids_of(chunk))
                store.purge(chunk)
                bar.advance(task, len(chunk))
        dropped = store.purge_quarantine_older_than(cutoff)
        store.checkpoint()
    store.close()
    click.echo(
        f"purged {len(ids)} conversations, {files} outbox files and {dropped} quarantined"
        f" bodies older than {days:g} days"
    )


@main.group(
    short_help="Add or remove console users.",
    help="Console users (docs/console.md): the console is off until one exists.",
)
def user() -> None:
    pass


@user.command(
    "add",
    help=(
        "Add NAME, or set a new password for NAME; the password is read from standard input\n"
        "(its first line), and stored as an argon2 hash."
    ),
)
@config_option
@click.argument("name")
def user_add(config_path: Path | None, name: str) -> None:
    from relay.console.auth import hash_password, valid_name  # noqa: PLC0415

    if not valid_name(name):
        raise click.UsageError("NAME: 1 to 64 letters, digits and . _ @ -")
    password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise click.ClickException("the password (from standard input) needs 8 characters or more")
    store = _open_user_store(_load(config_path))
    try:
        now = time.time()
        created = store.add_console_user(name, hash_password(password), now)
        store.record_audit("relay user", "user add" if created else "password", name, "", now)
    finally:
        store.close()
    click.echo(f"user {name} {'added' if created else 'has a new password'}")


@user.command("remove", help="Remove NAME: their sessions end at their next request.")
@config_option
@click.argument("name")
def user_remove(config_path: Path | None, name: str) -> None:
    store = _open_user_store(_load(config_path))
    try:
        removed = store.remove_console_user(name)
        if removed:
            store.record_audit("relay user", "user remove", name, "", time.time())
    finally:
        store.close()
    if not removed:
        raise click.ClickException(f"no user {name}")
    click.echo(f"user {name} removed")


def _open_user_store(settings: Settings) -> StoreProtocol:
    """The store, created if new (a user may be added before the relay first runs)."""
    from relay.store.opening import open_store  # noqa: PLC0415

    try:
        return open_store(settings)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None


@main.command(
    short_help="Upgrade the store's schema, or copy SQLite into PostgreSQL.",
    help=(
        "Bring the configured store to this relay's schema version (relays also do this when\n"
        "they start). With --to-postgres: copy the SQLite store (conversations, deliveries with\n"
        "their state, quarantine) into PostgreSQL, then compare the counts. Stop the relay first."
    ),
)
@config_option
@click.option(
    "--to-postgres",
    "to_postgres",
    metavar="URL",
    default=None,
    help="Copy the SQLite store of this config's state_dir into this empty PostgreSQL"
    " database (password: in the URL, or the config's storage.password).",
)
def migrate(config_path: Path | None, to_postgres: str | None) -> None:
    from relay.ops.statedir import lock_state_dir  # noqa: PLC0415

    settings = _load(config_path)
    if to_postgres is None:
        _open_store(settings).close()
        click.echo("the store is at this relay's schema version")
        return
    from relay.store.opening import database_path  # noqa: PLC0415
    from relay.store.pgconnect import redacted  # noqa: PLC0415

    if not to_postgres.startswith(("postgresql://", "postgres://")):
        raise click.ClickException("--to-postgres expects a postgresql://... URL")
    path = database_path(settings)
    if not path.exists():
        raise click.ClickException(f"no store at {path} (has the relay run with this config?)")
    try:
        lock = lock_state_dir(Path(settings.storage.state_dir))  # no relay writes meanwhile
    except RelayError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        copied = _copy_to_postgres(settings, to_postgres)
    finally:
        lock.release()
    states = ", ".join(f"{n} {status}" for status, n in copied.states.items()) or "none"
    click.echo(
        f"copied {copied.rows['conversations']} conversations, {copied.rows['deliveries']}"
        f" deliveries ({states}) and {copied.rows['quarantine']} quarantined bodies to"
        f" {redacted(to_postgres)}; the counts match. Set [storage] url to it and start the"
        " relays."
    )


def _copy_to_postgres(settings: Settings, url: str) -> Copied:
    from rich.console import Console  # noqa: PLC0415 -- only the copy shows a progress bar
    from rich.progress import Progress  # noqa: PLC0415

    from relay.store import Store  # noqa: PLC0415
    from relay.store.opening import database_path  # noqa: PLC0415
    from relay.store.postgres import PostgresStore  # noqa: PLC0415
    from relay.store.postgres.copy import copy_store, source_counts  # noqa: PLC0415

    password = settings.storage.password
    try:
        source = Store(database_path(settings), check=True)
        try:
            target = PostgresStore(
                url, password=None if password is None else password.get_secret_value()
            )
        except StoreError:
            source.close()
            raise
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    console = Console(stderr=True)
    try:
        with Progress(console=console, disable=not console.is_terminal) as bar:
            tasks = {
                table: bar.add_task(f"copying {table}", total=count)
                for table, count in source_counts(source).rows.items()
            }
            return copy_store(source, target, lambda table, n: bar.advance(tasks[table], n))
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        source.close()
        target.close()


main.add_command(routes)
