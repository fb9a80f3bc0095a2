"""Returning-visitor context: the store finds the visitor's earlier conversations and the email
and Slack message say how many, how many were missed and when."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from relay.config.settings import RenderSettings
from relay.intake.payload import parse
from relay.model.category import Category, classify
from relay.model.content import Content, EmailContent, SlackContent
from relay.render.dispatch import Job
from relay.render.dispatch import render as dispatch
from relay.render.pool import RenderJob
from relay.render.pool import render as pool_render
from relay.store import Intake, Store, StoreProtocol
from relay.store.operator import VISITOR_ROWS
from relay.store.records import begin_seconds
from tests.support.render import (
    EMAIL_ACTION,
    FROM_ADDRESS,
    MESSAGE_ID,
    SLACK_ACTION,
    category_body,
    renderer_for,
)
from tests.support.store import StoreOpener

DAY_MS = 86_400_000
T = TypeVar("T")


@pytest.fixture
def store(open_test_store: StoreOpener) -> StoreProtocol:
    """A fresh store of each backend (closed by the opener)."""
    return open_test_store()


def keep(
    store: StoreProtocol, data: dict[str, Any], *, begin: bool = True, begin_text: str = ""
) -> int:
    """Store ``data`` as the hook does, with its begin time beside it; ``begin=False``: with
    none, as a row stored before that column was (SQLite's intake then reads it from the
    body, as its migration 10 did for such rows; PostgreSQL's history reads the body).
    ``begin_text``: the beginAt number as written in the body (JSON text Python would not
    write)."""
    return store.accept(intake_of(data, begin=begin, begin_text=begin_text)).conversation_id


def intake_of(
    data: dict[str, Any], *, begin: bool = True, begin_text: str = "", version: int = 0
) -> Intake:
    """``keep``'s intake of ``data``; ``version`` above 0: a later version of its chat (a
    content hash of its own)."""
    text = json.dumps(data)
    if begin_text:
        text = text.replace(f'"beginAt": {data["beginAt"]}', f'"beginAt": {begin_text}', 1)
    raw = text.encode()
    conversation = parse(raw)
    channel = conversation.channel.id
    return Intake(
        raw=raw,
        conv_key=f"{conversation.account_id}-{channel}",
        account_id=conversation.account_id,
        channel_id=channel,
        content_hash=f"hash-{channel}-v{version}" if version else f"hash-{channel}",
        category=classify(conversation).value,
        planned=(),
        begin_at=begin_seconds(conversation.begin_at) if begin else None,
    )


def chat(category: Category, channel: int, days_later: int, **visitor: Any) -> dict[str, Any]:
    data = category_body(category)
    data["channel"]["id"] = channel
    data["beginAt"] += days_later * DAY_MS
    data["endAt"] += days_later * DAY_MS
    data["visitor"].update(visitor)
    return data


def test_returning_visitor_context_from_two_stored_conversations(store: StoreProtocol) -> None:
    keep(store, chat(Category.MISSED, 1, 0))  # visitor 27671, 27 Mar 2015
    keep(store, chat(Category.NORMAL, 2, 1, id=999, email="other@example.com"))  # someone else
    keep(store, chat(Category.OFFLINE, 3, 3))  # visitor 27671 again, 30 Mar
    current = chat(Category.LOW_RATED, 4, 5)
    current_id = keep(store, current)
    keep(store, chat(Category.NORMAL, 5, 6))  # later: not "earlier"

    earlier = store.visitor_history(current_id)
    assert [category for category, _ in earlier] == ["missed", "offline"]

    conversation = parse(json.dumps(current).encode())
    renderer = renderer_for("en")
    message = renderer.email(
        conversation, Category.LOW_RATED, EMAIL_ACTION, message_id=MESSAGE_ID, earlier=earlier
    ).message
    line = "2 earlier conversations (1 missed on Mar 27; last: Offline message on Mar 30)"
    for kind in ("plain", "html"):
        part = message.get_body((kind,))
        assert part is not None
        assert line in str(part.get_content())
    slack = renderer.slack(conversation, Category.LOW_RATED, SLACK_ACTION, earlier=earlier)
    assert line in json.dumps(list(slack.blocks))
    cs = renderer_for("cs").email(
        conversation, Category.LOW_RATED, EMAIL_ACTION, message_id=MESSAGE_ID, earlier=earlier
    )
    text = cs.message.get_body(("plain",))
    assert text is not None
    assert "Vracející se návštěvník: 2 dřívější konverzace" in str(text.get_content())


def test_visitor_without_an_id_is_found_by_email_and_a_first_visit_says_nothing(
    store: StoreProtocol,
) -> None:
    first = keep(store, chat(Category.OFFLINE, 1, 0, id=None, email="Jana@Example.cz"))
    second = keep(store, chat(Category.MISSED, 2, 1, id=None, email="jana@example.cz"))
    assert store.visitor_history(first) == ()
    assert [category for category, _ in store.visitor_history(second)] == ["offline"]
    conversation = parse(json.dumps(chat(Category.MISSED, 2, 1)).encode())
    message = (
        renderer_for("en")
        .email(conversation, Category.MISSED, EMAIL_ACTION, message_id=MESSAGE_ID)
        .message
    )
    part = message.get_body(("plain",))
    assert part is not None
    assert "earlier conversation" not in str(part.get_content())


def test_a_body_that_is_not_json_matches_nothing_and_hides_no_one(store: StoreProtocol) -> None:
    first = keep(store, chat(Category.OFFLINE, 1, 0))
    account = parse(json.dumps(chat(Category.MISSED, 2, 1)).encode()).account_id
    unreadable = store.accept(
        Intake(
            raw=b"\xff\xfe not JSON, not UTF-8",
            conv_key=f"{account}-2",
            account_id=account,
            channel_id=2,
            content_hash="hash-2",
            category="missed",
            planned=(),
        )
    ).conversation_id
    current = keep(store, chat(Category.LOW_RATED, 3, 2))
    assert store.visitor_history(unreadable) == ()
    assert [category for category, _ in store.visitor_history(current)] == ["offline"]
    assert store.visitor_history(first) == ()


MISSED_OFFLINE = ((Category.MISSED, 1), (Category.OFFLINE, 2))


def test_history_is_one_entry_per_chat_with_the_latest_category_and_the_newest_kept(
    store: StoreProtocol,
) -> None:
    keep(store, chat(Category.MISSED, 1, 0))
    answered = chat(Category.NORMAL, 1, 0)  # a later version of the same chat
    raw = json.dumps(answered).encode()
    conversation = parse(raw)
    store.accept(
        Intake(
            raw=raw,
            conv_key=f"{conversation.account_id}-1",
            account_id=conversation.account_id,
            channel_id=1,
            content_hash="hash-1-v2",
            category=classify(conversation).value,
            planned=(),
        )
    )
    keep(store, chat(Category.OFFLINE, 2, 1))
    current = keep(store, chat(Category.LOW_RATED, 3, 2))
    earlier = store.visitor_history(current)
    begin = [chat(category, n, n - 1)["beginAt"] / 1000.0 for category, n in MISSED_OFFLINE]
    assert earlier == (("normal", begin[0]), ("offline", begin[1]))
    assert store.visitor_history(current, limit=1) == (("offline", begin[1]),)


def test_a_visitor_with_hundreds_of_chats_gets_the_newest_ones(store: StoreProtocol) -> None:
    """More stored chats than the store reads (VISITOR_ROWS): the history is still the newest
    chats before this one, in order, and a chat stored after it is not among them."""
    kept = [
        keep(store, chat(Category.MISSED if n % 3 else Category.NORMAL, n, n))
        for n in range(1, VISITOR_ROWS + 31)
    ]
    current = kept[-11]  # ten of the visitor's chats were stored after this one
    earlier = store.visitor_history(current)
    days = range(VISITOR_ROWS + 30 - 10 - 20, VISITOR_ROWS + 30 - 10)
    begin = [chat(Category.MISSED, 1, n)["beginAt"] / 1000.0 for n in days]
    assert [at for _, at in earlier] == begin
    assert [category for category, _ in earlier] == ["missed" if n % 3 else "normal" for n in days]


def test_versions_of_the_same_chat_do_not_use_up_the_versions_read(
    store: StoreProtocol,
) -> None:
    """A chat updated more often than the store reads versions (VISITOR_ROWS): its own earlier
    versions are not history, and the visitor's chat before it is still found on both stores."""
    keep(store, chat(Category.OFFLINE, 1, 0))
    raw = json.dumps(chat(Category.MISSED, 2, 1)).encode()
    conversation = parse(raw)
    current = 0
    for version in range(VISITOR_ROWS + 1):
        current = store.accept(
            Intake(
                raw=raw,
                conv_key=f"{conversation.account_id}-2",
                account_id=conversation.account_id,
                channel_id=2,
                content_hash=f"hash-2-v{version}",  # each a new stored version
                category="missed",
                planned=(),
            )
        ).conversation_id
    begin = chat(Category.OFFLINE, 1, 0)["beginAt"] / 1000.0
    assert store.visitor_history(current) == (("offline", begin),)


