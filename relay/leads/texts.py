"""The words of lead pages, buttons, escalations and digests in English, Czech and German."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from relay.leads.links import LeadLinks

LOCALES = ("en", "cs", "de")

_EN: Final[dict[str, str]] = {
    "escalated": "Still open",
    "digest_subject": "Follow-up digest {day}: {count} open",
    "digest_title": "Follow-up digest",
    "digest_open": "Still open",
    "digest_none_open": "No lead is open.",
    "digest_age": "open for {age}",
    "digest_more": "and {count} more",
    "digest_yesterday": "Yesterday ({day})",
    "digest_median": "Median time to claim",
    "digest_no_claims": "no lead claimed",
    "digest_low": "Low ratings",
    "digest_no_low": "No low ratings.",
    "digest_hours": "Missed chats by hour",
    "digest_hour": "Hour",
    "digest_count": "Count",
    "title": "Follow-up",
    "claim_button": "I'll take it",
    "done_button": "Mark as done",
    "email_intro": "Nobody has answered this visitor yet. Take it so nobody else calls twice:",
    "email_done": "Done already?",
    "confirm_claim": "Take this lead?",
    "confirm_done": "Mark this lead as done?",
    "lead_of": "{category} from {visitor}, {when}",
    "your_name": "Your name",
    "note": "Note (optional)",
    "claimed": "It is yours, {name}. Please answer {visitor}.",
    "finished": "Marked as done by {name}. Thank you.",
    "taken": "Already taken by {name} at {time}.",
    "done_already": "Already done by {name} at {time}.",
    "answered": "This visitor was already answered in the chat.",
    "name_needed": "Please enter your name.",
    "expired": "This link has expired. Ask for a new one or use the digest.",
    "invalid": "This link is not valid. Please open it from the email again.",
    "form_expired": "This form is out of date. Please open the link from the email again.",
    "not_found": "This lead no longer exists.",
    "then_done": "When you have answered, mark it as done:",
    "category.missed": "Missed chat",
    "category.offline": "Offline message",
    "category.low-rated": "Low rating",
    "category.normal": "Chat",
    "unknown_visitor": "an unknown visitor",
}

_CS: Final[dict[str, str]] = {
    "escalated": "Stále nevyřízeno",
    "digest_subject": "Přehled kontaktů {day}: {count} nevyřízených",
    "digest_title": "Přehled kontaktů",
    "digest_open": "Stále nevyřízené",
    "digest_none_open": "Žádný kontakt nečeká.",
    "digest_age": "čeká {age}",
    "digest_more": "a dalších {count}",
    "digest_yesterday": "Včera ({day})",
    "digest_median": "Medián doby do převzetí",
    "digest_no_claims": "nikdo nic nepřevzal",
    "digest_low": "Nízká hodnocení",
    "digest_no_low": "Žádná nízká hodnocení.",
    "digest_hours": "Zmeškané chaty podle hodiny",
    "digest_hour": "Hodina",
    "digest_count": "Počet",
    "title": "Návazný kontakt",
    "claim_button": "Vezmu si to",
    "done_button": "Označit jako vyřízené",
    "email_intro": "Návštěvníkovi zatím nikdo neodpověděl. Vezměte si ho, ať nevolají dva:",
    "email_done": "Už vyřízeno?",
    "confirm_claim": "Vzít si tento kontakt?",
    "confirm_done": "Označit tento kontakt jako vyřízený?",
    "lead_of": "{category} od {visitor}, {when}",
    "your_name": "Vaše jméno",
    "note": "Poznámka (nepovinná)",
    "claimed": "Je váš, {name}. Odpovězte prosím: {visitor}.",
    "finished": "Označeno jako vyřízené ({name}). Děkujeme.",
    "taken": "Už si to vzal(a) {name} v {time}.",
    "done_already": "Už vyřídil(a) {name} v {time}.",
    "answered": "Návštěvníkovi už bylo odpovězeno v chatu.",
    "name_needed": "Zadejte prosím své jméno.",
    "expired": "Platnost odkazu vypršela. Použijte denní přehled.",
    "invalid": "Tento odkaz není platný. Otevřete ho prosím znovu z e-mailu.",
    "form_expired": "Formulář je zastaralý. Otevřete prosím odkaz z e-mailu znovu.",
    "not_found": "Tento kontakt už neexistuje.",
    "then_done": "Až odpovíte, označte ho jako vyřízený:",
    "category.missed": "Zmeškaný chat",
    "category.offline": "Offline zpráva",
    "category.low-rated": "Nízké hodnocení",
    "category.normal": "Chat",
    "unknown_visitor": "neznámého návštěvníka",
}

_DE: Final[dict[str, str]] = {
    "escalated": "Noch offen",
    "digest_subject": "Nachfass-Übersicht {day}: {count} offen",
    "digest_title": "Nachfass-Übersicht",
    "digest_open": "Noch offen",
    "digest_none_open": "Kein Lead ist offen.",
    "digest_age": "offen seit {age}",
    "digest_more": "und {count} weitere",
    "digest_yesterday": "Gestern ({day})",
    "digest_median": "Median bis zur Übernahme",
    "digest_no_claims": "kein Lead übernommen",
    "digest_low": "Schlechte Bewertungen",
    "digest_no_low": "Keine schlechten Bewertungen.",
    "digest_hours": "Verpasste Chats nach Stunde",
    "digest_hour": "Stunde",
    "digest_count": "Anzahl",
    "title": "Nachfassen",
    "claim_button": "Übernehme ich",
    "done_button": "Als erledigt markieren",
    "email_intro": (
        "Diesem Besucher hat noch niemand geantwortet. Übernehmen, damit keiner doppelt anruft:"
    ),
    "email_done": "Schon erledigt?",
    "confirm_claim": "Diesen Lead übernehmen?",
    "confirm_done": "Diesen Lead als erledigt markieren?",
    "lead_of": "{category} von {visitor}, {when}",
    "your_name": "Ihr Name",
    "note": "Notiz (optional)",
    "claimed": "Er gehört Ihnen, {name}. Bitte antworten Sie {visitor}.",
    "finished": "Von {name} als erledigt markiert. Danke.",
    "taken": "Bereits übernommen von {name} um {time}.",
    "done_already": "Bereits erledigt von {name} um {time}.",
    "answered": "Diesem Besucher wurde bereits im Chat geantwortet.",
    "name_needed": "Bitte geben Sie Ihren Namen ein.",
    "expired": "Dieser Link ist abgelaufen. Nutzen Sie die tägliche Übersicht.",
    "invalid": "Dieser Link ist ungültig. Bitte öffnen Sie ihn erneut aus der E-Mail.",
    "form_expired": "Das Formular ist veraltet. Bitte öffnen Sie den Link aus der E-Mail erneut.",
    "not_found": "Diesen Lead gibt es nicht mehr.",
    "then_done": "Wenn Sie geantwortet haben, markieren Sie ihn als erledigt:",
    "category.missed": "Verpasster Chat",
    "category.offline": "Offline-Nachricht",
    "category.low-rated": "Schlechte Bewertung",
    "category.normal": "Chat",
    "unknown_visitor": "einem unbekannten Besucher",
}

TEXTS: Mapping[str, Mapping[str, str]] = MappingProxyType(
    {"en": MappingProxyType(_EN), "cs": MappingProxyType(_CS), "de": MappingProxyType(_DE)}
)


def lookup(texts: Mapping[str, Mapping[str, str]], locale: str, key: str, **values: object) -> str:
    """The text for ``key`` in ``locale`` of ``texts`` (English where missing, else the key),
    with ``values`` filled in: the lead pages' and the console's words alike."""
    chosen = texts.get(locale, texts["en"])
    template = chosen.get(key) or texts["en"].get(key, key)
    return template.format(**{name: str(value) for name, value in values.items()})


def text(locale: str, key: str, **values: object) -> str:
    """The lead pages' text for ``key`` in ``locale``."""
    return lookup(TEXTS, locale, key, **values)


def pick_locale(accept_language: str | None, default: str) -> str:
    """The first of cs, de, en the browser asks for (by q-value), else ``default``."""
    wanted: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = tag.strip().lower().split("-")[0]
        if language in LOCALES and quality > 0:
            wanted.append((-quality, index, language))
    return min(wanted)[2] if wanted else (default if default in LOCALES else "en")


@dataclass(frozen=True)
class FollowUpView:
    """What an email's follow-up block shows: the links and their words."""

    claim_url: str
    done_url: str
    intro: str
    claim_label: str
    done_hint: str
    done_label: str


def follow_up_view(found: LeadLinks | None, locale: str) -> FollowUpView | None:
    if found is None:
        return None
    return FollowUpView(
        claim_url=found.claim_url,
        done_url=found.done_url,
        intro=text(locale, "email_intro"),
        claim_label=text(locale, "claim_button"),
        done_hint=text(locale, "email_done"),
        done_label=text(locale, "done_button"),
    )
