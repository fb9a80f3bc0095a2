"""The console's pure parts: SVG charts, statistics, session cookies and the login limiter."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from relay.console import auth, charts
from relay.console.http import age_text, body_text
from relay.console.stats import summarise
from relay.leads.model import Lead, LeadState
from relay.store import console as console_store

SVG = "{http://www.w3.org/2000/svg}"


def parsed(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))  # noqa: S314 -- our own output


def test_stacked_bars_scale_to_the_largest_total_and_escape_labels() -> None:
    svg = parsed(
        charts.stacked_bars(
            "Per day <b>",
            ["1.", "2."],
            [
                charts.Series("missed", "#b91c1c", (1.0, 0.0)),
                charts.Series("<normal>", "#1d4ed8", (1.0, 4.0)),
            ],
        )
    )
    assert svg.get("role") == "img" and svg.get("aria-label") == "Per day <b>"
    bars = svg.findall(f"{SVG}rect")
    heights = sorted(float(bar.get("height", "0")) for bar in bars)
    assert len(bars) == 3  # a zero value draws nothing
    assert heights[-1] == 168.0  # the tallest bar (4 of a peak total of 4) fills the plot
    assert heights[0] == heights[1] == 42.0
    titles = [bar.findtext(f"{SVG}title") for bar in bars]
    assert "2. · <normal>: 4" in titles


def test_the_heatmap_shades_by_share_and_marks_missing_data() -> None:
    svg = parsed(charts.heatmap("Missed", ["Mon"], ["00", "01", "02"], [[0.0, 1.0, None]]))
    cells = svg.findall(f"{SVG}rect")
    assert [c.get("fill") for c in cells] == ["#fef2f2", "#991b1b", "#f1f5f9"]
    assert [c.findtext(f"{SVG}title") for c in cells] == [
        "Mon 00: 0 %",
        "Mon 01: 100 %",
        "Mon 02: -",
    ]


def test_summarise_counts_days_missed_share_claim_times_and_ratings() -> None:
    zone = ZoneInfo("Europe/Prague")
    monday_9 = datetime(2026, 11, 30, 9, 30, tzinfo=zone).timestamp()
    rows = [
        ("missed", monday_9, None),
        ("normal", monday_9 + 60, 5),
        ("low-rated", monday_9 + 86400, 1),
        ("normal", datetime(2026, 1, 1, tzinfo=UTC).timestamp(), 3),  # outside the days
    ]
    lead = Lead(
        id=1,
        conv_key="1-1",
        category="missed",
        created_at=monday_9,
        state=LeadState.CLAIMED,
        claimed_by="jana",
        claimed_at=monday_9 + 1800,
    )
    period = summarise(rows, [lead], days=[date(2026, 11, 30), date(2026, 12, 1)], zone=zone)
    assert period.per_day["missed"] == (1, 0)
    assert period.per_day["normal"] == (1, 0)
    assert period.per_day["low-rated"] == (0, 1)
    assert period.missed_share[0][9] == 0.5
    assert period.missed_share[1][9] == 0.0
    assert period.missed_share[2][9] is None
    assert dict(period.claim_buckets)["< 1 h"] == 1
    assert period.median_claim_seconds == 1800
    assert dict(period.ratings) == {1: 1, 2: 0, 3: 0, 4: 0, 5: 1}


def test_a_session_cookie_is_signed_and_expires() -> None:
    key = b"k" * 32
    session = auth.new_session("jana", now=1000.0, hours=1.0)
    value = auth.seal(key, session, "$argon2id$first")
    assert auth.claimed_user(value) == "jana"
    assert auth.unseal(key, value, now=1000.0, password_hash="$argon2id$first") == session
    assert auth.unseal(key, value, now=1000.0 + 3600, password_hash="$argon2id$first") is None
    assert auth.unseal(b"other" * 8, value, now=1000.0, password_hash="$argon2id$first") is None
    # Signed with the password hash: a new password ends the session.
    assert auth.unseal(key, value, now=1000.0, password_hash="$argon2id$second") is None
    forged = value.replace("amFuYQ", "cGV0cg")  # another user name, same signature
    assert auth.claimed_user(forged) == "petr"
    assert auth.unseal(key, forged, now=1000.0, password_hash="$argon2id$first") is None
    token = auth.csrf_token(key, session.sid)
    assert auth.csrf_ok(key, session.sid, token)
    assert not auth.csrf_ok(key, "another-session", token)
    assert not auth.csrf_ok(key, session.sid, "")


def test_passwords_are_argon2id_hashes_checked_in_constant_form() -> None:
    stored = auth.hash_password("s3cret words")
    assert stored.startswith("$argon2id$")
    assert auth.password_ok(stored, "s3cret words")
    assert not auth.password_ok(stored, "s3cret word")
    assert not auth.password_ok(None, "s3cret words")
    assert not auth.password_ok("not a hash", "s3cret words")


def test_the_limiter_waits_after_five_failures_doubling_per_further_failure() -> None:
    now = [0.0]
    limiter = auth.LoginLimiter(5, 60.0, lambda: now[0])
    for _ in range(4):
        limiter.failed("address:1", "user:jana")
    assert limiter.retry_after("address:1", "user:jana") is None
    limiter.failed("address:1", "user:jana")
    assert limiter.retry_after("user:jana") == 60.0
    assert limiter.retry_after("address:2", "user:petr") is None
    now[0] = 61.0
    assert limiter.retry_after("user:jana") is None
    limiter.failed("user:jana")  # the sixth: two minutes
    assert limiter.retry_after("user:jana") == 120.0
    limiter.succeeded("user:jana")
    assert limiter.retry_after("user:jana") is None


def test_a_conversation_search_folds_case_beyond_ascii_and_reads_no_more_than_needed() -> None:
    # (id, key, version, category, received_at, name, email), newest first, as
    # FIND_CONVERSATIONS gives them.
    names = ["žAnEtA", "Jana", "Straße", "žaneta", "Petr", None, "ŽANETA Nová", "Žaneta"]
    rows = [
        (n, f"1-{n}", 1, "normal", 2000.0 - n, name, "X@EXAMPLE.CZ" if n == 6 else None)
        for n, name in enumerate(names, start=1)
    ]
    read: list[int] = []

    def stream() -> Iterator[tuple[Any, ...]]:
        for row in rows:
            read.append(row[0])
            yield row

    def ids(text: str, limit: int = 100) -> list[int]:
        read.clear()
        return [row.id for row in console_store.search(stream(), text, limit)]

    assert ids("žaneta") == [1, 4, 7, 8]
    assert ids("žaneta", limit=2) == [1, 4] and read == [1, 2, 3, 4, 5]
    assert ids("STRASSE") == [3]  # casefold, not lower
    assert ids("x@example") == [6]
    assert ids("") == [1, 2, 3, 4, 5, 6, 7, 8]


def test_the_limiter_keeps_a_locked_key_when_full_of_others() -> None:
    """Spraying made-up user names (from many addresses) fills the table; what falls out to
    make room is a key that waits for nothing, never the locked user's."""

    class Small(auth.LoginLimiter):
        MAX_KEYS = 10

    now = [1000.0]
    limiter = Small(5, 60.0, lambda: now[0])
    for _ in range(5):
        limiter.failed("user:jana")
    for n in range(40):
        now[0] += 0.01
        limiter.failed(f"user:sprayed-{n}")
    assert limiter.retry_after("user:jana") is not None
    assert len(limiter._failures) <= Small.MAX_KEYS