def test_histories_read_together_are_each_as_read_alone(store: StoreProtocol) -> None:
    """``visitor_histories`` gives each conversation what ``visitor_history`` gives it, for
    any set of them: a visitor with more chats than the store reads (VISITOR_ROWS, across
    the pages it reads ahead), a chat stored again more often than that, visitors found by
    email address, one with an empty id, conversations of several visitors at once, an
    unknown conversation id, and the same id twice."""
    by_id = [
        keep(store, chat(Category.MISSED if n % 3 else Category.NORMAL, n, n))
        for n in range(1, VISITOR_ROWS + 70)
    ]
    often = chat(Category.MISSED, 5_000, 400)
    versions = [
        store.accept(intake_of(often, version=version + 1)).conversation_id
        for version in range(VISITOR_ROWS + 5)
    ]
    after = [keep(store, chat(Category.OFFLINE, 6_000 + n, 500 + n)) for n in range(3)]
    by_email = [
        keep(store, chat(Category.OFFLINE, 7_000 + n, n, id=None, email="a@example.com"))
        for n in range(4)
    ]
    empty = [keep(store, chat(Category.NORMAL, 8_000 + n, n, id="")) for n in range(3)]
    # Received at the same time: each one's history holds only those stored before it.
    same_time = [
        accepted.conversation_id
        for accepted in store.accept_many(
            [intake_of(chat(Category.MISSED, 9_000 + n, n, id="b")) for n in range(4)]
        )
    ]
    everyone = [*by_id, *versions, *after, *by_email, *empty, *same_time]
    subsets = [
        everyone,
        by_id[-40:],
        [by_id[0], by_id[100], by_id[-1], versions[3], versions[-1], after[1]],
        [*by_email, *empty, by_id[7]],
        [versions[-1], versions[-2], after[0], by_email[0], by_email[0], 999_999],
        same_time,
    ]
    for ids in subsets:
        together = store.visitor_histories(ids)
        assert together == {i: store.visitor_history(i) for i in ids}
        assert together == {i: store.visitor_history(i) for i in dict.fromkeys(ids)}
    assert store.visitor_histories([by_id[-1], by_id[-2]], limit=3) == {
        i: store.visitor_history(i, limit=3) for i in (by_id[-1], by_id[-2])
    }
    assert len(store.visitor_history(by_id[-1])) == 20  # the histories compared are not empty
    assert [len(store.visitor_history(i)) for i in same_time] == [0, 1, 2, 3]
    assert store.visitor_history(after[2])[-1] == (
        "offline",
        chat(Category.OFFLINE, 1, 501)["beginAt"] / 1000.0,
    )
    assert store.visitor_histories([]) == {}


