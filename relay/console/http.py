"""The console's pages under /console: server-rendered, no script; GET never changes anything,
every POST carries the session's CSRF token and is written to the audit log."""

from __future__ import annotations

import asyncio
import binascii
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.exceptions import HTTPException
from litestar.exceptions.responses import create_exception_response
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response.base import ASGIResponse
from litestar.types import ExceptionHandlersMap, Receive, Scope, Send

from relay.console import auth, charts
from relay.console.stats import CATEGORIES, days_back, local_day, summarise
from relay.console.texts import text
from relay.intake.http import prepare
from relay.intake.payload import parse
from relay.intake.pipeline import take
from relay.leads.model import Lead, LeadState, Refused, claim, finish
from relay.leads.texts import pick_locale
from relay.model.category import Category
from relay.model.errors import PayloadError, PayloadTooLarge
from relay.model.urls import redact_text
from relay.render.environment import loader
from relay.render.i18n import Translator
from relay.render.view import build_view
from relay.routing.explain_text import decision_lines, describe_action
from relay.store import STATUSES

if TYPE_CHECKING:
    import jinja2

    from relay.runtime import Runtime
    from relay.store import StoreProtocol

log = logging.getLogger(__name__)

SESSION_COOKIE = "relay_console"
LOGIN_COOKIE = "relay_console_login"
SMALL_FORM = 16_384
BODY_FORM = 8_000_000  # a quarantined body (at most server.max_body_bytes) form-encoded
HEADERS: Final[dict[str, str]] = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self';"
        " base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
# Ids are 64-bit integers in both stores; a larger one names nothing (and neither store could
# even be asked about it).
MAX_ID = 2**63 - 1
_ID = re.compile(r"[0-9]{1,19}")
# Days a search can name: their midnights are timestamps on any platform, the next day a date.
FIRST_DAY, LAST_DAY = date(1970, 1, 2), date(9998, 12, 31)
NAV = ("leads", "queue", "quarantine", "conversations", "rules", "stats", "audit")
STATS_DAYS = 30
HEALTH_WINDOW = 86400.0


@dataclass(frozen=True)
class Access:
    user: str
    sid: str  # the CSRF token is bound to it ("" for a proxy's user: bound to the user)


def _html(page: str, status: int = 200, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        page, status_code=status, media_type="text/html", headers=HEADERS, cookies=cookies or []
    )


def _redirect(path: str, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        "",
        status_code=303,
        headers={**HEADERS, "Location": path},
        cookies=cookies or [],
        media_type="text/plain",
    )


def _not_found() -> Response[str]:
    return Response("not found\n", status_code=404, media_type="text/plain", headers=HEADERS)


def _under_console(path: str) -> bool:
    return path == "/console" or path.startswith("/console/")


# What a console page says for a refusal Litestar answers itself (else "refused").
REFUSAL_TEXTS: Final[dict[int, str]] = {
    400: "bad_request",
    404: "not_found",
    405: "wrong_method",
    413: "too_large",
}


