"""The follow-up pass over a real store with an injected clock: escalations planned once as
deliveries (also across a restart), none after a claim or outside business hours, and the
daily digest sent once through aiosmtpd."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from relay.app import build_snapshot
from relay.config.settings import Settings
from relay.leads.model import LeadFacts, claim
from relay.leads.scheduler import FollowUpScheduler
from relay.senders.registry import SenderRegistry
from relay.store import STATUSES, Intake
from relay.store.storethread import StoreThread
from tests.support.data import base_sections, body, sample
from tests.support.faulty import FaultyStore
from tests.support.leads import LINK, follow_up
from tests.support.smtp import SmtpServer
from tests.support.store import StoreOpener

PRAGUE = ZoneInfo("Europe/Prague")
OFFICE = {"timezone": "Europe/Prague", "weekdays": ["mon-fri"], "hours": ["09:00-17:00"]}


def at(*parts: int) -> float:
    return datetime(*parts, tzinfo=PRAGUE).timestamp()  # type: ignore[misc]


def make_settings(tmp_path: Path, **changes: Any) -> Settings:
    return Settings(
        **base_sections(tmp_path / "state"),
        follow_up=follow_up(
            escalate_after_seconds=3600,
            escalate_to=["boss@shop.test", "#sales"],
            business_hours=OFFICE,
            **changes,
        ),
    )


def missed(n: int) -> Intake:
    data = sample("v1")
    data["channel"]["id"] = n
    data["channel"]["isMissed"] = True
    data["visitor"]["id"] = f"visitor-{n}"
    data["visitor"]["email"] = f"v{n}@example.com"
    return Intake(
        raw=body(data),
        conv_key=f"1-{n}",
        account_id=1,
        channel_id=n,
        content_hash=f"hash-{n}",
        category="missed",
        planned=(),
        lead=LeadFacts(follow_up=True, answered=False, visitor_id=f"visitor-{n}"),
    )


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def escalation_rules(open_store: StoreOpener) -> list[tuple[str, str, str]]:
    """The deliveries planned, read through a connection of the test's own."""
    store = open_store()
    try:
        rows = store.deliveries(STATUSES)
    finally:
        store.close()
    return [(row.conv_key, row.rule, row.channel) for row in rows]


async def test_one_escalation_after_the_interval_and_none_after_a_restart(
    tmp_path: Path, open_test_store: StoreOpener
) -> None:
    settings = make_settings(tmp_path)
    snapshot = build_snapshot(settings)
    clock = Clock(at(2026, 12, 3, 10, 0))  # a Thursday morning
    thread = StoreThread(open_test_store())
    try:
        await thread.call(lambda s: s.accept(missed(1), now=clock.now))
        await thread.call(lambda s: s.accept(missed(2), now=clock.now))
        (claimed_id, open_id) = [lead.id for lead in await thread.call(lambda s: s.leads())]
        await thread.call(
            lambda s: s.change_lead(claimed_id, lambda x: claim(x, "Jana", clock.now))
        )
        woken: list[int] = []
        scheduler = FollowUpScheduler(
            thread, lambda: snapshot, clock=clock, wake=lambda: woken.append(1)
        )
        clock.now = at(2026, 12, 3, 10, 59)
        assert (await scheduler.run_once()).escalated == ()
        clock.now = at(2026, 12, 3, 11, 0)
        assert (await scheduler.run_once()).escalated == ((open_id, 1),)
        assert woken == [1]
        clock.now = at(2026, 12, 3, 16, 0)
        assert (await scheduler.run_once()).escalated == ()
    finally:
        thread.close()
    planned = escalation_rules(open_test_store)
    assert planned == [
        ("1-2", "follow-up-escalation-1", "email"),
        ("1-2", "follow-up-escalation-1", "slack"),
    ]
    # A restart (a new store connection and a new scheduler) finds the escalation recorded.
    restarted = StoreThread(open_test_store())
    try:
        again = FollowUpScheduler(restarted, lambda: snapshot, clock=Clock(at(2026, 12, 4, 10, 0)))
        assert (await again.run_once()).escalated == ()
    finally:
        restarted.close()
    assert escalation_rules(open_test_store) == planned


