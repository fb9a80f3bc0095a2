"""``/leads/<token>``: GET shows a confirm page and changes nothing; POST claims or finishes."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import quote, unquote
from zoneinfo import ZoneInfo

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from relay.leads import links
from relay.leads.model import Lead, LeadState, Refused, claim, clean_name, clean_note, finish
from relay.leads.texts import pick_locale

if TYPE_CHECKING:  # the pages and their templates' loader: imported on the first page
    from relay.leads.pages import Pages, PageView
    from relay.runtime import Runtime
    from relay.store import StoreProtocol

log = logging.getLogger(__name__)

NONCE_COOKIE = "relay_lead_form"
NAME_COOKIE = "relay_lead_name"
MAX_FORM_BYTES = 16_384
HEADERS: Final[dict[str, str]] = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none';"
        " frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _html(page: str, status: int, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(
        page,
        status_code=status,
        media_type="text/html",
        headers=HEADERS,
        cookies=cookies or [],
    )


def _name_cookie(request: Request[Any, Any, Any]) -> str:
    return clean_name(unquote(request.cookies.get(NAME_COOKIE, "")))


class LeadEndpoints:
    """The pages behind the links; reads the runtime's current settings on every request."""

    def __init__(self, runtime: Runtime, clock: Callable[[], float] = time.time) -> None:
        self._runtime = runtime
        self._clock = clock
        self._built: dict[tuple[str, str, str], Pages] = {}  # per locale and render settings

    def pages(self, request: Request[Any, Any, Any]) -> Pages:
        render = self._runtime.settings.render
        locale = pick_locale(request.headers.get("accept-language"), render.locale)
        key = (locale, render.timezone, str(render.templates_dir))
        found = self._built.get(key)
        if found is None:
            import jinja2  # noqa: PLC0415 -- on the first page: an idle relay imports no Jinja

            from relay.leads.pages import Pages  # noqa: PLC0415 -- as above
            from relay.render.environment import loader  # noqa: PLC0415 -- as above

            environment = jinja2.Environment(
                loader=loader(render.templates_dir),
                autoescape=True,
                undefined=jinja2.StrictUndefined,
                auto_reload=False,
            )
            found = self._built[key] = Pages(locale, ZoneInfo(render.timezone), environment)
        return found

    @property
    def _key(self) -> bytes:
        return self._runtime.snapshot.link_key

    def _secure(self) -> bool:
        return (self._runtime.settings.follow_up.public_url or "").startswith("https://")

    def _checked(self, token: str, p: Pages, now: float) -> links.LinkOk | Response[str]:
        key = self._key
        result = links.verify(key, token, now) if key else links.LinkBad("invalid")
        if isinstance(result, links.LinkBad):
            status = 410 if result.reason == "expired" else 404
            return _html(p.render(p.notice(result.reason)), status)
        return result

    def _form(
        self, p: Pages, link: links.LinkOk, lead: Lead, *, token: str, name: str, error: bool
    ) -> Response[str]:
        from relay.leads.pages import FormView  # noqa: PLC0415 -- loaded with the pages

        nonce = links.new_nonce()
        claiming = link.action == "claim"
        form = FormView(
            action=f"/leads/{token}",
            nonce=nonce,
            csrf=links.csrf(self._key, token, nonce),
            name=name,
            name_label=p.t("your_name"),
            button=p.t("claim_button" if claiming else "done_button"),
            note_label=None if claiming else p.t("note"),
        )
        page = p.page(
            p.t("confirm_claim" if claiming else "confirm_done"),
            lead_line=p.lead_line(lead, self._clock()),
            message=p.t("name_needed") if error else None,
            tone="error",
            form=form,
        )
        cookie = Cookie(
            key=NONCE_COOKIE,
            value=nonce,
            path="/leads",
            httponly=True,
            samesite="strict",
            secure=self._secure(),
        )
        return _html(p.render(page), 400 if error else 200, [cookie])

    async def show(self, request: Request[Any, Any, Any], token: str) -> Response[str]:
        """The confirm page; never changes anything (mail scanners follow links)."""
        p, now = self.pages(request), self._clock()
        link = self._checked(token, p, now)
        if isinstance(link, Response):
            return link
        lead = await self._runtime.store.call(lambda s: s.lead(link.lead_id))
        if lead is None:
            return _html(p.render(p.notice("not_found")), 404)
        refusal = _refusal(link.action, lead)
        if refusal is not None:
            return _html(p.render(p.refused(refusal, now)), 200)
        return self._form(p, link, lead, token=token, name=_name_cookie(request), error=False)

    async def act(self, request: Request[Any, Any, Any], token: str) -> Response[str]:
        """Claim or finish, for a form this relay served for this link (CSRF: the form's
        nonce must match its cookie and the HMAC of the link and the nonce)."""
        p = self.pages(request)
        link = self._checked(token, p, self._clock())
        if isinstance(link, Response):
            return link
        form = await request.form()
        nonce = str(form.get("nonce") or "")
        given = str(form.get("csrf") or "")
        if nonce != request.cookies.get(NONCE_COOKIE, "") or not links.csrf_ok(
            self._key, token, nonce, given
        ):
            return _html(p.render(p.notice("form_expired")), 403)
        name = clean_name(str(form.get("name") or ""))
        note = clean_note(str(form.get("note") or "")) or None
        return await self._apply(p, link, token=token, name=name, note=note)

    async def _apply(
        self, p: Pages, link: links.LinkOk, *, token: str, name: str, note: str | None
    ) -> Response[str]:
        now = self._clock()
        if not name:
            lead = await self._runtime.store.call(lambda s: s.lead(link.lead_id))
            if lead is None:
                return _html(p.render(p.notice("not_found")), 404)
            return self._form(p, link, lead, token=token, name="", error=True)
        transition: Callable[[Lead], Lead | Refused] = (
            partial(_claim, by=name, at=now)
            if link.action == "claim"
            else partial(_finish, by=name, at=now, note=note)
        )
        result = await self._runtime.store.call(lambda s: _change(s, link.lead_id, transition))
        if result is None:
            return _html(p.render(p.notice("not_found")), 404)
        if isinstance(result, Refused):
            return _html(p.render(p.refused(result, now)), 409)
        log.info("lead %d %s by %r through a link", result.id, result.state.value, name)
        remember = Cookie(
            key=NAME_COOKIE,
            value=quote(name),
            path="/leads",
            max_age=365 * 86400,
            httponly=True,
            samesite="lax",
            secure=self._secure(),
        )
        done_token = links.sign(self._key, "done", result.id, link.expires)
        return _html(p.render(_success(p, result, done_token, now)), 200, [remember])


