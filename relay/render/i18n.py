"""Labels in English, Czech and German, and Babel-based date, time, duration and number formats."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from datetime import date, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Final, Generic, Literal, TypeVar

_Unit = Literal["hour", "minute", "second"]

# One dict per locale keeps every label reviewable in one place and needs no compile step;
# docs/rendering.md explains why this beats .po files for ~70 strings in three languages.
# Placeholders use str.format; {name} is always a person's name, {count} a formatted number.
# Longer durations are shown as unknown (timedelta and Babel cannot hold absurd ones).
MAX_DURATION_SECONDS = 100 * 365 * 86400
DATES_KEPT = 1024  # formatted dates a Translator remembers before it starts again
DURATIONS_KEPT = 4096  # formatted durations (whole seconds) it remembers, likewise
NUMBERS_KEPT = 1024  # formatted counts, and plural forms by count, it remembers, likewise

K = TypeVar("K", bound=Hashable)


class Remembered(Generic[K]):
    """Texts made once per key (Babel is the slow part), at most ``bound`` of them kept: when
    full, all are forgotten and it starts again. One per Translator and kind of text."""

    __slots__ = ("_bound", "_texts")

    def __init__(self, bound: int) -> None:
        self._bound = bound
        self._texts: dict[K, str] = {}

    def __len__(self) -> int:
        return len(self._texts)

    def get(self, key: K, make: Callable[[], str]) -> str:
        """The text for ``key``, made by ``make`` the first time."""
        found = self._texts.get(key)
        if found is None:
            if len(self._texts) >= self._bound:
                self._texts.clear()
            found = self._texts[key] = make()
        return found


_EN: Final[dict[str, str]] = {
    "category.offline": "Offline message",
    "category.missed": "Missed chat",
    "category.low-rated": "Low-rated chat",
    "category.normal": "Chat",
    "unknown_visitor": "Unknown visitor",
    "visitor": "Visitor",
    "agent": "Agent",
    "unknown_sender": "Unknown sender",
    "email": "Email",
    "location": "Location",
    "rating": "Rating",
    "rating_value": "{rating} of 5",
    "not_rated": "Not rated",
    "comment": "Comment",
    "date": "Date",
    "duration": "Duration",
    "first_response": "First response",
    "avg_response": "Average response",
    "agents": "Agents",
    "no_agents": "No agent joined",
    "note": "Note",
    "group": "Group",
    "pages": "Pages visited",
    "variables": "Visitor details",
    "referer": "Came from",
    "technical": "Technical details",
    "ip_address": "IP address",
    "platform": "Platform",
    "user_agent": "Browser",
    "transcript": "Transcript",
    "no_messages": "The conversation has no messages.",
    "triggered_by": "Automatic message: {name}",
    "offline_form": "Left via the offline form, reply to {email}",
    "reply_hint": "Reply to this email to answer {name} directly.",
    "messages_count": "Messages",
    "chat_id": "Chat {chat_id} · account {account_id}",
    "earlier_not_shown.one": "… {count} earlier message not shown",
    "earlier_not_shown.other": "… {count} earlier messages not shown",
    "earlier_stored.one": "… {count} earlier message not shown; the full conversation is stored",
    "earlier_stored.other": (
        "… {count} earlier messages not shown; the full conversation is stored"
    ),
    "last_messages": "Last messages",
    "event.agent.join": "{name} joined the chat",
    "event.agent.leave": "{name} left the chat",
    "event.agent.transfer": "The chat was transferred to {name}",
    "event.agent.assign": "The chat was assigned to {name}",
    "event.close.visitorClose": "The visitor closed the chat",
    "event.close.agentClose": "{name} closed the chat",
    "event.close.timeout": "The chat was closed after inactivity",
    "event.close.system": "The chat was closed",
    "event.visitor.join": "The visitor joined the chat",
    "event.visitor.leave": "The visitor left the chat",
    "event.visitor.rating": "The visitor rated the chat",
    "an_agent": "An agent",
    "reply_subject": "Re: {text}",
    "reply_to": "Reply to {name}",
    "open_in_smartsupp": "Open in Smartsupp",
    "call": "Call {phone}",
    "more_pages.one": "+{count} more page",
    "more_pages.other": "+{count} more pages",
    "landing_page": "Landing page",
    "chat_started_on": "Chat started on",
    "landing_and_chat": "Landing page, chat started here",
    "no_contact": "No contact details: the visitor left no email address or phone number.",
    "no_contact_short": "no contact",
    "the_ask": "What the visitor wrote",
    "returning": "Returning visitor",
    "history.one": "{count} earlier conversation",
    "history.other": "{count} earlier conversations",
    "history_missed": "{count} missed on {date}",
    "history_last": "last: {category} on {date}",
    "earlier_attached.one": "… {count} earlier message not shown; the whole transcript is attached",
    "earlier_attached.other": (
        "… {count} earlier messages not shown; the whole transcript is attached"
    ),
    "footer": "Sent by relay from a Smartsupp conversation.",
}

_CS: Final[dict[str, str]] = {
    "category.offline": "Offline zpráva",
    "category.missed": "Zmeškaný chat",
    "category.low-rated": "Špatně hodnocený chat",
    "category.normal": "Chat",
    "unknown_visitor": "Neznámý návštěvník",
    "visitor": "Návštěvník",
    "agent": "Operátor",
    "unknown_sender": "Neznámý odesílatel",
    "email": "E-mail",
    "location": "Místo",
    "rating": "Hodnocení",
    "rating_value": "{rating} z 5",
    "not_rated": "Bez hodnocení",
    "comment": "Komentář",
    "date": "Datum",
    "duration": "Délka",
    "first_response": "Doba první odpovědi",
    "avg_response": "Průměrná doba odpovědi",
    "agents": "Operátoři",
    "no_agents": "Nepřipojil se žádný operátor",
    "note": "Poznámka",
    "group": "Skupina",
    "pages": "Navštívené stránky",
    "variables": "Údaje o návštěvníkovi",
    "referer": "Zdroj návštěvy",
    "technical": "Technické údaje",
    "ip_address": "IP adresa",
    "platform": "Platforma",
    "user_agent": "Prohlížeč",
    "transcript": "Přepis konverzace",
    "no_messages": "Konverzace neobsahuje žádné zprávy.",
    "triggered_by": "Automatická zpráva: {name}",
    "offline_form": "Zanecháno přes offline formulář, odpovězte na {email}",
    "reply_hint": "Odpověď na tento e-mail dostane přímo {name}.",
    "messages_count": "Zprávy",
    "chat_id": "Chat {chat_id} · účet {account_id}",
    "earlier_not_shown.one": "… {count} starší zpráva není zobrazena",
    "earlier_not_shown.few": "… {count} starší zprávy nejsou zobrazeny",
    "earlier_not_shown.other": "… {count} starších zpráv není zobrazeno",
    "earlier_stored.one": "… {count} starší zpráva není zobrazena; celá konverzace je uložena",
    "earlier_stored.few": ("… {count} starší zprávy nejsou zobrazeny; celá konverzace je uložena"),
    "earlier_stored.other": ("… {count} starších zpráv není zobrazeno; celá konverzace je uložena"),
    "last_messages": "Poslední zprávy",
    "event.agent.join": "{name} se připojil(a) k chatu",
    "event.agent.leave": "{name} opustil(a) chat",
    "event.agent.transfer": "Chat byl předán: {name}",
    "event.agent.assign": "Chat byl přidělen: {name}",
    "event.close.visitorClose": "Návštěvník ukončil chat",
    "event.close.agentClose": "{name} ukončil(a) chat",
    "event.close.timeout": "Chat byl ukončen kvůli neaktivitě",
    "event.close.system": "Chat byl ukončen",
    "event.visitor.join": "Návštěvník se připojil k chatu",
    "event.visitor.leave": "Návštěvník odešel z chatu",
    "event.visitor.rating": "Návštěvník ohodnotil chat",
    "an_agent": "Operátor",
    "reply_subject": "Re: {text}",
    "reply_to": "Odpovědět: {name}",
    "open_in_smartsupp": "Otevřít ve Smartsuppu",
    "call": "Zavolat {phone}",
    "more_pages.one": "a {count} další stránka",
    "more_pages.few": "a {count} další stránky",
    "more_pages.other": "a {count} dalších stránek",
    "landing_page": "Vstupní stránka",
    "chat_started_on": "Chat začal na",
    "landing_and_chat": "Vstupní stránka, zde začal chat",
    "no_contact": "Bez kontaktu: návštěvník nezanechal e-mail ani telefon.",
    "no_contact_short": "bez kontaktu",
    "the_ask": "Co návštěvník napsal",
    "returning": "Vracející se návštěvník",
    "history.one": "{count} dřívější konverzace",
    "history.few": "{count} dřívější konverzace",
    "history.other": "{count} dřívějších konverzací",
    "history_missed": "zmeškané: {count}, naposledy {date}",
    "history_last": "poslední: {category}, {date}",
    "earlier_attached.one": "… {count} starší zpráva není zobrazena; celý přepis je v příloze",
    "earlier_attached.few": "… {count} starší zprávy nejsou zobrazeny; celý přepis je v příloze",
    "earlier_attached.other": ("… {count} starších zpráv není zobrazeno; celý přepis je v příloze"),
    "footer": "Odesláno službou relay z konverzace Smartsupp.",
}

_DE: Final[dict[str, str]] = {
    "category.offline": "Offline-Nachricht",
    "category.missed": "Verpasster Chat",
    "category.low-rated": "Schlecht bewerteter Chat",
    "category.normal": "Chat",
    "unknown_visitor": "Unbekannter Besucher",
    "visitor": "Besucher",
    "agent": "Mitarbeiter",
    "unknown_sender": "Unbekannter Absender",
    "email": "E-Mail",
    "location": "Ort",
    "rating": "Bewertung",
    "rating_value": "{rating} von 5",
    "not_rated": "Nicht bewertet",
    "comment": "Kommentar",
    "date": "Datum",
    "duration": "Dauer",
    "first_response": "Erste Antwortzeit",
    "avg_response": "Durchschnittliche Antwortzeit",
    "agents": "Mitarbeiter",
    "no_agents": "Kein Mitarbeiter ist beigetreten",
    "note": "Notiz",
    "group": "Gruppe",
    "pages": "Besuchte Seiten",
    "variables": "Angaben zum Besucher",
    "referer": "Herkunft",
    "technical": "Technische Angaben",
    "ip_address": "IP-Adresse",
    "platform": "Plattform",
    "user_agent": "Browser",
    "transcript": "Verlauf",
    "no_messages": "Die Unterhaltung enthält keine Nachrichten.",
    "triggered_by": "Automatische Nachricht: {name}",
    "offline_form": "Über das Offline-Formular hinterlassen, Antwort an {email}",
    "reply_hint": "Ihre Antwort auf diese E-Mail geht direkt an {name}.",
    "messages_count": "Nachrichten",
    "chat_id": "Chat {chat_id} · Konto {account_id}",
    "earlier_not_shown.one": "… {count} frühere Nachricht nicht angezeigt",
    "earlier_not_shown.other": "… {count} frühere Nachrichten nicht angezeigt",
    "earlier_stored.one": (
        "… {count} frühere Nachricht nicht angezeigt; die ganze Unterhaltung ist gespeichert"
    ),
    "earlier_stored.other": (
        "… {count} frühere Nachrichten nicht angezeigt; die ganze Unterhaltung ist gespeichert"
    ),
    "last_messages": "Letzte Nachrichten",
    "event.agent.join": "{name} ist dem Chat beigetreten",
    "event.agent.leave": "{name} hat den Chat verlassen",
    "event.agent.transfer": "Der Chat wurde an {name} übergeben",
    "event.agent.assign": "Der Chat wurde {name} zugewiesen",
    "event.close.visitorClose": "Der Besucher hat den Chat beendet",
    "event.close.agentClose": "{name} hat den Chat beendet",
    "event.close.timeout": "Der Chat wurde wegen Inaktivität beendet",
    "event.close.system": "Der Chat wurde beendet",
    "event.visitor.join": "Der Besucher ist dem Chat beigetreten",
    "event.visitor.leave": "Der Besucher hat den Chat verlassen",
    "event.visitor.rating": "Der Besucher hat den Chat bewertet",
    "an_agent": "Ein Mitarbeiter",
    "reply_subject": "Re: {text}",
    "reply_to": "{name} antworten",
    "open_in_smartsupp": "In Smartsupp öffnen",
    "call": "{phone} anrufen",
    "more_pages.one": "+{count} weitere Seite",
    "more_pages.other": "+{count} weitere Seiten",
    "landing_page": "Einstiegsseite",
    "chat_started_on": "Chat begann auf",
    "landing_and_chat": "Einstiegsseite, hier begann der Chat",
    "no_contact": "Keine Kontaktdaten: Der Besucher hat weder E-Mail noch Telefon hinterlassen.",
    "no_contact_short": "kein Kontakt",
    "the_ask": "Was der Besucher geschrieben hat",
    "returning": "Wiederkehrender Besucher",
    "history.one": "{count} frühere Unterhaltung",
    "history.other": "{count} frühere Unterhaltungen",
    "history_missed": "{count} verpasst am {date}",
    "history_last": "zuletzt: {category} am {date}",
    "earlier_attached.one": (
        "… {count} frühere Nachricht nicht angezeigt; der ganze Verlauf ist angehängt"
    ),
    "earlier_attached.other": (
        "… {count} frühere Nachrichten nicht angezeigt; der ganze Verlauf ist angehängt"
    ),
    "footer": "Automatisch gesendet von relay (Smartsupp-Unterhaltung).",
}

TRANSLATIONS: Final[Mapping[str, Mapping[str, str]]] = MappingProxyType(
    {"en": MappingProxyType(_EN), "cs": MappingProxyType(_CS), "de": MappingProxyType(_DE)}
)


class Translator:
    """Look up labels for one locale (falling back to English) and format values with Babel."""

    def __init__(self, locale: str, zone: tzinfo) -> None:
        self.locale = locale if locale in TRANSLATIONS else "en"
        self.zone = zone
        self.labels: Mapping[str, str] = MappingProxyType(
            {**TRANSLATIONS["en"], **TRANSLATIONS[self.locale]}
        )
        # Babel (its import and locale data, ~1 MiB) is loaded by the first Translator: the
        # relay's own process makes none while idle.
        from babel import Locale  # noqa: PLC0415

        self._babel_locale = Locale.parse(self.locale)
        # Country names per code in en, cs and de (view.py's swapped city/country check).
        self._country_names: dict[str, frozenset[str]] = {}
        self._known_locales = tuple(Locale.parse(name) for name in ("en", "cs", "de"))
        # Formatted dates by day and times by minute of the day (1,440 of them).
        self._dates: Remembered[date] = Remembered(DATES_KEPT)
        self._times: Remembered[tuple[int, int]] = Remembered(24 * 60)
        # Formatted durations by whole seconds: a chat's duration and response times are
        # mostly short, and repeat from email to email.
        self._durations: Remembered[int] = Remembered(DURATIONS_KEPT)
        # Formatted counts, their CLDR plural forms and day-and-month dates: a returning
        # visitor's line needs all three in every email and Slack message about that visitor.
        self._numbers: Remembered[int] = Remembered(NUMBERS_KEPT)
        self._plural_forms: Remembered[int] = Remembered(NUMBERS_KEPT)
        self._short_dates: Remembered[date] = Remembered(DATES_KEPT)

    def __call__(self, key: str, **values: object) -> str:
        template = self.labels.get(key, key)
        if not values:
            return template
        return template.format(**{name: str(value) for name, value in values.items()})

    def has(self, key: str) -> bool:
        return key in self.labels

    def plural(self, key: str, count: int) -> str:
        """``key.one`` / ``key.few`` / ``key.other`` chosen by the locale's CLDR plural rules."""
        form = self._plural_forms.get(count, lambda: self._babel_locale.plural_form(count))
        chosen = f"{key}.{form}" if f"{key}.{form}" in self.labels else f"{key}.other"
        return self(chosen, count=self.number(count))

    def country_names(self, code: str) -> frozenset[str]:
        """The country's names in English, Czech and German, case-folded. Only known codes
        are remembered: the code comes from the visitor's data, so unknown ones must not
        grow the memory of a long-running renderer."""
        found = self._country_names.get(code)
        if found is None:
            names = {"czech republic"} if code == "CZ" else set()
            for locale in self._known_locales:
                name = locale.territories.get(code)
                if name:
                    names.add(name.casefold())
            found = frozenset(names)
            if found:
                self._country_names[code] = found
        return found

    def number(self, value: int) -> str:
        """A count in the locale's digits and grouping, formatted once per value (at most
        NUMBERS_KEPT are kept)."""

        def formatted() -> str:
            from babel.numbers import format_decimal  # noqa: PLC0415 -- see __init__

            return format_decimal(value, locale=self._babel_locale)

        return self._numbers.get(value, formatted)

    def zone_name(self, moment: datetime) -> str:
        """The display zone's abbreviation at ``moment`` ("CET", "BST", "UTC", "+03")."""
        return moment.astimezone(self.zone).tzname() or ""

    def datetime_text(self, moment: datetime) -> str:
        """Date and time without seconds, with the zone: "27 Mar 2015, 16:33 CET"."""
        local = moment.astimezone(self.zone)
        return f"{self._date(local)} {self._time(local)} {local.tzname() or ''}".strip()

    def date_text(self, moment: datetime) -> str:
        return self._date(moment.astimezone(self.zone))

    def _date(self, local: datetime) -> str:
        """The medium date of a local time, formatted once per day (Babel is the slow part);
        at most DATES_KEPT days are kept."""

        def formatted() -> str:
            from babel.dates import format_date  # noqa: PLC0415 -- see __init__

            return format_date(local, "medium", locale=self._babel_locale)

        return self._dates.get(local.date(), formatted)

    def _time(self, local: datetime) -> str:
        """The short time of day of a local time, formatted once per minute of the day."""

        def formatted() -> str:
            from babel.dates import format_time  # noqa: PLC0415 -- see __init__

            return format_time(local, "short", locale=self._babel_locale)

        return self._times.get((local.hour, local.minute), formatted)

    def short_date_text(self, moment: datetime) -> str:
        """Day and month only: "12 Nov", "12. 11.", "12. Nov.", formatted once per local day
        (at most DATES_KEPT days are kept)."""
        local = moment.astimezone(self.zone)

        def formatted() -> str:
            from babel.dates import format_skeleton  # noqa: PLC0415 -- see __init__

            return format_skeleton("MMMd", local, locale=self._babel_locale)

        return self._short_dates.get(local.date(), formatted)

    def time_text(self, moment: datetime) -> str:
        """Short time with the zone: "16:33 CET"."""
        local = moment.astimezone(self.zone)
        return f"{self._time(local)} {local.tzname() or ''}".strip()

    def duration(self, seconds: int | float | None) -> str | None:
        """Up to two units, e.g. "2 min 5 sec" / "1 Std. 6 Min."; None when unknown."""
        if seconds is None or not 0 <= seconds <= MAX_DURATION_SECONDS:
            return None  # unknown, or too absurd for a timedelta (a body's garbage)
        total = round(seconds)
        return self._durations.get(total, lambda: self._duration(total))

    def _duration(self, total: int) -> str:
        hours, rest = divmod(total, 3600)
        minutes, secs = divmod(rest, 60)
        parts: list[tuple[int, _Unit]] = [(hours, "hour"), (minutes, "minute"), (secs, "second")]
        shown = [(amount, unit) for amount, unit in parts if amount][:2] or [parts[-1]]
        from babel.dates import format_timedelta  # noqa: PLC0415 -- see __init__

        return " ".join(
            format_timedelta(
                timedelta(**{unit + "s": amount}),
                granularity=unit,
                threshold=10_000,
                format="short",
                locale=self._babel_locale,
            )
            for amount, unit in shown
        )