def sqlite_steps(store: Store, read: Callable[[], T]) -> tuple[int, T]:
    """What ``read`` gives, and how many SQLite virtual machine instructions it took on the
    store's connection (in hundreds: the progress handler's count)."""
    count = [0]

    def tick() -> int:
        count[0] += 1
        return 0  # go on

    store._conn.set_progress_handler(tick, 100)
    try:
        result = read()
    finally:
        store._conn.set_progress_handler(None, 0)
    return count[0], result


def test_histories_read_together_read_no_more_than_each_read_alone(tmp_path: Path) -> None:
    """A visitor with thousands of chats (a test account, a bot) and, claimed together, a
    delivery of an old chat of theirs (a retry, a replay) and one of their newest: reading
    the histories together costs no more than reading each alone, whose cost VISITOR_ROWS
    bounds; the versions between the two are not read to be passed over. Chats stored one
    after another still share one read, for less than each alone."""
    store = Store(tmp_path / "relay.db")
    intakes = [intake_of(chat(Category.MISSED, n, n % 300)) for n in range(1, 3_001)]
    ids = [accepted.conversation_id for accepted in store.accept_many(intakes)]

    def alone(members: list[int]) -> dict[int, tuple[tuple[str, float], ...]]:
        return {i: store.visitor_history(i) for i in members}

    old_and_new = ([ids[5], ids[-1]], [ids[5], ids[1_000], ids[-2], ids[-1]])
    for members in (*old_and_new, ids[-7:]):
        apart, each = sqlite_steps(store, lambda m=members: alone(m))
        together, shared = sqlite_steps(store, lambda m=members: store.visitor_histories(m))
        assert shared == each
        assert together <= apart * 1.5, (members, together, apart)
    consecutive = ids[-7:]
    apart, _ = sqlite_steps(store, lambda: alone(consecutive))
    together, _ = sqlite_steps(store, lambda: store.visitor_histories(consecutive))
    assert together < apart
    store.close()