async def test_no_escalation_outside_business_hours(
    tmp_path: Path, open_test_store: StoreOpener
) -> None:
    snapshot = build_snapshot(make_settings(tmp_path))
    clock = Clock(at(2026, 12, 4, 16, 30))  # Friday afternoon
    thread = StoreThread(open_test_store())
    try:
        await thread.call(lambda s: s.accept(missed(1), now=clock.now))
        scheduler = FollowUpScheduler(thread, lambda: snapshot, clock=clock)
        for moment in (at(2026, 12, 4, 18, 0), at(2026, 12, 5, 12, 0), at(2026, 12, 7, 9, 29)):
            clock.now = moment
            assert (await scheduler.run_once()).escalated == ()
        clock.now = at(2026, 12, 7, 9, 30)  # Monday: the second half hour of business time
        assert len((await scheduler.run_once()).escalated) == 1
    finally:
        thread.close()


async def test_the_escalation_email_carries_the_claim_link(
    tmp_path: Path, open_test_store: StoreOpener
) -> None:
    """The escalation is an ordinary delivery of the lead's conversation: the worker renders
    it with the lead's links like the first email."""
    from relay.delivery.worker import render_delivery  # noqa: PLC0415

    settings = make_settings(tmp_path)
    snapshot = build_snapshot(settings)
    clock = Clock(at(2026, 12, 3, 10, 0))
    thread = StoreThread(open_test_store())
    try:
        await thread.call(lambda s: s.accept(missed(1), now=clock.now))
        clock.now = at(2026, 12, 3, 11, 30)
        await FollowUpScheduler(thread, lambda: snapshot, clock=clock).run_once()
        claimed = await thread.call(lambda s: s.claim_due(limit=10, now=clock.now))
        lead = await thread.call(lambda s: s.leads()[0])
    finally:
        thread.close()
    email = next(d for d in claimed if d.channel == "email")
    from relay.leads.links import links_for  # noqa: PLC0415

    found = links_for(settings.follow_up, snapshot.link_key, lead.id, email.created_at)
    content = render_delivery(snapshot, email, follow_up=found)
    assert hasattr(content, "message")
    message = content.message  # type: ignore[union-attr]
    assert message["Subject"].startswith("[Still open] ")
    assert message["To"] == "boss@shop.test"
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert LINK.search(text) is not None


async def test_the_digest_is_sent_once_at_its_time_even_across_a_restart(
    tmp_path: Path, smtp_server: SmtpServer, open_test_store: StoreOpener
) -> None:
    settings = Settings(
        **base_sections(tmp_path / "state"),
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"},
        render={"locale": "cs", "timezone": "Europe/Prague"},
        follow_up=follow_up(business_hours=OFFICE, digest_at="08:00", digest_to=["head@shop.test"]),
    )
    senders = SenderRegistry()  # owns the SMTP connections, closed as the relay does
    snapshot = build_snapshot(settings, senders)
    clock = Clock(at(2026, 12, 2, 9, 0))  # yesterday
    thread = StoreThread(open_test_store())
    try:
        await thread.call(lambda s: s.accept(missed(1), now=clock.now))
        scheduler = FollowUpScheduler(thread, lambda: snapshot, clock=clock)
        clock.now = at(2026, 12, 3, 7, 59)
        assert (await scheduler.run_once()).digest is None
        clock.now = at(2026, 12, 3, 8, 0, 30)
        assert (await scheduler.run_once()).digest is not None
        assert (await scheduler.run_once()).digest is None
    finally:
        thread.close()
    restarted = StoreThread(open_test_store())
    try:
        again = FollowUpScheduler(restarted, lambda: snapshot, clock=Clock(at(2026, 12, 3, 9, 0)))
        assert (await again.run_once()).digest is None
    finally:
        restarted.close()
        await senders.close()
    (received,) = smtp_server.handler.wait_for(1)
    assert len(smtp_server.handler.messages) == 1
    message = received.message
    assert received.rcpt_tos == ["head@shop.test"]
    assert len(message.as_bytes()) < 100_000
    assert message["Subject"] == "Přehled kontaktů 2026-12-03: 1 nevyřízených"
    html = message.get_body(preferencelist=("html",)).get_content()
    assert LINK.search(html) is not None
    assert "Zmeškané chaty podle hodiny" in html