def test_the_limiter_remembers_at_most_max_keys_forgetting_stale_then_oldest_keys() -> None:
    now = [0.0]
    limiter = auth.LoginLimiter(1, 3600.0, lambda: now[0])
    limiter.failed("stale")  # an hour and more ago by the time the limiter is full
    now[0] = 100.0
    for n in range(limiter.MAX_KEYS - 1):
        limiter.failed(f"address:{n}")
    now[0] = 3650.0
    limiter.failed("address:new")  # full: the stale key is forgotten, nothing else
    assert limiter.retry_after("address:0") == 50.0
    limiter.failed("stale")  # full of fresh keys now: the oldest ("address:0") goes
    assert limiter.retry_after("address:0") is None
    assert limiter.retry_after("address:1") == 50.0
    assert limiter.retry_after("stale") == 3600.0  # counted again from its first failure
    limiter.failed("address:newer")
    assert limiter.retry_after("address:1") is None
    assert limiter.retry_after("address:2", "address:newer") == 3600.0


def test_ages_read_in_days_hours_or_minutes() -> None:
    assert age_text(3 * 86400 + 4 * 3600 + 59) == "3 d 4 h"
    assert age_text(2 * 3600 + 5 * 60 + 30) == "2 h 5 min"
    assert age_text(7 * 60 + 59) == "7 min"
    assert age_text(-5) == "0 min"  # a clock that went back


def test_a_quarantined_body_is_shown_as_text_or_else_in_hexadecimal() -> None:
    assert body_text('{"name": "Dušan"}'.encode()) == ('{"name": "Dušan"}', False)
    assert body_text(b"\x00\xff\xfe") == ("00 fffe", True)