def test_rows_with_and_without_the_kept_begin_time_give_the_same_history(
    store: StoreProtocol,
) -> None:
    """The begin time kept at intake and the one read from the body where the caller gives
    none (as for a row stored before the column; a body without beginAt: then when it was
    received) are the same."""
    keep(store, chat(Category.MISSED, 1, 0), begin=False)
    keep(store, chat(Category.OFFLINE, 2, 1))
    no_begin = chat(Category.NORMAL, 3, 2)
    del no_begin["beginAt"]
    keep(store, no_begin)
    current = keep(store, chat(Category.LOW_RATED, 4, 3))
    earlier = store.visitor_history(current)
    begin = [chat(Category.MISSED, 1, n)["beginAt"] / 1000.0 for n in (0, 1)]
    assert earlier[:2] == (("missed", begin[0]), ("offline", begin[1]))
    [(category, received)] = earlier[2:]
    assert category == "normal"
    assert begin[1] < received  # when it was received: now, years after the sample's beginAt


def test_the_history_takes_the_kept_begin_time_without_reading_the_body(
    store: StoreProtocol,
) -> None:
    """Where a row has its begin time, the history reads that and not the body's beginAt."""
    data = chat(Category.MISSED, 1, 0)
    raw = json.dumps(data).encode()
    conversation = parse(raw)
    store.accept(
        Intake(
            raw=raw,
            conv_key=f"{conversation.account_id}-1",
            account_id=conversation.account_id,
            channel_id=1,
            content_hash="hash-1",
            category="missed",
            planned=(),
            begin_at=1234.5,
        )
    )
    current = keep(store, chat(Category.OFFLINE, 2, 1))
    assert store.visitor_history(current) == (("missed", 1234.5),)


def test_begin_seconds_is_the_stores_reading_of_a_body() -> None:
    """A beginAt in milliseconds as the stores divide it: the number as a double / 1000.0."""
    assert begin_seconds(None) is None
    assert begin_seconds(1427414400123) == 1427414400.123
    assert begin_seconds(2**60 + 1) == float(2**60) / 1000.0


