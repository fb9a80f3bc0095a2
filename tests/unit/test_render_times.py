"""The translator's remembered dates, times, durations and counts are exactly what Babel
formats, across a daylight-saving change, and what it remembers stays bounded."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date, format_skeleton, format_time
from babel.numbers import format_decimal

from relay.render.i18n import DATES_KEPT, DURATIONS_KEPT, NUMBERS_KEPT, Translator


@pytest.mark.parametrize("locale", ["en", "cs", "de"])
def test_remembered_dates_and_times_equal_babel_across_a_dst_change(locale: str) -> None:
    zone = ZoneInfo("Europe/Prague")
    t = Translator(locale, zone)
    start = datetime(2026, 3, 28, 22, 0, tzinfo=UTC)  # the night clocks go forward
    for step in range(0, 2 * 24 * 60, 7):
        moment = start + timedelta(minutes=step, seconds=step % 60)
        local = moment.astimezone(zone)
        time = f"{format_time(local, 'short', locale=locale)} {local.tzname()}"
        date = format_date(local, "medium", locale=locale)
        for _ in range(2):  # formatted, then remembered
            assert t.time_text(moment) == time
            assert t.date_text(moment) == date
            assert t.datetime_text(moment) == f"{date} {time}"
            assert t.short_date_text(moment) == format_skeleton("MMMd", local, locale=locale)


def test_remembered_dates_are_bounded() -> None:
    t = Translator("en", ZoneInfo("UTC"))
    start = datetime(2000, 1, 1, tzinfo=UTC)
    for day in range(DATES_KEPT * 2 + 5):
        moment = start + timedelta(days=day)
        assert t.date_text(moment) == format_date(moment, "medium", locale="en")
    assert len(t._dates) <= DATES_KEPT
    for day in range(DATES_KEPT * 2 + 5):
        moment = start + timedelta(days=day)
        assert t.short_date_text(moment) == format_skeleton("MMMd", moment, locale="en")
    assert len(t._short_dates) <= DATES_KEPT


def test_country_names_in_each_language_and_made_up_codes_are_not_remembered() -> None:
    t = Translator("en", ZoneInfo("UTC"))
    cz = t.country_names("CZ")
    assert {"czechia", "tschechien", "česko", "czech republic"} <= cz
    assert t.country_names("CZ") is cz  # a known code is remembered
    assert t.country_names("QQ") == frozenset()  # no locale names it
    assert t._country_names.keys() == {"CZ"}  # the visitor's made-up code took no memory


@pytest.mark.parametrize("locale", ["en", "cs", "de"])
def test_remembered_durations_equal_the_formatted_ones(locale: str) -> None:
    t = Translator(locale, ZoneInfo("UTC"))
    fresh = Translator(locale, ZoneInfo("UTC"))
    values = [*range(0, 200), 59.4, 59.5, 60.49, 3599, 3600, 3661, 86_399, 90_061, 10**9]
    for _ in range(2):  # formatted, then remembered
        for seconds in values:
            expected = fresh._duration(round(seconds))
            assert t.duration(seconds) == expected
            assert Translator(locale, ZoneInfo("UTC")).duration(seconds) == expected
    assert t.duration(-1) is None and t.duration(None) is None
    assert t.duration(float("nan")) is None and t.duration(float("inf")) is None


def test_remembered_durations_are_bounded() -> None:
    t = Translator("en", ZoneInfo("UTC"))
    for seconds in range(DURATIONS_KEPT * 2 + 5):
        assert t.duration(seconds) == t._duration(seconds)
    assert len(t._durations) <= DURATIONS_KEPT


@pytest.mark.parametrize("locale", ["en", "cs", "de"])
def test_remembered_counts_and_plural_forms_equal_babel_and_are_bounded(locale: str) -> None:
    """Counts (the returning visitor's line, plural forms) as Babel writes them in the
    locale, grouping included, the same when remembered; at most NUMBERS_KEPT are kept."""
    t = Translator(locale, ZoneInfo("UTC"))
    values = [0, 1, 2, 5, 21, 999, 1000, 12345, 10**7]
    for _ in range(2):  # formatted, then remembered
        for value in values:
            assert t.number(value) == format_decimal(value, locale=locale)
    assert t.number(12345) != "12345"  # grouped in every one of the three locales
    for value in range(NUMBERS_KEPT * 2 + 5):
        assert t.number(value) == format_decimal(value, locale=locale)
    assert len(t._numbers) <= NUMBERS_KEPT
    babel = t._babel_locale
    for count in [*values, *range(NUMBERS_KEPT * 2 + 5)]:
        form = babel.plural_form(count)
        expected = t(f"history.{form}" if t.has(f"history.{form}") else "history.other")
        assert t.plural("history", count) == expected.format(
            count=format_decimal(count, locale=locale)
        )
    assert len(t._plural_forms) <= NUMBERS_KEPT
