"""The daily digest email: open leads with claim links, yesterday's numbers, low ratings and
missed chats by hour (an HTML-table bar chart, no images). Pure: values in, message out."""

from __future__ import annotations

import email.message
import email.policy
import email.utils
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from relay.leads.model import Lead, LeadState
from relay.leads.schedule import DayFigures
from relay.leads.texts import text
from relay.model.content import EmailContent
from relay.model.conversation import Channel, Conversation
from relay.render.headers import envelope_addresses, header_safe, mailbox_list
from relay.render.i18n import Translator

if TYPE_CHECKING:
    import jinja2

MAX_OPEN_SHOWN = 60  # with the limits below, the digest stays well under 100 KB
MAX_LOW_SHOWN = 20
MAX_COMMENT = 200
BAR_PX = 200  # the longest bar of the chart


@dataclass(frozen=True)
class OpenItem:
    line: str
    age: str
    claim_url: str | None


@dataclass(frozen=True)
class LowItem:
    visitor: str
    rating: int
    comment: str


@dataclass(frozen=True)
class HourBar:
    hour: str
    count: int
    width: int


@dataclass(frozen=True)
class DigestView:
    locale: str
    title: str
    subject: str
    open_heading: str
    open_items: tuple[OpenItem, ...]
    open_more: str | None
    none_open: str
    claim_label: str
    yesterday: str
    counts: tuple[tuple[str, int], ...]
    median_label: str
    median: str
    low_heading: str
    low_items: tuple[LowItem, ...]
    no_low: str
    hours_heading: str
    hour_label: str
    count_label: str
    hours: tuple[HourBar, ...]


@dataclass(frozen=True)
class DigestInput:
    day: date  # the day the digest is sent (yesterday is the day before)
    now: float
    open_leads: Sequence[tuple[Lead, str | None]]  # with each one's claim link
    figures: DayFigures
    low_rated: Sequence[Conversation]


def build_view(data: DigestInput, locale: str, zone: ZoneInfo) -> DigestView:
    translator = Translator(locale, zone)

    def t(key: str, **values: object) -> str:
        return text(locale, key, **values)

    yesterday = date.fromordinal(data.day.toordinal() - 1)
    items = tuple(
        OpenItem(
            line=f"{t('category.' + lead.category)}: "
            + (lead.visitor_name or lead.visitor_email or t("unknown_visitor")),
            age=t("digest_age", age=translator.duration(max(data.now - lead.created_at, 0))),
            claim_url=link,
        )
        for lead, link in data.open_leads[:MAX_OPEN_SHOWN]
    )
    more = len(data.open_leads) - len(items)
    peak = max(data.figures.missed_by_hour) or 1
    hours = tuple(
        HourBar(f"{hour:02d}", count, round(BAR_PX * count / peak))
        for hour, count in enumerate(data.figures.missed_by_hour)
    )
    low = tuple(
        LowItem(
            visitor=c.visitor.display_name or c.visitor.email_address or t("unknown_visitor"),
            rating=c.channel.rating or 0,
            comment=(c.channel.rating_desc or "").strip()[:MAX_COMMENT],
        )
        for c in data.low_rated[:MAX_LOW_SHOWN]
    )
    median = data.figures.median_claim_seconds
    day_text = translator.date_text(datetime.combine(yesterday, datetime.min.time(), zone))
    return DigestView(
        locale=locale,
        title=t("digest_title"),
        subject=t("digest_subject", day=data.day.isoformat(), count=len(data.open_leads)),
        open_heading=t("digest_open"),
        open_items=items,
        open_more=t("digest_more", count=more) if more > 0 else None,
        none_open=t("digest_none_open"),
        claim_label=t("claim_button"),
        yesterday=t("digest_yesterday", day=day_text),
        counts=tuple(
            (t(f"category.{name}"), data.figures.counts.get(name, 0))
            for name in ("missed", "offline", "low-rated", "normal")
        ),
        median_label=t("digest_median"),
        median=(translator.duration(median) or "-")
        if median is not None
        else t("digest_no_claims"),
        low_heading=t("digest_low"),
        low_items=low,
        no_low=t("digest_no_low"),
        hours_heading=t("digest_hours"),
        hour_label=t("digest_hour"),
        count_label=t("digest_count"),
        hours=hours,
    )


def render(
    view: DigestView,
    environment: jinja2.Environment,
    *,
    from_address: str,
    to: Sequence[str],
    message_id: str,
    now: float,
) -> EmailContent:
    html = environment.get_template("email/digest.html.j2").render(digest=view)
    plain = environment.get_template("email/digest.txt.j2").render(digest=view)
    message = email.message.EmailMessage(policy=email.policy.SMTP)
    message["From"] = header_safe(from_address)
    message["To"] = ", ".join(mailbox_list(to))
    message["Subject"] = header_safe(view.subject)
    message["Date"] = email.utils.format_datetime(datetime.fromtimestamp(now, UTC))
    message["Message-ID"] = message_id
    message.set_content(plain)
    message.add_alternative(html, subtype="html")
    return EmailContent(message=message, recipients=tuple(envelope_addresses(to)))


DIGEST_TEMPLATES = ("email/digest.html.j2", "email/digest.txt.j2")


def check_inputs(now: float) -> tuple[DigestInput, ...]:
    """Sample digests for ``relay check``: a quiet day (nothing open, no ratings, no claims)
    and a busy one that fills every part (links, a cut-off list, a low rating, a median)."""
    day = datetime.fromtimestamp(now, UTC).date()
    quiet = DigestInput(day, now, (), DayFigures({}, (0,) * 24, None), ())
    leads = [
        (
            Lead(n, f"k{n}", "missed", now - 3600 * n, LeadState.OPEN, visitor_name=f"V{n}"),
            "https://relay.example/claim" if n % 2 else None,
        )
        for n in range(1, MAX_OPEN_SHOWN + 3)
    ]
    low = Conversation(account_id=1, channel=Channel(id=2, rating=1, rating_desc="slow <b>"))
    figures = DayFigures({"missed": 3, "normal": 1}, tuple(range(24)), 95.0)
    return quiet, DigestInput(day, now, leads, figures, (low,))


def template_problems(
    environment: jinja2.Environment, locale: str, zone: ZoneInfo, now: float
) -> list[str]:
    """Each digest template compiled and rendered with the sample digests ([] when both
    render): the digest is sent long after start-up, so a broken one is found here."""
    import jinja2  # noqa: PLC0415 -- imported with the caller's environment; see the module top

    views = [build_view(data, locale, zone) for data in check_inputs(now)]
    problems = []
    for path in DIGEST_TEMPLATES:
        try:
            template = environment.get_template(path)
            for view in views:
                template.render(digest=view)
        except jinja2.TemplateNotFound:
            problems.append(f"{path} does not exist")
        except jinja2.TemplateSyntaxError as exc:
            problems.append(f"{exc.filename or path} line {exc.lineno}: {exc.message}")
        except jinja2.TemplateError as exc:
            problems.append(f"{path}: {exc}")
        except Exception as exc:  # the template's own code raised (1/0 ...)
            problems.append(f"{path}: rendering it raised {type(exc).__name__}: {exc}")
    return problems
