"""Logging: one line per event, text or JSON, journald priorities, request ids, and no visitor
data at the info level."""

from __future__ import annotations

import io
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import LoggingSettings, Settings
from relay.ops.logs import (
    REQUEST_ID,
    RedactUrls,
    TextFormatter,
    configure_logging,
    lighten_records,
    under_journald,
)
from tests.support.app import wait_settled
from tests.support.data import TOKEN, body, sample
from tests.support.smtp import SmtpServer

Capture = Callable[..., io.StringIO]


@pytest.fixture
def capture() -> Iterator[Capture]:
    """Route all logging through ``configure_logging`` into a string for one test."""
    root = logging.getLogger()
    level = root.level
    handlers: list[logging.Handler] = []

    def start(fmt: str = "text", level: str = "info", journal: bool = False) -> io.StringIO:
        stream = io.StringIO()
        settings = LoggingSettings(format=fmt, level=level)  # type: ignore[arg-type]
        handlers.append(configure_logging(settings, stream, journal=journal))
        return stream

    yield start
    for handler in handlers:
        root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_text_is_one_line_per_event_even_with_newlines_and_tracebacks(capture: Capture) -> None:
    stream = capture()
    log = logging.getLogger("relay.test")
    log.info("first\nforged line\r\x1b[31m")
    try:
        raise ValueError("boom\nagain")
    except ValueError:
        log.exception("it failed")
    log.debug("not at info level")
    first, second = lines(stream)
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d INFO relay\.test: "
        r"first\\nforged line\\r\\x1b\[31m",
        first,
    )
    assert " ERROR relay.test: it failed\\nTraceback (most recent call last):" in second
    assert second.endswith("ValueError: boom\\nagain")


def test_under_journald_lines_carry_a_priority_and_no_time(capture: Capture) -> None:
    text = capture(journal=True)
    logging.getLogger("relay.test").warning("careful")
    logging.getLogger("relay.test").info("fine")
    assert lines(text) == ["<4>WARNING relay.test: careful", "<6>INFO relay.test: fine"]


def test_json_lines(capture: Capture) -> None:
    stream = capture("json", journal=True)
    logging.getLogger("relay.test").error("bad %s", "thing\n")
    (line,) = lines(stream)
    assert line.startswith("<3>{")
    event = json.loads(line.removeprefix("<3>"))
    assert event["level"] == "error"
    assert event["logger"] == "relay.test"
    assert event["message"] == "bad thing\n"
    assert re.fullmatch(r"\d{4}-.*T.*\.\d{3}\+00:00", event["time"])
    assert "request_id" not in event