def text_of(content: Content) -> str:
    """The plain-text part of an email, or a Slack message's blocks as JSON."""
    if isinstance(content, EmailContent):
        part = content.message.get_body(("plain",))
        assert part is not None
        return str(part.get_content())
    assert isinstance(content, SlackContent)
    return json.dumps(list(content.blocks))


def test_the_render_pool_job_and_the_dispatch_carry_the_earlier_conversations() -> None:
    """What the worker passes on reaches the message, in a helper and in process alike."""
    earlier = (("missed", 1427414400.0), ("offline", 1427673600.0))
    line = "2 earlier conversations (1 missed on Mar 27; last: Offline message on Mar 30)"
    raw = json.dumps(category_body(Category.LOW_RATED)).encode()
    renderer = renderer_for("en")
    settings = RenderSettings.model_validate({"locale": "en", "timezone": "Europe/London"})
    for action in (EMAIL_ACTION, SLACK_ACTION):
        job = Job(
            raw, parse(raw), Category.LOW_RATED, action, rule="r", delivery_id=1, earlier=earlier
        )
        pooled = RenderJob(settings, FROM_ADDRESS, raw, "low-rated", action, earlier=earlier)
        assert line in text_of(dispatch(job, renderer))
        assert line in text_of(pool_render(pooled))
        first_visit = Job(raw, parse(raw), Category.LOW_RATED, action, rule="r", delivery_id=1)
        assert "earlier conversation" not in text_of(dispatch(first_visit, renderer))


def test_sqlite_reads_a_visitors_conversations_by_index(tmp_path: Path) -> None:
    """The history reads the visitor's versions from the conversations_visitor_* indexes alone
    (covering: no table row, no body), and the sent Message-IDs find the visitor's
    conversations there and their sent emails in deliveries_sent_email: the plans name no
    scan of a whole table (a query that stops matching an index's columns or its WHERE would
    read every stored body)."""
    from relay.store import queries  # noqa: PLC0415
    from relay.store.base import migrate  # noqa: PLC0415

    path = tmp_path / "relay.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    migrate(conn, path)
    visitor = {"account": 1, "conv_key": "1-1", "rows": 200, "id": 9}
    history = {**visitor, "visitor": "v", "received": 1.0}
    sent = {**visitor, "vid": "v", "vemail": None, "limit": 10}
    together = {"account": 1, "visitor": "v", "id": 9}
    plans = {
        name: [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query, params)]
        for name, query, params in (
            ("by id", queries.VISITOR_VERSIONS_BY_ID, history),
            ("by email", queries.VISITOR_VERSIONS_BY_EMAIL, history),
            ("by id, several", queries.VISITOR_VERSIONS_BEFORE_BY_ID, together),
            ("by email, several", queries.VISITOR_VERSIONS_BEFORE_BY_EMAIL, together),
            ("sent", queries.SENT_EMAIL_IDS, sent),
        )
    }
    for index, name in (("visitor_id", "by id"), ("visitor_email", "by email")):
        # Read from the index alone, in its order: no table row, no sort.
        step = f"SEARCH conversations USING COVERING INDEX conversations_{index} "
        assert len(plans[name]) == 1 and plans[name][0].startswith(step), plans
        assert len(plans[f"{name}, several"]) == 1, plans
        assert plans[f"{name}, several"][0].startswith(step), plans
        assert any(f"INDEX conversations_{index} " in step for step in plans["sent"]), plans
    assert any("INDEX deliveries_sent_email " in step for step in plans["sent"]), plans
    # Only the (at most 200) conversations read from the indexes are scanned.
    scans = [step for step in plans["sent"] if step.startswith("SCAN")]
    assert all(step == "SCAN convs" or "subquery" in step for step in scans), plans
    for query in (queries.VISITOR_OF, queries.DELIVERY_VISITOR):
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + query, (1,))]
        assert all(step.startswith("SEARCH") for step in plan), plan
    conn.close()


