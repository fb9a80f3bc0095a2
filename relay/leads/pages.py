"""The server-rendered lead pages: what a link's GET shows and what its POST answers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal
from zoneinfo import ZoneInfo

from relay.leads.model import Lead, Refused
from relay.leads.texts import text
from relay.render.i18n import Translator

if TYPE_CHECKING:
    import jinja2

Tone = Literal["ok", "warn", "error"]


@dataclass(frozen=True)
class FormView:
    action: str
    nonce: str
    csrf: str
    name: str
    name_label: str
    button: str
    note_label: str | None = None


@dataclass(frozen=True)
class PageView:
    locale: str
    title: str
    heading: str
    lead_line: str | None = None
    message: str | None = None
    tone: Tone = "ok"
    form: FormView | None = None
    next_url: str | None = None
    next_hint: str | None = None
    next_button: str | None = None


class Pages:
    """Renders the pages in one locale and time zone; no I/O after construction."""

    def __init__(self, locale: str, zone: ZoneInfo, environment: jinja2.Environment) -> None:
        self.locale = locale
        self._translator = Translator(locale, zone)
        self._template = environment.get_template("pages/lead.html.j2")

    def t(self, key: str, **values: object) -> str:
        return text(self.locale, key, **values)

    def render(self, page: PageView) -> str:
        return self._template.render(page=page)

    def when(self, ts: float, now: float) -> str:
        """ "10:42" today, else the date and the time, in the relay's time zone."""
        moment = datetime.fromtimestamp(ts, UTC)
        today = self._translator.date_text(datetime.fromtimestamp(now, UTC))
        if self._translator.date_text(moment) == today:
            return self._translator.time_text(moment)
        return self._translator.datetime_text(moment)

    def lead_line(self, lead: Lead, now: float) -> str:
        visitor = lead.visitor_name or lead.visitor_email or self.t("unknown_visitor")
        return self.t(
            "lead_of",
            category=self.t(f"category.{lead.category}"),
            visitor=visitor,
            when=self.when(lead.created_at, now),
        )

    def page(
        self,
        heading: str,
        *,
        lead_line: str | None = None,
        message: str | None = None,
        tone: Tone = "ok",
        form: FormView | None = None,
        next_url: str | None = None,
        next_hint: str | None = None,
        next_button: str | None = None,
    ) -> PageView:
        return PageView(
            self.locale,
            self.t("title"),
            heading,
            lead_line,
            message,
            tone,
            form,
            next_url,
            next_hint,
            next_button,
        )

    def notice(self, key: str, tone: Tone = "error") -> PageView:
        return self.page(self.t("title"), message=self.t(key), tone=tone)

    def refused(self, refusal: Refused, now: float) -> PageView:
        lead = refusal.lead
        if refusal.reason == "taken":
            message = self.t(
                "taken", name=lead.claimed_by, time=self.when(lead.claimed_at or now, now)
            )
        elif refusal.reason == "finished":
            message = self.t(
                "done_already", name=lead.done_by, time=self.when(lead.done_at or now, now)
            )
        else:
            message = self.t("answered")
        return self.page(
            self.t("title"), lead_line=self.lead_line(lead, now), message=message, tone="warn"
        )