async def fails_then_sent(
    tmp_path: Path, open_test_store: StoreOpener, smtp_server: SmtpServer, **smtp: object
) -> None:
    """A pass at 08:00:30 whose digest send fails (the server as the test set it up) releases
    the day; the pass at 08:01 sends the digest to head@shop.test."""
    settings = Settings(
        **base_sections(tmp_path / "state"),
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"}
        | smtp,
        follow_up=follow_up(business_hours=OFFICE, digest_at="08:00", digest_to=["head@shop.test"]),
    )
    senders = SenderRegistry()
    snapshot = build_snapshot(settings, senders)
    clock = Clock(at(2026, 12, 3, 8, 0, 30))
    thread = StoreThread(open_test_store())
    try:
        await thread.call(lambda s: s.accept(missed(1), now=at(2026, 12, 2, 9, 0)))
        scheduler = FollowUpScheduler(thread, lambda: snapshot, clock=clock)
        assert (await scheduler.run_once()).digest is None  # failed: the day is released
        clock.now = at(2026, 12, 3, 8, 1)
        assert (await scheduler.run_once()).digest is not None
    finally:
        thread.close()
        await senders.close()
    (received,) = smtp_server.handler.wait_for(1)
    assert received.rcpt_tos == ["head@shop.test"]


async def test_a_digest_the_mail_server_defers_is_sent_by_a_later_pass(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    smtp_server.handler.data_replies = ["451 4.3.0 Try again later"]
    await fails_then_sent(tmp_path, open_test_store, smtp_server)
    assert "the follow-up digest of 2026-12-03 could not be sent (SMTP server deferred" in (
        caplog.text
    )
    assert smtp_server.handler.attempts == 2


async def test_a_digest_the_mail_server_never_answers_fails_at_the_sender_s_deadline(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The SMTP transaction waits for its replies under the sender's deadline only (no
    timeout of its own per reply), so the digest's send is bounded by that deadline as the
    worker's sends are: the day is released at it, and a later pass sends the digest."""
    smtp_server.handler.data_stalls = 1
    await fails_then_sent(tmp_path, open_test_store, smtp_server, timeout_seconds=1)
    assert (
        "the follow-up digest of 2026-12-03 could not be sent"
        " (no complete answer within the 1 s deadline)" in caplog.text
    )
    assert smtp_server.handler.attempts == 2


async def test_a_failed_follow_up_pass_is_logged_and_the_loop_stops_cleanly(
    tmp_path: Path, open_test_store: StoreOpener, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = build_snapshot(make_settings(tmp_path))
    store = FaultyStore(open_test_store())
    store.fail("leads", sqlite3.OperationalError("database is locked"))
    thread = StoreThread(store)
    try:
        never_started = FollowUpScheduler(thread, lambda: snapshot)
        await never_started.stop()  # nothing to stop
        scheduler = FollowUpScheduler(thread, lambda: snapshot)
        scheduler.start()
        assert await asyncio.to_thread(store.fired.wait, 20)
        await scheduler.stop()
    finally:
        thread.close()
    assert store.failed == ["leads"]
    assert "follow-up pass failed; trying again in" in caplog.text
    assert "database is locked" in caplog.text


async def test_a_digest_whose_template_fails_on_the_day_s_data_is_released_and_made_later(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An overridden digest template that passes the check (its samples) but fails on one
    day's data: the day is released, the failure logged, and a later pass sends it."""
    templates = tmp_path / "templates"
    (templates / "email").mkdir(parents=True)
    text = templates / "email" / "digest.txt.j2"
    text.write_text("{% if digest.open_items|length == 1 %}{{ 1/0 }}{% endif %}ok\n", "utf-8")
    settings = Settings(
        **base_sections(tmp_path / "state"),
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"},
        render={"templates_dir": str(templates)},
        follow_up=follow_up(business_hours=OFFICE, digest_at="08:00", digest_to=["head@shop.test"]),
    )
    senders = SenderRegistry()
    snapshot = build_snapshot(settings, senders)  # the check passes: no sample has one lead
    clock = Clock(at(2026, 12, 3, 8, 0, 30))
    thread = StoreThread(open_test_store())
    try:
        await thread.call(lambda s: s.accept(missed(1), now=at(2026, 12, 2, 9, 0)))
        scheduler = FollowUpScheduler(thread, lambda: snapshot, clock=clock)
        assert (await scheduler.run_once()).digest is None
        assert await thread.call(lambda s: s.digest_days()) == set()  # released
        text.write_text("fixed\n", "utf-8")
        clock.now = at(2026, 12, 3, 8, 1)
        assert (await scheduler.run_once()).digest is not None
    finally:
        thread.close()
        await senders.close()
    assert "the follow-up digest of 2026-12-03 could not be made (ZeroDivisionError" in caplog.text
    (received,) = smtp_server.handler.wait_for(1)
    assert (
        received.message.get_body(preferencelist=("plain",)).get_content() == "fixed\r\n"
    )  # SMTP line ends


async def test_a_digest_that_cannot_be_made_is_tried_again_less_and_less_often_and_logged_then(
    tmp_path: Path,
    open_test_store: StoreOpener,
    smtp_server: SmtpServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A digest whose template fails on the day's data is tried on the next pass, then after
    a delay that doubles up to an hour; each attempt logs the error, the passes between do
    not. A reload starts over (tried on the next pass), and so does the next day's digest."""
    templates = tmp_path / "templates"
    (templates / "email").mkdir(parents=True)
    text = templates / "email" / "digest.txt.j2"
    broken = "{% if digest.open_items|length == 1 %}{{ 1/0 }}{% endif %}ok\n"
    text.write_text(broken, "utf-8")
    settings = Settings(
        **base_sections(tmp_path / "state"),
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"},
        render={"templates_dir": str(templates)},
        follow_up=follow_up(business_hours=OFFICE, digest_at="08:00", digest_to=["head@shop.test"]),
    )
    senders = SenderRegistry()
    snapshots = [build_snapshot(settings, senders)]
    start = at(2026, 12, 3, 8, 0, 30)
    clock = Clock(start)
    thread = StoreThread(open_test_store())
    caplog.set_level(logging.INFO, "relay.leads.scheduler")

    def attempts() -> list[logging.LogRecord]:
        return [
            record
            for record in caplog.records
            if record.levelno == logging.ERROR and "could not be made" in record.getMessage()
        ]

    async def passes(until: float) -> list[float]:
        """Passes every 30 s up to ``until`` (from ``start``); when each attempt was."""
        seen, tried = len(attempts()), []
        while clock.now - start < until:
            assert (await scheduler.run_once()).digest is None
            if len(attempts()) > seen:
                seen = len(attempts())
                tried.append(clock.now - start)
            clock.now += 30
        return tried

    try:
        await thread.call(lambda s: s.accept(missed(1), now=at(2026, 12, 2, 9, 0)))
        scheduler = FollowUpScheduler(thread, lambda: snapshots[-1], clock=clock)
        hour = 3600
        assert await passes(3 * hour) == [0, 30, 90, 210, 450, 930, 1890, 3810, 7410]
        messages = [record.getMessage() for record in attempts()]
        assert "(ZeroDivisionError: division by zero); trying again in 30 s" in messages[0]
        assert "2 times in a row; trying again in 60 s" in messages[1]
        assert "9 times in a row; trying again in 3600 s" in messages[-1]
        assert await thread.call(lambda s: s.digest_days()) == set()  # released each time
        snapshots.append(build_snapshot(settings, senders))  # a reload
        assert [t - 3 * hour for t in await passes(3 * hour + 120)] == [0, 30, 90]
        text.write_text("fixed\n", "utf-8")
        clock.now = start + 3 * hour + 205  # mended: made at the next backoff point, not before
        assert (await scheduler.run_once()).digest is None
        clock.now += 5
        assert (await scheduler.run_once()).digest is not None
        text.write_text(broken, "utf-8")
        start = clock.now = at(2026, 12, 4, 8, 0, 30)  # the next day's digest: from the start
        assert await passes(120) == [0, 30, 90]
        assert "trying again in 30 s" in attempts()[-3].getMessage()
    finally:
        thread.close()
        await senders.close()
    (received,) = smtp_server.handler.wait_for(1)
    assert received.message.get_body(preferencelist=("plain",)).get_content() == "fixed\r\n"