def age_text(seconds: float) -> str:
    """ "3 d 4 h", "2 h 5 min", "7 min" (language-neutral units)."""
    minutes = int(max(seconds, 0) // 60)
    days, rest = divmod(minutes, 1440)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min"


def body_text(body: bytes) -> tuple[str, bool]:
    """A quarantined body for the viewer: its text, or hexadecimal if it is not UTF-8."""
    try:
        return body.decode("utf-8"), False
    except UnicodeDecodeError:
        return binascii.hexlify(body, " ", 2).decode(), True


_LINE_END = re.compile(r"\r\n|\r|\n")


def browser_lines(text: str) -> str:
    """``text`` with its line ends as a browser submits a text area: every CR LF, lone CR and
    lone LF as CR LF (HTML's "normalize line breaks")."""
    return _LINE_END.sub("\r\n", text)


def edited_body(edited: str, stored: bytes) -> bytes:
    """The body a re-accept from the viewer's text area runs: the stored bytes if ``edited``
    is them as a browser sends them back (line ends aside), else the correction with LF line
    ends."""
    try:
        same = browser_lines(edited) == browser_lines(stored.decode("utf-8"))
    except UnicodeDecodeError:
        same = False
    return stored if same else browser_lines(edited).replace("\r\n", "\n").encode()


def _day(value: str | None) -> date | None:
    """A search's day, or None if ``value`` is none (or one no search can name)."""
    try:
        found = date.fromisoformat(value) if value else None
    except ValueError:
        return None
    return found if found is not None and FIRST_DAY <= found <= LAST_DAY else None


def _stored_id(value: int) -> int:
    """A path's id for the store: one beyond 64 bits is 0, which no row has."""
    return value if 0 < value <= MAX_ID else 0


class ConsoleEndpoints:
    """The console's handlers; read the runtime's current settings on every request."""

    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._clock = clock
        console = runtime.settings.console
        self.limiter = auth.LoginLimiter(console.max_failures, console.lockout_seconds, clock)
        self._environments: dict[str, jinja2.Environment] = {}
        self._key: bytes | None = None

    # -- plumbing ------------------------------------------------------------------------------

    @property
    def key(self) -> bytes:
        if self._key is None:
            settings = self._runtime.settings
            from pathlib import Path  # noqa: PLC0415

            self._key = auth.session_key(settings.console, Path(settings.storage.state_dir))
        return self._key

    def _environment(self) -> jinja2.Environment:
        render = self._runtime.settings.render
        key = str(render.templates_dir)
        found = self._environments.get(key)
        if found is None:
            import jinja2  # noqa: PLC0415 -- on the first page: an idle relay imports no Jinja

            found = self._environments[key] = jinja2.Environment(
                loader=loader(render.templates_dir),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                auto_reload=False,
            )
        return found

    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self._runtime.settings.render.timezone)

    def _locale(self, request: Request[Any, Any, Any]) -> str:
        return pick_locale(
            request.headers.get("accept-language"), self._runtime.settings.render.locale
        )

    def _secure(self, request: Request[Any, Any, Any]) -> bool:
        """Secure cookies over HTTPS: this connection, or a trusted proxy's X-Forwarded-Proto
        (or secure_cookies = true)."""
        if request.url.scheme == "https" or self._runtime.settings.console.secure_cookies:
            return True
        peer = request.client.host if request.client else None
        forwarded = request.headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
        return forwarded == "https" and peer is not None and self._trusted(peer)

    async def _call(self, fn: Callable[[StoreProtocol], Any]) -> Any:
        return await self._runtime.store.call(fn)

    def _render(
        self,
        request: Request[Any, Any, Any],
        name: str,
        access: Access | None,
        status: int = 200,
        cookies: list[Cookie] | None = None,
        **values: Any,
    ) -> Response[str]:
        locale = self._locale(request)
        zone = self._zone()
        translator = Translator(locale, zone)

        def t(key: str, **fill: object) -> str:
            return text(locale, key, **fill)

        def when(ts: float | None) -> str:
            if ts is None:
                return "-"
            return translator.datetime_text(datetime.fromtimestamp(ts, UTC))

        message = values.pop("message", None)
        if message is None and (said := request.query_params.get("said")):
            message = self._said(t, said, request.query_params)
        page = (
            self._environment()
            .get_template(f"console/{name}.html.j2")
            .render(
                t=t,
                when=when,
                age=lambda ts: age_text(self._clock() - ts),
                locale=locale,
                nav=NAV,
                active=name,
                user=None if access is None else access.user,
                csrf="" if access is None else auth.csrf_token(self.key, self._bound(access)),
                message=message,
                tone=values.pop("tone", "ok"),
                **values,
            )
        )
        return _html(page, status, cookies)

    @staticmethod
    def _said(t: Callable[..., str], said: str, query: Mapping[str, Any]) -> str | None:
        """What a redirect after a POST reports (a fixed set of keys; values are numbers)."""
        keys = {"lead_claimed", "lead_done", "retried", "replayed"}
        numbers = {name: query.get(name, "") for name in ("id", "count")}
        if said not in keys or not all(_ID.fullmatch(n) for n in numbers.values() if n):
            return None
        return t(said, **numbers)

    @staticmethod
    def _bound(access: Access) -> str:
        return access.sid or f"user:{access.user}"

    def _on_listener(self, request: Request[Any, Any, Any]) -> bool:
        port = self._runtime.settings.console.port
        if port is None:
            return True
        server = request.scope.get("server")
        return server is not None and server[1] == port

    async def _enabled(self, request: Request[Any, Any, Any]) -> bool:
        if not self._on_listener(request):
            return False
        count = await self._call(lambda s: s.console_user_count())
        return bool(count)

    async def access(self, request: Request[Any, Any, Any]) -> Access | None:
        """The signed-in user: a trusted proxy's header, else a valid session cookie of a user
        who still exists."""
        console = self._runtime.settings.console
        if console.user_header is not None:
            peer = request.client.host if request.client else None
            named = request.headers.get(console.user_header)
            if named and peer and self._trusted(peer) and auth.valid_name(named):
                return Access(named, "")
        value = request.cookies.get(SESSION_COOKIE, "")
        claimed = auth.claimed_user(value)
        if claimed is None:
            return None
        stored = await self._call(lambda s: s.console_user_session(claimed))
        if stored is None:  # removed
            return None
        password_hash, signed_out_at = stored
        session = auth.unseal(self.key, value, self._clock(), password_hash, signed_out_at)
        return None if session is None else Access(session.user, session.sid)

    def _trusted(self, peer: str) -> bool:
        from relay.runtime import _in  # noqa: PLC0415

        return _in(peer, self._runtime.settings.server.trusted_proxies)

    async def gate(self, request: Request[Any, Any, Any]) -> Access | Response[str]:
        if not await self._enabled(request):
            return _not_found()
        found = await self.access(request)
        if found is None:
            return _redirect("/console/login")
        return found

    async def posted(
        self, request: Request[Any, Any, Any]
    ) -> tuple[Access, dict[str, str]] | Response[str]:
        """The user and form of a POST with this session's CSRF token; else the refusal."""
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not auth.csrf_ok(self.key, self._bound(found), form.get("csrf", "")):
            return self._render(
                request, "notice", found, 403, message=text(self._locale(request), "form_expired")
            )
        return found, form

    async def audit(self, access: Access, action: str, target: str, detail: str = "") -> None:
        now = self._clock()
        await self._call(lambda s: s.record_audit(access.user, action, target, detail, now))
        log.info("console: %s %s %s %s", access.user, action, target, detail)

    async def refusal(
        self, request: Request[Any, Any, Any], status: int, headers: Mapping[str, str]
    ) -> Response[str]:
        """Litestar's own 4xx under /console (no route for the path or the method, a body over
        the limit, a form that does not parse) as a console page: 404 as any address while the
        console is off, else the layout in the user's language with the console's headers."""
        try:
            if not await self._enabled(request):
                return _not_found()
            access = await self.access(request)
            locale = self._locale(request)
            page = self._render(
                request,
                "notice",
                access,
                status,
                message=text(locale, REFUSAL_TEXTS.get(status, "refused")),
                tone="error",
                code=status,
            )
        except Exception:  # the store is gone, say: still no 500 for a client's mistake
            log.exception("console: could not render the page for a %d", status)
            page = Response(
                f"{status}\n", status_code=status, media_type="text/plain", headers=HEADERS
            )
        for name, value in headers.items():  # Allow for a 405
            page.headers.setdefault(name, value)
        return page

    # -- sign in and out -------------------------------------------------------------------------

    async def login_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        if not await self._enabled(request):
            return _not_found()
        return self._login_form(request)

    def _login_form(
        self, request: Request[Any, Any, Any], message: str | None = None, status: int = 200
    ) -> Response[str]:
        nonce = auth.new_session("", 0, 0).sid
        cookie = Cookie(
            key=LOGIN_COOKIE,
            value=nonce,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )
        return self._render(
            request,
            "login",
            None,
            status,
            [cookie],
            login_csrf=auth.csrf_token(self.key, "login:" + nonce),
            message=message,
            tone="error",
        )

    async def login(self, request: Request[Any, Any, Any]) -> Response[str]:
        if not await self._enabled(request):
            return _not_found()
        locale = self._locale(request)
        form = {k: str(v) for k, v in (await request.form()).items()}
        nonce = request.cookies.get(LOGIN_COOKIE, "")
        if not nonce or not auth.csrf_ok(self.key, "login:" + nonce, form.get("csrf", "")):
            return self._login_form(request, text(locale, "form_expired"), 403)
        name = form.get("user", "").strip()
        address = self._runtime.client_address(request) or "?"
        keys = (f"address:{auth.address_key(address)}", f"user:{name.lower()}")
        wait = self.limiter.retry_after(*keys)
        if wait is not None:
            seconds = max(1, int(wait + 0.999))
            answer = self._login_form(request, text(locale, "slowed", seconds=seconds), 429)
            answer.headers["Retry-After"] = str(seconds)
            return answer
        # Counted as wrong before the first await, so that guesses sent at once see each
        # other; a right password clears the counts below.
        self.limiter.failed(*keys)
        user = (
            await self._call(lambda s: s.console_user_session(name))
            if auth.valid_name(name)
            else None
        )
        stored = None if user is None else user[0]
        # argon2 takes tens of milliseconds of CPU: not on the loop that takes hooks.
        right = await asyncio.to_thread(auth.password_ok, stored, form.get("password", ""))
        if not right or stored is None or user is None:
            log.warning("console: wrong password for %r from %s", name[:64], address)
            return self._login_form(request, text(locale, "wrong_password"), 401)
        self.limiter.succeeded(*keys)
        session = auth.new_session(
            name, self._clock(), self._runtime.settings.console.session_hours
        )
        await self.audit(Access(name, session.sid), "login", "console", address)
        cookie = Cookie(
            key=SESSION_COOKIE,
            value=auth.seal(self.key, session, stored, user[1]),
            path="/console",
            max_age=int(session.expires - self._clock()),
            httponly=True,
            samesite="lax",
            secure=self._secure(request),
        )
        return _redirect("/console/leads", [cookie])

    async def logout(self, request: Request[Any, Any, Any]) -> Response[str]:
        found = await self.posted(request)
        if isinstance(found, Response):
            return found
        access, _ = found
        # Ends every session of the user (copies of this cookie too), not only this browser's.
        now = self._clock()
        await self._call(lambda s: s.sign_out_console_user(access.user, now))
        await self.audit(access, "logout", "console")
        gone = Cookie(
            key=SESSION_COOKIE,
            value="",
            path="/console",
            max_age=0,
            httponly=True,
            samesite="lax",
            secure=self._secure(request),
        )
        return _redirect("/console/login", [gone])

    # -- leads ---------------------------------------------------------------------------------

    async def leads_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        state = request.query_params.get("state", "open")
        wanted = None if state == "all" else state
        if wanted is not None and wanted not in {s.value for s in LeadState}:
            wanted, state = "open", "open"
        leads = await self._call(lambda s: s.leads(wanted, 500))
        conversations = {}
        for lead in leads:
            conversations[lead.id] = await self._call(partial(_latest, key=lead.conv_key))
        return self._render(
            request,
            "leads",
            found,
            leads=leads,
            state=state,
            states=("open", "claimed", "done", "answered-in-chat", "all"),
            conversations=conversations,
        )

    async def lead_action(
        self, request: Request[Any, Any, Any], lead_id: int, action: str
    ) -> Response[str]:
        found = await self.posted(request)
        if isinstance(found, Response):
            return found
        access, form = found
        now = self._clock()
        note = form.get("note", "").strip()[:2000] or None

        def transition(lead: Lead) -> Lead | Refused:
            if action == "claim":
                return claim(lead, access.user, now)
            return finish(lead, access.user, now, note)

        result = await self._call(lambda s: s.change_lead(lead_id, transition))
        locale = self._locale(request)
        if result is None:
            return self._render(request, "notice", access, 404, message=text(locale, "not_found"))
        if isinstance(result, Refused):
            lead = result.lead
            why = text(
                locale,
                result.reason,
                name=lead.claimed_by if result.reason == "taken" else lead.done_by,
            )
            message = text(locale, "lead_refused", id=lead_id, why=why)
            return self._render(request, "notice", access, 409, message=message, tone="warn")
        await self.audit(access, action, f"lead {lead_id}", result.conv_key)
        said = "lead_claimed" if action == "claim" else "lead_done"
        state = "claimed" if action == "claim" else "done"
        return _redirect(
            f"/console/leads?{urlencode({'state': state, 'said': said, 'id': lead_id})}"
        )

    # -- queue ---------------------------------------------------------------------------------

    async def queue_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        since = self._clock() - HEALTH_WINDOW
        rows = await self._call(
            lambda s: s.deliveries(("pending", "sending", "retrying", "dead"), limit=500)
        )
        health = await self._call(lambda s: s.destination_health(since))
        counts = await self._call(lambda s: s.counts())
        by_channel: dict[str, list[Any]] = {}
        for row in rows:
            by_channel.setdefault(row.where, []).append(row)
        return self._render(
            request,
            "queue",
            found,
            by_channel=dict(sorted(by_channel.items())),
            health=health,
            counts=counts,
            redact=redact_text,
        )

    async def retry(
        self, request: Request[Any, Any, Any], delivery_id: int | None
    ) -> Response[str]:
        found = await self.posted(request)
        if isinstance(found, Response):
            return found
        access, _ = found
        now = self._clock()
        ids = None if delivery_id is None else [delivery_id]
        changed = await self._call(lambda s: s.retry_now(ids, now))
        if changed:
            self._runtime.worker.wake()
        target = "every dead delivery" if delivery_id is None else f"delivery {delivery_id}"
        await self.audit(access, "retry", target, f"{changed} requeued")
        return _redirect(f"/console/queue?{urlencode({'said': 'retried', 'count': changed})}")

    # -- quarantine ----------------------------------------------------------------------------

    async def quarantine_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        rows = await self._call(lambda s: s.quarantined(200))
        return self._render(request, "quarantine", found, rows=rows)

    async def quarantine_entry(
        self, request: Request[Any, Any, Any], entry_id: int, **values: Any
    ) -> Response[str]:
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        entry = await self._call(lambda s: s.quarantine_entry(entry_id))
        if entry is None:
            return self._render(
                request, "notice", found, 404, message=text(self._locale(request), "not_found")
            )
        shown, binary = body_text(entry.body)
        return self._render(
            request,
            "quarantine_entry",
            found,
            values.pop("status", 200),
            entry=entry,
            shown=values.pop("shown", shown),
            binary=binary,
            **values,
        )

    async def reaccept(self, request: Request[Any, Any, Any], entry_id: int) -> Response[str]:
        """Run the body through the intake pipeline: as stored (a form with no body), or as
        posted from the viewer's text area (the stored bytes unless it was edited); once
        accepted, the quarantined copy is dropped."""
        found = await self.posted(request)
        if isinstance(found, Response):
            return found
        access, form = found
        locale = self._locale(request)
        entry = await self._call(lambda s: s.quarantine_entry(entry_id))
        if entry is None:
            return self._render(request, "notice", access, 404, message=text(locale, "not_found"))
        edited = form.get("body")
        _, binary = body_text(entry.body)
        body = entry.body if edited is None or binary else edited_body(edited, entry.body)
        limit = self._runtime.settings.server.max_body_bytes
        try:
            if len(body) > limit:  # as the hook would: a corrected body can be any size
                raise PayloadTooLarge(limit)
            intake = prepare(self._runtime, body)
        except PayloadError as exc:
            await self.audit(access, "reaccept-refused", f"quarantine {entry_id}", exc.reason)
            message = text(locale, "still_refused", reason=exc.reason, message=exc.message)
            return await self.quarantine_entry(
                request,
                entry_id,
                status=413 if isinstance(exc, PayloadTooLarge) else 422,
                message=message,
                tone="error",
                shown=body.decode("utf-8", "replace") if not binary else body_text(body)[0],
            )
        accepted = await self._call(lambda s: s.accept(intake))
        await self._call(lambda s: s.drop_quarantine_entry(entry_id))
        if accepted.deliveries:
            self._runtime.worker.wake()
        self._runtime.metrics.received(intake.category, duplicate=accepted.duplicate)
        changed = " (corrected)" if body != entry.body else ""
        await self.audit(
            access, "reaccept", f"quarantine {entry_id}", f"conversation {intake.conv_key}{changed}"
        )
        message = text(
            locale,
            "reaccepted",
            conv=intake.conv_key,
            version=accepted.version,
            count=accepted.deliveries,
        )
        rows = await self._call(lambda s: s.quarantined(200))
        return self._render(request, "quarantine", access, rows=rows, message=message)

    # -- conversations -------------------------------------------------------------------------

    async def conversations_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        q = request.query_params
        # PostgreSQL's text cannot hold NUL, so no stored name or address contains one.
        search = (q.get("q") or "").replace("\x00", "").strip()[:200]
        zone = self._zone()
        start_day, end_day = _day(q.get("from")), _day(q.get("to"))
        start = 0.0 if start_day is None else _midnight(start_day, zone)
        end = float("inf") if end_day is None else _midnight(end_day + timedelta(days=1), zone)
        category = q.get("category") if q.get("category") in CATEGORIES else None
        rows = await self._call(lambda s: s.find_conversations(search, start, end, category, 200))
        return self._render(
            request,
            "conversations",
            found,
            rows=rows,
            search=search,
            date_from="" if start_day is None else start_day.isoformat(),
            date_to="" if end_day is None else end_day.isoformat(),
            category=category or "",
            categories=CATEGORIES,
        )

    async def conversation_page(
        self, request: Request[Any, Any, Any], conversation_id: int, **values: Any
    ) -> Response[str]:
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        row = await self._call(lambda s: s.conversation_row(conversation_id))
        raw = await self._call(lambda s: s.conversation_raw(conversation_id))
        if row is None or raw is None:
            return self._render(
                request, "notice", found, 404, message=text(self._locale(request), "not_found")
            )
        versions = await self._call(lambda s: s.conversation_versions(row.conv_key))
        timeline = {}
        for version in versions:
            timeline[version.id] = await self._call(partial(_deliveries_of, version=version.id))
        attempts = {}
        for rows in timeline.values():
            for delivery in rows:
                attempts[delivery.id] = await self._call(
                    partial(_attempts_of, delivery_id=delivery.id)
                )
        lead = await self._call(lambda s: s.lead_for_conversation(conversation_id))
        view = None
        try:
            conversation = parse(raw[0])
            view = build_view(
                conversation,
                Category(row.category),
                Translator(self._locale(request), self._zone()),
            )
        except (PayloadError, ValueError):
            pass
        return self._render(
            request,
            "conversation",
            found,
            row=row,
            view=view,
            versions=versions,
            timeline=timeline,
            attempts=attempts,
            lead=lead,
            redact=redact_text,
            **values,
        )

    async def replay(self, request: Request[Any, Any, Any], conversation_id: int) -> Response[str]:
        found = await self.posted(request)
        if isinstance(found, Response):
            return found
        access, _ = found
        stored = await self._call(lambda s: s.conversation_raw(conversation_id))
        if stored is None:
            return self._render(
                request, "notice", access, 404, message=text(self._locale(request), "not_found")
            )
        snapshot = self._runtime.snapshot
        routed = take(
            stored[0],
            snapshot.rules,
            low_rating_threshold=snapshot.settings.classify.low_rating_threshold,
            now=self._clock(),
        )
        created = await self._call(lambda s: s.replan(conversation_id, routed.decision.planned))
        if created:
            self._runtime.worker.wake()
        await self.audit(access, "replay", f"conversation {conversation_id}", f"{created} planned")
        query = urlencode({"said": "replayed", "count": created})
        return _redirect(f"/console/conversations/{conversation_id}?{query}")

    # -- rules ---------------------------------------------------------------------------------

    async def rules_page(self, request: Request[Any, Any, Any], **values: Any) -> Response[str]:
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        return self._rules(request, found, **values)

    def _rules(
        self, request: Request[Any, Any, Any], access: Access, status: int = 200, **values: Any
    ) -> Response[str]:
        settings = self._runtime.settings
        rules = [
            (
                rule.name,
                rule.match.model_dump_json(exclude_none=True, exclude_defaults=True),
                [describe_action(action, settings) for action in rule.actions],
                rule.follow_up,
            )
            for rule in settings.effective_rules
        ]
        fallback = [describe_action(action, settings) for action in settings.routing.fallback]
        values.setdefault("explanation", None)
        values.setdefault("pasted", "")
        values.setdefault("picked", "")
        return self._render(
            request, "rules", access, status, rules=rules, fallback=fallback, **values
        )

    async def rules_test(self, request: Request[Any, Any, Any]) -> Response[str]:
        """The `relay routes test` explanation for a stored conversation or a pasted body;
        nothing is stored or sent."""
        found = await self.posted(request)
        if isinstance(found, Response):
            return found
        access, form = found
        locale = self._locale(request)
        picked = form.get("conversation", "").strip()
        pasted = form.get("body", "")
        raw: bytes | None = None
        if picked:
            stored = (
                await self._call(lambda s: s.conversation_raw(_stored_id(int(picked))))
                if _ID.fullmatch(picked)
                else None
            )
            if stored is None:
                message = text(locale, "no_such_conversation", id=picked)
                return self._rules(
                    request,
                    access,
                    404,
                    message=message,
                    tone="error",
                    picked=picked,
                    pasted=pasted,
                )
            raw = stored[0]
        else:
            raw = pasted.encode()
        settings = self._runtime.settings
        try:
            routed = take(
                raw,
                settings.rule_set,
                low_rating_threshold=settings.classify.low_rating_threshold,
                now=self._clock(),
            )
        except PayloadError as exc:
            message = text(locale, "still_refused", reason=exc.reason, message=exc.message)
            return self._rules(
                request, access, 422, message=message, tone="error", picked=picked, pasted=pasted
            )
        lines = decision_lines(routed.conversation, routed.decision, settings)
        return self._rules(
            request, access, explanation="\n".join(lines), picked=picked, pasted=pasted
        )

    # -- stats and audit -----------------------------------------------------------------------

    async def stats_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        locale = self._locale(request)
        zone = self._zone()
        days = days_back(local_day(self._clock(), zone), STATS_DAYS)
        start, end = _midnight(days[0], zone), _midnight(days[-1] + timedelta(days=1), zone)
        stored = await self._call(lambda s: s.period_conversations(start, end))
        leads = await self._call(lambda s: s.leads_between(start, end))
        period = summarise(
            ((cat, at, _rating(raw)) for cat, at, raw in stored), leads, days=days, zone=zone
        )

        def t(key: str, **fill: object) -> str:
            return text(locale, key, **fill)

        per_day = charts.stacked_bars(
            t("per_day"),
            [d.strftime("%d.%m.") for d in period.days],
            [
                charts.Series(
                    t(f"category.{c}"), charts.COLOURS[c], tuple(map(float, period.per_day[c]))
                )
                for c in CATEGORIES
            ],
        )
        heat = charts.heatmap(
            t("missed_heatmap"),
            t("weekdays").split(),
            [f"{h:02d}" for h in range(24)],
            period.missed_share,
        )
        claims = charts.horizontal_bars(
            t("time_to_claim"), [(label, float(n)) for label, n in period.claim_buckets]
        )
        ratings = charts.horizontal_bars(
            t("ratings"),
            [(t("stars", n=stars), float(n)) for stars, n in period.ratings],
            "#b45309",
        )
        median = (
            None if period.median_claim_seconds is None else age_text(period.median_claim_seconds)
        )
        legend = [(t(f"category.{c}"), charts.COLOURS[c]) for c in CATEGORIES]
        return self._render(
            request,
            "stats",
            found,
            per_day=per_day,
            heat=heat,
            claims=claims,
            ratings=ratings,
            median=median,
            legend=legend,
        )

    async def audit_page(self, request: Request[Any, Any, Any]) -> Response[str]:
        found = await self.gate(request)
        if isinstance(found, Response):
            return found
        rows = await self._call(lambda s: s.audit_log(500))
        return self._render(request, "audit", found, rows=rows)

    async def stylesheet(self, request: Request[Any, Any, Any]) -> Response[str]:
        if not self._on_listener(request):
            return _not_found()
        environment = self._environment()
        assert environment.loader is not None
        source, _, _ = environment.loader.get_source(environment, "console/console.css")
        return Response(
            source,
            media_type="text/css",
            headers={**HEADERS, "Cache-Control": "max-age=3600"},
        )