def test_postgresql_can_read_a_visitors_conversations_by_index(postgres_url: str) -> None:
    """The same on PostgreSQL: with sequential scans discouraged, the planner finds the
    conversations_visitor_* indexes usable for both queries (the expressions match)."""
    import psycopg  # noqa: PLC0415 - only for PostgreSQL

    from relay.store.postgres import PostgresStore  # noqa: PLC0415
    from relay.store.postgres import queries as pg  # noqa: PLC0415

    PostgresStore(postgres_url).close()  # migrated
    with psycopg.connect(postgres_url) as conn:
        conn.execute("SET enable_seqscan = off")
        history = {"id": 1, "rows": 200}
        sent = {"id": 1, "rows": 200, "limit": 10}
        for query, params in ((pg.VISITOR_HISTORY, history), (pg.SENT_EMAIL_IDS, sent)):
            rows = conn.execute(("EXPLAIN " + query).encode(), params).fetchall()
            plan = "\n".join(row[0] for row in rows)
            assert "conversations_visitor_id" in plan, plan
            assert "conversations_visitor_email" in plan, plan


def test_an_earlier_chat_whose_begin_time_no_date_holds_leaves_the_email_rendered(
    store: StoreProtocol,
) -> None:
    """A stored beginAt far outside any date (the seconds the store reads are then too large
    for a date, or infinite) is left out of the history line; the email is still made."""
    keep(store, chat(Category.MISSED, 1, 0))
    absurd = chat(Category.MISSED, 2, 1)
    absurd["beginAt"] = 10**20  # milliseconds: 10**17 seconds, beyond year 9999
    keep(store, absurd)
    current = chat(Category.LOW_RATED, 3, 5)
    current_id = keep(store, current)
    earlier = store.visitor_history(current_id)
    assert [category for category, _ in earlier] == ["missed", "missed"]
    conversation = parse(json.dumps(current).encode())
    renderer = renderer_for("en")  # Europe/London: 1 January of the year 1 is in the year 0
    edges = (("offline", -62135596800.0), ("normal", 253402300799.0))  # years 1 and 9999
    for when in (earlier, (*earlier, ("offline", float("inf")), ("normal", float("nan")), *edges)):
        message = renderer.email(
            conversation, Category.LOW_RATED, EMAIL_ACTION, message_id=MESSAGE_ID, earlier=when
        ).message
        text = message.get_body(("plain",))
        assert text is not None
        line = "1 earlier conversation (1 missed on Mar 27; last: Missed chat on Mar 27)"
        assert line in str(text.get_content())
        slack = renderer.slack(conversation, Category.LOW_RATED, SLACK_ACTION, earlier=when)
        assert line in json.dumps(list(slack.blocks))
    for only_absurd in (("missed", float("inf")),), (edges[0],), (edges[1],):
        message = renderer.email(
            conversation,
            Category.LOW_RATED,
            EMAIL_ACTION,
            message_id=MESSAGE_ID,
            earlier=only_absurd,
        ).message
        text = message.get_body(("plain",))
        assert text is not None
        assert "earlier conversation" not in str(text.get_content())