def build_lead_handlers(runtime: Runtime) -> list[HTTPRouteHandler]:
    endpoints = LeadEndpoints(runtime)

    @get("/leads/{token:str}", include_in_schema=False)
    async def lead_page(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
        return await endpoints.show(request, token)

    @post(
        "/leads/{token:str}",
        include_in_schema=False,
        status_code=200,
        request_max_body_size=MAX_FORM_BYTES,
    )
    async def lead_act(request: Request[Any, Any, Any], token: FromPath[str]) -> Response[str]:
        return await endpoints.act(request, token)

    return [lead_page, lead_act]


def _claim(lead: Lead, *, by: str, at: float) -> Lead | Refused:
    return claim(lead, by, at)


def _finish(lead: Lead, *, by: str, at: float, note: str | None) -> Lead | Refused:
    return finish(lead, by, at, note)


def _change(
    store: StoreProtocol, lead_id: int, transition: Callable[[Lead], Lead | Refused]
) -> Lead | Refused | None:
    return store.change_lead(lead_id, transition)


def _refusal(action: links.Action, lead: Lead) -> Refused | None:
    """What a GET shows instead of a form: the lead is no longer open for this action."""
    if lead.state is LeadState.DONE:
        return Refused("finished", lead)
    if lead.state is LeadState.ANSWERED:
        return Refused("answered", lead)
    if action == "claim" and lead.state is LeadState.CLAIMED:
        return Refused("taken", lead)
    return None


def _success(p: Pages, lead: Lead, done_token: str, now: float) -> PageView:
    visitor = lead.visitor_email or lead.visitor_name or p.t("unknown_visitor")
    if lead.state is LeadState.DONE:
        return p.page(
            p.t("title"),
            lead_line=p.lead_line(lead, now),
            message=p.t("finished", name=lead.done_by),
        )
    return p.page(
        p.t("title"),
        lead_line=p.lead_line(lead, now),
        message=p.t("claimed", name=lead.claimed_by, visitor=visitor),
        next_hint=p.t("then_done"),
        next_button=p.t("done_button"),
        next_url=f"/leads/{done_token}",
    )