def _latest(store: StoreProtocol, *, key: str) -> int | None:
    return store.latest_version_id(key)


def _deliveries_of(store: StoreProtocol, *, version: int) -> list[Any]:
    return store.deliveries(STATUSES, conversation_id=version, limit=200)


def _attempts_of(store: StoreProtocol, *, delivery_id: int) -> list[tuple[float, str, str]]:
    return store.delivery_attempts(delivery_id)


def _midnight(day: date, zone: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


def _rating(raw: bytes) -> int | None:
    try:
        return parse(raw).channel.rating
    except (PayloadError, ValueError):
        return None


class _RefusalPage(ASGIResponse):
    """The console page for a refusal, rendered when sent: whether the console is on and who
    is signed in are questions to the store, and Litestar's exception handlers are not async."""

    def __init__(
        self,
        endpoints: ConsoleEndpoints,
        request: Request[Any, Any, Any],
        status: int,
        headers: Mapping[str, str],
    ) -> None:
        super().__init__(status_code=status)
        self._endpoints = endpoints
        self._request = request
        self._status = status
        self._extra = dict(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        page = await self._endpoints.refusal(self._request, self._status, self._extra)
        answer = page.to_asgi_response(
            app=None, request=self._request, is_head_response=scope.get("method") == "HEAD"
        )
        await answer(scope, receive, send)


class _Refusal(Response[str]):
    def __init__(self, endpoints: ConsoleEndpoints, status: int, headers: Mapping[str, str]):
        super().__init__("", status_code=status)
        self._endpoints = endpoints
        self._status = status
        self._extra = dict(headers)

    def to_asgi_response(self, app: Any, request: Request[Any, Any, Any], **_: Any) -> ASGIResponse:
        return _RefusalPage(self._endpoints, request, self._status, self._extra)


@dataclass(frozen=True)
class Console:
    handlers: list[HTTPRouteHandler]
    exception_handlers: ExceptionHandlersMap


def build_console(runtime: Runtime) -> Console:
    """The console's routes, each answering 404 while no user exists, or on another listener
    than ``[console] port`` when that is set; and the app's handler for Litestar's own 4xx
    answers, which makes them console pages under /console (JSON elsewhere, as before)."""
    # The runtime's clock as it is at each call (tests set it after the app is built).
    c = ConsoleEndpoints(runtime, clock=lambda: runtime.clock())  # noqa: PLW0108

    def refused(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        if not (400 <= status < 500 and _under_console(request.scope.get("path", ""))):
            return create_exception_response(request, exc)
        assert isinstance(exc, HTTPException)
        return _Refusal(c, status, exc.headers or {})

    return Console(_routes(c), {HTTPException: refused})


def _routes(c: ConsoleEndpoints) -> list[HTTPRouteHandler]:
    small: dict[str, Any] = {
        "include_in_schema": False,
        "status_code": 200,
        "request_max_body_size": SMALL_FORM,
    }
    large = {**small, "request_max_body_size": BODY_FORM}

    @get("/console", include_in_schema=False)
    async def home(request: Request[Any, Any, Any]) -> Response[str]:
        found = await c.gate(request)
        return found if isinstance(found, Response) else _redirect("/console/leads")

    @get("/console/static/console.css", include_in_schema=False)
    async def css(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.stylesheet(request)

    @get("/console/login", include_in_schema=False)
    async def login_page(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.login_page(request)

    @post("/console/login", **small)
    async def login(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.login(request)

    @post("/console/logout", **small)
    async def logout(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.logout(request)

    @get("/console/leads", include_in_schema=False)
    async def leads(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.leads_page(request)

    @post("/console/leads/{lead_id:int}/claim", **small)
    async def lead_claim(request: Request[Any, Any, Any], lead_id: FromPath[int]) -> Response[str]:
        return await c.lead_action(request, _stored_id(lead_id), "claim")

    @post("/console/leads/{lead_id:int}/done", **small)
    async def lead_done(request: Request[Any, Any, Any], lead_id: FromPath[int]) -> Response[str]:
        return await c.lead_action(request, _stored_id(lead_id), "done")

    @get("/console/queue", include_in_schema=False)
    async def queue(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.queue_page(request)

    @post("/console/queue/{delivery_id:int}/retry", **small)
    async def retry_one(
        request: Request[Any, Any, Any], delivery_id: FromPath[int]
    ) -> Response[str]:
        return await c.retry(request, _stored_id(delivery_id))

    @post("/console/queue/retry-dead", **small)
    async def retry_dead(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.retry(request, None)

    @get("/console/quarantine", include_in_schema=False)
    async def quarantine(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.quarantine_page(request)

    @get("/console/quarantine/{entry_id:int}", include_in_schema=False)
    async def quarantine_entry(
        request: Request[Any, Any, Any], entry_id: FromPath[int]
    ) -> Response[str]:
        return await c.quarantine_entry(request, _stored_id(entry_id))

    @post("/console/quarantine/{entry_id:int}/reaccept", **large)
    async def reaccept(request: Request[Any, Any, Any], entry_id: FromPath[int]) -> Response[str]:
        return await c.reaccept(request, _stored_id(entry_id))

    @get("/console/conversations", include_in_schema=False)
    async def conversations(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.conversations_page(request)

    @get("/console/conversations/{conversation_id:int}", include_in_schema=False)
    async def conversation(
        request: Request[Any, Any, Any], conversation_id: FromPath[int]
    ) -> Response[str]:
        return await c.conversation_page(request, _stored_id(conversation_id))

    @post("/console/conversations/{conversation_id:int}/replay", **small)
    async def replay(
        request: Request[Any, Any, Any], conversation_id: FromPath[int]
    ) -> Response[str]:
        return await c.replay(request, _stored_id(conversation_id))

    @get("/console/rules", include_in_schema=False)
    async def rules(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.rules_page(request)

    @post("/console/rules/test", **large)
    async def rules_test(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.rules_test(request)

    @get("/console/stats", include_in_schema=False)
    async def stats(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.stats_page(request)

    @get("/console/audit", include_in_schema=False)
    async def audit(request: Request[Any, Any, Any]) -> Response[str]:
        return await c.audit_page(request)

    return [
        home, css, login_page, login, logout, leads, lead_claim, lead_done, queue, retry_one,
        retry_dead, quarantine, quarantine_entry, reaccept, conversations, conversation, replay,
        rules, rules_test, stats, audit,
    ]  # fmt: skip