@pytest.mark.parametrize("digits", [400, 309])
@pytest.mark.parametrize("sign", [1, -1])
def test_an_earlier_chat_whose_begin_at_is_an_integer_of_hundreds_of_digits_is_left_out_alike(
    store: StoreProtocol, digits: int, sign: int
) -> None:
    """A beginAt no double holds (accepted: the hook gives no begin time, and the body's is
    read, by SQLite's intake or PostgreSQL's history) reads as an infinite begin time on both
    stores, as SQLite reads the JSON number, so the
    visitor's history is read and that chat is left out of the line, not the whole history."""
    keep(store, chat(Category.MISSED, 1, 0))
    huge = chat(Category.MISSED, 2, 1)
    huge["beginAt"] = sign * 10**digits
    assert begin_seconds(huge["beginAt"]) is None  # as the hook passes it: no begin time
    keep(store, huge)
    keep(store, chat(Category.OFFLINE, 3, 3))
    current = chat(Category.LOW_RATED, 4, 5)
    current_id = keep(store, current)
    earlier = store.visitor_history(current_id)
    normal = [
        ("missed", begin_seconds(chat(Category.MISSED, 1, 0)["beginAt"])),
        ("offline", begin_seconds(chat(Category.OFFLINE, 3, 3)["beginAt"])),
    ]
    infinite = [("missed", sign * float("inf"))]
    assert list(earlier) == (infinite + normal if sign < 0 else normal + infinite)
    conversation = parse(json.dumps(current).encode())
    message = (
        renderer_for("en")
        .email(
            conversation, Category.LOW_RATED, EMAIL_ACTION, message_id=MESSAGE_ID, earlier=earlier
        )
        .message
    )
    text = message.get_body(("plain",))
    assert text is not None
    line = "2 earlier conversations (1 missed on Mar 27; last: Offline message on Mar 30)"
    assert line in str(text.get_content())


@pytest.mark.parametrize(
    ("written", "seconds"),
    [("1" + "0" * 400, float("inf")), ("-1" + "0" * 400, float("-inf")), ("1e-400", 0.0)],
)
def test_a_row_stored_before_the_begin_column_reads_an_out_of_range_begin_at_alike(
    store: StoreProtocol, written: str, seconds: float
) -> None:
    """A row given no begin time (as one stored before the column) takes it from its body
    (SQLite's intake, PostgreSQL's history): a beginAt written beyond a double's range reads
    as SQLite reads it (infinite; one too small for a double: 0)."""
    keep(store, chat(Category.MISSED, 1, 0), begin=False, begin_text=written)
    current_id = keep(store, chat(Category.OFFLINE, 2, 1))
    assert store.visitor_history(current_id) == (("missed", seconds),)


@pytest.mark.parametrize("field", ["id", "email"])
def test_a_visitor_whose_id_or_email_is_a_lone_surrogate_is_matched_without_an_error(
    open_test_store: StoreOpener, field: str
) -> None:
    """A visitor id or email written as a lone UTF-16 surrogate escape (JSON Python reads, and
    SQLite reads as text that is not UTF-8) gives no error: SQLite matches it as any other, as
    before the visitor columns were, for the history and the sent Message-IDs alike;
    PostgreSQL cannot read such a body as JSON, so there it matches nothing (as it always did)."""
    store = open_test_store()
    odd = "\ud800"
    visitor = {"id": odd} if field == "id" else {"id": None, "email": odd}
    first_id = keep(store, chat(Category.MISSED, 1, 0, **visitor))
    keep(store, chat(Category.NORMAL, 2, 1, id=None, email="someone@example.com"))
    current_id = keep(store, chat(Category.OFFLINE, 3, 2, **visitor))
    begin = chat(Category.MISSED, 1, 0)["beginAt"] / 1000.0
    found = (("missed", begin),) if open_test_store.backend == "sqlite" else ()
    assert store.visitor_history(current_id) == found
    # Read together, as the worker reads a claim's: grouped by those bytes, the same.
    assert store.visitor_histories([first_id, current_id]) == {first_id: (), current_id: found}
    if open_test_store.backend != "sqlite":
        return
    assert isinstance(store, Store)
    for delivery, conversation, ref in ((1, 1, "<sent-1@relay>"), (2, current_id, None)):
        store._conn.execute(
            "INSERT INTO deliveries (id, conversation_id, dedupe_key, rule, channel, action,"
            " category, status, attempts, created_at, next_attempt_at, updated_at,"
            " external_ref) VALUES (?, ?, ?, 'r', 'email', '{}', 'missed', ?, 1, 1.0, 1.0,"
            " 1.0, ?)",
            (delivery, conversation, f"k{delivery}", "sent" if ref else "pending", ref),
        )
    assert store.sent_email_ids(2) == ("<sent-1@relay>",)
    assert store.sent_email_ids(1) == ()