def test_journald_is_detected_from_journal_stream(tmp_path: Path) -> None:
    with (tmp_path / "stream").open("w") as stream:
        stat = (tmp_path / "stream").stat()
        assert under_journald(stream, {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"})
        assert not under_journald(stream, {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino + 1}"})
        assert not under_journald(stream, {"JOURNAL_STREAM": "junk"})
        assert not under_journald(stream, {})
    assert not under_journald(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def missed() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    return body(data)


def test_request_id_is_on_every_line_of_the_request_and_in_the_response(
    capture: Capture, make_settings: Callable[..., Settings]
) -> None:
    stream = capture()
    hook = f"/hooks/smartsupp/{TOKEN}"
    with TestClient(create_app(make_settings())) as client:
        given = client.post(hook, content=missed(), headers={"X-Request-ID": "edge-42.a:b"})
        wait_settled(client)
        refused = client.post(hook, content=b"[]", headers={"X-Request-ID": "no spaces allowed"})
        made = client.get("/readyz")
    assert given.headers["X-Request-ID"] == "edge-42.a:b"
    assert re.fullmatch(r"[0-9a-f]{16}", refused.headers["X-Request-ID"])
    assert re.fullmatch(r"[0-9a-f]{16}", made.headers["X-Request-ID"])
    assert made.headers["X-Request-ID"] != refused.headers["X-Request-ID"]
    text = stream.getvalue()
    assert "INFO relay.api [edge-42.a:b]: conversation 208-55039 v1 accepted" in text
    rid = refused.headers["X-Request-ID"]
    assert f"WARNING relay.api [{rid}]: refused body from testclient: not_an_object" in text
    # The worker's lines belong to no request.
    (sent,) = [line for line in lines(stream) if "delivery 1 written" in line]
    assert "INFO relay.worker: delivery 1 written to the outbox, not sent" in sent


def test_litestar_keeps_the_relay_handler(
    capture: Capture, make_settings: Callable[..., Settings]
) -> None:
    stream = capture()
    with TestClient(create_app(make_settings())) as client:
        client.get("/healthz")
        logging.getLogger("litestar").warning("from the framework")
        logging.getLogger("uvicorn.error").info("from the server")
    text = stream.getvalue()
    assert "WARNING litestar: from the framework" in text
    assert "INFO uvicorn.error: from the server" in text


VISITOR_EMAIL = "zebra.visitor.7731@example.org"
MESSAGE_TEXT = "ultraviolet kumquat 5512"


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_no_visitor_email_or_message_text_at_info_level(
    capture: Capture,
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    fmt: str,
) -> None:
    stream = capture(fmt)
    settings = make_settings(smtp={"host": "127.0.0.1", "port": smtp_server.port})
    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["visitor"]["email"] = VISITOR_EMAIL
    data["messages"][0]["content"] = MESSAGE_TEXT
    # The same conversation with a wrongly typed field: refused, quarantined, logged.
    broken = json.loads(json.dumps(data))
    broken["channel"]["rating"] = f"{MESSAGE_TEXT} {VISITOR_EMAIL}"
    smtp_server.handler.data_replies.append("451 4.3.0 busy, try again later")
    hook = f"/hooks/smartsupp/{TOKEN}"
    with TestClient(create_app(settings)) as client:
        assert client.post(hook, content=body(data)).status_code == 200
        assert client.post(hook, content=body(data)).json()["status"] == "duplicate"
        assert client.post(hook, content=body(broken)).status_code == 400
        assert client.post(hook, content=body(data)[:-5]).status_code == 400
        smtp_server.handler.wait_for(1)
        wait_settled(client)
    received = smtp_server.handler.messages[0].message
    assert [a.addr_spec for a in received["Reply-To"].addresses] == [VISITOR_EMAIL]
    text = stream.getvalue()
    # Every kind of event happened and was logged...
    for expected in ("accepted", "wrong_type", "invalid_json", "failed (attempt 1)", "sent"):
        assert expected in text, expected
    # ...without the visitor's address or words.
    assert VISITOR_EMAIL not in text
    assert MESSAGE_TEXT not in text
    assert "kumquat" not in text


def test_the_writer_thread_writes_what_the_direct_handler_would_in_the_same_order() -> None:
    """`relay serve` formats and writes on a thread of its own: after ``flush()`` the stream
    holds exactly what a handler writing at once produced, record for record."""
    root = logging.getLogger()
    level = root.level
    direct, threaded = io.StringIO(), io.StringIO()
    settings = LoggingSettings(format="text", level="info")
    first = configure_logging(settings, direct, journal=False)
    first.set_name("direct")  # kept beside the threaded one that replaces "relay"
    second = configure_logging(settings, threaded, journal=False, threaded=True)
    try:
        log = logging.getLogger("relay.test")
        for n in range(300):
            log.info("line %d of %s\nforged", n, "many")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("it failed at %s", "the end")
        second.flush()
        assert threaded.getvalue() == direct.getvalue()
        assert len(lines(threaded)) == 301
        assert lines(threaded)[0].endswith("INFO relay.test: line 0 of many\\nforged")
    finally:
        for handler in (first, second):
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)


class RefusingStream(io.StringIO):
    """A stream that refuses every write holding ``refused`` with an error other than OSError
    (as writing to a missing stderr, None under ``2>&-``, fails with AttributeError)."""

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused
        self.refusals = 0

    def write(self, text: str) -> int:
        if self.refused in text:
            self.refusals += 1
            raise RuntimeError("this stream cannot take that")
        return super().write(text)


def test_a_write_that_fails_loses_only_its_line_and_the_writer_thread_goes_on() -> None:
    root = logging.getLogger()
    level = root.level
    stream = RefusingStream("refused line")
    handler = configure_logging(LoggingSettings(), stream, journal=True, threaded=True)
    try:
        log = logging.getLogger("relay.test")
        log.info("refused line")
        handler.flush()
        log.info("a later line")
        handler.flush()
        assert lines(stream) == ["<6>INFO relay.test: a later line"]
        assert stream.refusals > 0  # the refused line was tried
    finally:
        root.removeHandler(handler)
        handler.close()
        root.setLevel(level)


def test_the_writer_thread_shows_arguments_as_they_were_when_logged() -> None:
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = configure_logging(LoggingSettings(), stream, journal=True, threaded=True)
    try:
        items = ["a"]
        logging.getLogger("relay.test").info("items %s", items)
        items.append("changed later")
        handler.close()  # writes the rest and ends its thread
        assert lines(stream) == ["<6>INFO relay.test: items ['a']"]
        assert not [t for t in threading.enumerate() if t.name == "relay-log" and t.is_alive()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize(
    "created",
    [
        86_400.5,
        1_700_000_000.0,
        1_700_000_000.0004995,
        1_700_000_000.9995,
        1_700_000_000.9999996,
        1_796_277_087.3509996,
        1_796_277_087.999_999_5,
    ],
)
def test_the_text_time_is_the_local_time_to_the_millisecond(created: float) -> None:
    """The formatter reuses each second's local time and offset; every line still shows what
    datetime shows for its own instant, rounding included."""
    formatter = TextFormatter(journal=False)
    record = logging.LogRecord("relay.test", logging.INFO, __file__, 1, "x", None, None)
    for instant in (created - 1.0, created, created + 0.0004):
        record.created = instant
        when = datetime.fromtimestamp(instant).astimezone().isoformat("T", "milliseconds")
        assert formatter.format(record) == f"{when} INFO relay.test: x"


def test_only_a_message_with_credentials_in_a_url_is_rewritten() -> None:
    redact = RedactUrls()
    plain = logging.LogRecord("relay", logging.INFO, __file__, 1, "sent %s to %s", ("x", "y"), None)
    assert redact.filter(plain)
    assert (plain.msg, plain.args) == ("sent %s to %s", ("x", "y"))  # left to format lazily
    secret = logging.LogRecord(
        "relay", logging.INFO, __file__, 1, "posting to %s", ("https://u:pw@h.test/in",), None
    )
    assert redact.filter(secret)
    assert "pw" not in secret.getMessage() and "h.test/in" in secret.getMessage()
    assert secret.args is None


def test_lighter_records_write_the_same_lines(capture: Capture) -> None:
    """`relay serve` drops what no line shows from its records (``lighten_records``): the
    lines stay the same, text and JSON, request id and traceback included."""
    saved = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    saved_srcfile = logging._srcfile
    log = logging.getLogger("relay.test")
    seen: list[logging.LogRecord] = []

    class Keep(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            seen.append(record)
            return True

    def write_some(fmt: str) -> list[str]:
        stream = capture(fmt)
        token = REQUEST_ID.set("edge-9")
        try:
            log.info("conversation %s v%d accepted", "208-1", 2)
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("it failed at %s", "the end")
        finally:
            REQUEST_ID.reset(token)
        # Without the time (text) or with it blanked (JSON): the two runs differ in it only.
        if fmt == "json":
            return [json.dumps({**json.loads(line), "time": ""}) for line in lines(stream)]
        return [line.split(" ", 1)[1] for line in lines(stream)]

    log.addFilter(Keep())
    try:
        before = {fmt: write_some(fmt) for fmt in ("text", "json")}
        lighten_records()
        after = {fmt: write_some(fmt) for fmt in ("text", "json")}
    finally:
        logging.logThreads, logging.logProcesses, logging.logMultiprocessing = saved
        logging._srcfile = saved_srcfile
        log.filters.clear()
    assert after == before
    assert "INFO relay.test [edge-9]: conversation 208-1 v2 accepted" in after["text"][0]
    assert seen[0].threadName is not None and seen[0].lineno > 0
    assert (seen[-1].threadName, seen[-1].process, seen[-1].lineno) == (None, None, 0)
