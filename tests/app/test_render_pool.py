"""Rendering in a helper process gives the same email and Slack message as in-process."""

from __future__ import annotations

import dataclasses
import email.policy
import multiprocessing
import multiprocessing.connection
import os
import pickle
import re
import resource
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import Settings
from relay.model.content import EmailContent
from tests.support.app import wait_settled
from tests.support.data import TOKEN, body, sample
from tests.support.slack import FakeSlack
from tests.support.smtp import SmtpServer


def deliver_both(settings: Settings) -> None:
    missed = sample("v1")
    missed["channel"]["isMissed"] = True
    rated = sample("v2")
    rated["channel"]["id"] = 7
    rated["channel"]["rating"] = 1
    rated["channel"]["ratingDesc"] = "<!channel> too slow"
    with TestClient(create_app(settings)) as client:
        for data in (missed, rated):
            assert client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data)).status_code == 200
        wait_settled(client)


def test_pool_and_in_process_rendering_deliver_the_same_content(
    make_settings: Callable[..., Settings],
    smtp_server: SmtpServer,
    fake_slack: FakeSlack,
    tmp_path: Path,
) -> None:
    started = datetime.now(UTC).replace(microsecond=0)
    for processes in (1, 0):
        settings = make_settings(
            smtp={"host": "127.0.0.1", "port": smtp_server.port},
            slack={"token": "xoxb-test", "api_url": fake_slack.url},
            delivery={"render_processes": processes},
            storage={"state_dir": str(tmp_path / f"state-{processes}")},
        )
        deliver_both(settings)
    first, second = smtp_server.handler.wait_for(2)
    for header in ("Subject", "To", "Reply-To", "Message-ID", "References"):
        assert first.message[header] == second.message[header]
    # Date is when each email was made for sending, in the helper or in the worker.
    for received in (first, second):
        assert parsedate_to_datetime(received.message["Date"]) >= started
    for kind in ("plain", "html"):
        one, two = (m.message.get_body(preferencelist=(kind,)) for m in (first, second))
        assert one is not None and two is not None
        assert one.get_content() == two.get_content()
    pooled, local = fake_slack.wait_for(2)
    assert pooled.body["text"] == local.body["text"]
    assert pooled.body["blocks"] == local.body["blocks"]
    assert "&lt;!channel&gt;" in pooled.body["text"]
    # The helper processes end with the app.
    assert multiprocessing.active_children() == []


async def test_a_dead_helper_means_in_process_rendering_once_then_a_new_helper() -> None:
    from relay.config.settings import EmailAction, RenderSettings  # noqa: PLC0415 -- local
    from relay.render.pool import PoolUnavailable, RenderJob, RenderPool  # noqa: PLC0415 -- local

    data = sample("v1")
    data["channel"]["isMissed"] = True
    job = RenderJob(
        RenderSettings(), "Relay <r@shop.test>", body(data), "missed",
        EmailAction(type="email", to=["sales@shop.test"]), "<m@shop.test>",
    )  # fmt: skip
    pool = RenderPool(1)
    try:
        first = await pool.render(job)
        assert first.message["Message-ID"] == "<m@shop.test>"
        for child in multiprocessing.active_children():
            child.kill()
            child.join()
        with pytest.raises(PoolUnavailable):
            await pool.render(job)
        again = await pool.render(job)
        assert again.message["Subject"] == first.message["Subject"]
    finally:
        pool.close()
    assert multiprocessing.active_children() == []


async def test_helpers_run_at_the_configured_lower_cpu_priority() -> None:
    from relay.config.settings import DeliverySettings, EmailAction, RenderSettings  # noqa: PLC0415
    from relay.render.pool import RenderJob, RenderPool  # noqa: PLC0415 -- local

    job = RenderJob(
        RenderSettings(), "Relay <r@shop.test>", body(sample("v1")), "normal",
        EmailAction(type="email", to=["sales@shop.test"]), "<m@shop.test>",
    )  # fmt: skip
    own = os.getpriority(os.PRIO_PROCESS, 0)
    assert DeliverySettings().render_niceness == 0  # intake first is the worker's yield
    for niceness in (10, 0):
        pool = RenderPool(1, niceness)
        try:
            await pool.render(job)
            (helper,) = multiprocessing.active_children()
            assert helper.pid is not None
            assert os.getpriority(os.PRIO_PROCESS, helper.pid) == min(own + niceness, 19)
        finally:
            pool.close()
    assert multiprocessing.active_children() == []


async def test_helpers_pick_up_edited_templates_with_a_new_settings_generation(
    tmp_path: Path,
) -> None:
    from relay.config.settings import EmailAction, RenderSettings  # noqa: PLC0415 -- local
    from relay.render.pool import RenderJob, RenderPool  # noqa: PLC0415 -- local

    (tmp_path / "email").mkdir()
    subject = tmp_path / "email" / "subject.txt.j2"
    subject.write_text("First wording")
    settings = RenderSettings(templates_dir=tmp_path)
    action = EmailAction(type="email", to=["sales@shop.test"])

    def job(generation: int) -> RenderJob:
        raw = body(sample("v1"))
        return RenderJob(settings, "R <r@shop.test>", raw, "missed", action, "<m@x>", generation)

    pool = RenderPool(1)
    try:
        assert (await pool.render(job(1))).message["Subject"] == "First wording"
        subject.write_text("Second wording")
        # Same generation: the helper keeps its compiled templates.
        assert (await pool.render(job(1))).message["Subject"] == "First wording"
        # A reload (new generation) makes it read the templates again.
        assert (await pool.render(job(2))).message["Subject"] == "Second wording"
    finally:
        pool.close()


async def test_helpers_killed_during_renders_make_every_render_fall_back_never_fail() -> None:
    """Every render in flight fails together when the helpers die; exactly one of them shuts
    the broken executor down, and each gets ``PoolUnavailable`` (render in-process), never an
    error of its own. Three times over, and the pool works again after each."""
    import asyncio  # noqa: PLC0415 -- local

    from relay.config.settings import EmailAction, RenderSettings  # noqa: PLC0415 -- local
    from relay.render.pool import PoolUnavailable, RenderJob, RenderPool  # noqa: PLC0415 -- local

    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["messages"] = data["messages"] * 2_000  # long enough to be rendering when killed
    job = RenderJob(
        RenderSettings(), "Relay <r@shop.test>", body(data), "missed",
        EmailAction(type="email", to=["sales@shop.test"]), "<m@shop.test>",
    )  # fmt: skip
    pool = RenderPool(2)
    try:
        for _ in range(3):
            await pool.render(job)  # helpers running
            helpers = multiprocessing.active_children()
            assert helpers
            renders = [asyncio.create_task(pool.render(job)) for _ in range(8)]
            await asyncio.sleep(0)  # let each task hand its job to the executor
            for helper in helpers:
                helper.kill()
            outcomes = await asyncio.gather(*renders, return_exceptions=True)
            failures = [o for o in outcomes if isinstance(o, BaseException)]
            assert failures, "no render was in flight when the helpers died"
            assert all(isinstance(f, PoolUnavailable) for f in failures), failures
        assert (await pool.render(job)).message["Message-ID"] == "<m@shop.test>"
    finally:
        pool.close()
        pool.close()  # closing twice is harmless
    assert multiprocessing.active_children() == []


async def test_helpers_that_cannot_start_mean_in_process_rendering_from_then_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from relay.config.settings import EmailAction, RenderSettings  # noqa: PLC0415 -- local
    from relay.render.pool import PoolUnavailable, RenderJob, RenderPool  # noqa: PLC0415 -- local

    job = RenderJob(
        RenderSettings(), "Relay <r@shop.test>", body(sample("v1")), "normal",
        EmailAction(type="email", to=["sales@shop.test"]),
    )  # fmt: skip
    pool = RenderPool(1)
    # No file descriptor left (the open-file limit at the lowest free one), as in a sandbox
    # that allows no more: the helpers' pipes cannot be made.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.dup(0)
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        with pytest.raises(PoolUnavailable):
            await pool.render(job)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert "render helper processes unavailable" in caplog.text
    assert "Too many open files" in caplog.text
    # From then on the helpers are not tried again: every render is in-process.
    with pytest.raises(PoolUnavailable):
        await pool.render(job)
    assert multiprocessing.active_children() == []
    pool.close()


async def test_an_email_for_a_byte_sender_comes_back_flattened_and_checked() -> None:
    """With ``flat`` the helper sends back the checked bytes, not the message object; they
    are the email the in-process renderer makes, and the message is parsed from them."""
    from relay.config.settings import EmailAction, RenderSettings  # noqa: PLC0415 -- local
    from relay.render.headers import flatten  # noqa: PLC0415 -- local
    from relay.render.pool import RenderJob, RenderPool  # noqa: PLC0415 -- local

    data = sample("v1")
    data["channel"]["isMissed"] = True
    action = EmailAction(type="email", to=["sales@shop.test"], bcc=["boss@shop.test"])
    job = RenderJob(
        RenderSettings(), "Relay <r@shop.test>", body(data), "missed", action, "<m@shop.test>",
    )  # fmt: skip
    pool = RenderPool(1)
    try:
        whole = await pool.render(job)
        flat = await pool.render(dataclasses.replace(job, flat=True))
    finally:
        pool.close()
    assert isinstance(whole, EmailContent) and isinstance(flat, EmailContent)
    assert whole.flat is None
    assert flat.flat is not None
    assert flat.flat.utf8 is False
    assert flat.message_id == "<m@shop.test>"
    assert flat.recipients == whole.recipients == ("sales@shop.test", "boss@shop.test")
    # The same bytes `flatten` makes of the message object, but for the Date header (each
    # email is dated when it is made); no Bcc header (the envelope carries it).
    expected = flatten(whole.message)
    assert without_date(flat.flat.data) == without_date(expected)
    assert b"\r\nBcc:" not in flat.flat.data
    # Only the bytes cross the process boundary; the message is parsed back on demand.
    assert flat.flat.data in pickle.dumps(flat)
    assert flat.message["Subject"] == whole.message["Subject"]
    assert flat.flat_for(utf8=False, eight_bit=True) == flat.flat.data
    # A server without 8BITMIME or with other SMTPUTF8 needs: flattened again, still readable.
    assert flat.flat_for(utf8=False, eight_bit=False) is None
    assert flat.flat_for(utf8=True, eight_bit=True) is None
    seven_bit = flatten(flat.message, eight_bit=False)
    assert seven_bit.isascii()
    parsed = BytesParser(policy=email.policy.default).parsebytes(seven_bit)
    assert isinstance(parsed, EmailMessage)
    plain = parsed.get_body(preferencelist=("plain",))
    original = whole.message.get_body(preferencelist=("plain",))
    assert plain is not None and original is not None
    assert plain.get_content().replace("\r\n", "\n") == original.get_content()


def test_the_helper_flattens_with_smtputf8_only_for_a_non_ascii_envelope() -> None:
    from relay.render.pool import flattened  # noqa: PLC0415 -- local

    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "R <r@shop.test>"
    message["To"] = "sales@shop.test"
    message["Subject"] = "hello"
    message["Message-ID"] = "<m@shop.test>"
    message.set_content("hello\n")
    ascii_only = flattened(EmailContent(message, ("sales@shop.test",)), "R <r@shop.test>")
    assert ascii_only.flat is not None
    assert ascii_only.flat.utf8 is False
    # A blind copy to a non-ASCII address: the envelope needs SMTPUTF8, so the bytes are made
    # for it (the sender uses them only on a server that offers it).
    recipients = ("sales@shop.test", "zoë@shop.test")
    content = flattened(EmailContent(message, recipients), "R <r@shop.test>")
    assert content.flat is not None
    assert content.flat.utf8 is True
    assert content.flat_for(utf8=True, eight_bit=True) == content.flat.data
    assert content.flat_for(utf8=False, eight_bit=True) is None


def test_headers_that_cannot_be_flattened_safely_stay_a_message_for_the_sender_to_refuse() -> None:
    from relay.render.pool import flattened  # noqa: PLC0415 -- local

    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = "R <r@shop.test>"
    message["To"] = "sales@shop.test"
    message["Subject"] = "Hi =?utf-8?q?x=0D=0ABcc:_v@evil.test?="
    message.set_content("hello\n")
    content = flattened(EmailContent(message, ("sales@shop.test",)), "R <r@shop.test>")
    assert content.flat is None
    assert content.message is message


def without_date(data: bytes) -> bytes:
    """The flattened email without its Date header, its MIME boundaries made the same."""
    found = re.search(rb'boundary="([^"]+)"', data)
    assert found is not None
    data = data.replace(found.group(1), b"BOUNDARY")
    return b"\r\n".join(line for line in data.split(b"\r\n") if not line.startswith(b"Date: "))


async def test_a_helper_that_stops_answering_is_ended_and_its_renders_fall_back(
    tmp_path: Path,
) -> None:
    """A hung helper (SIGSTOP) cannot hold deliveries: past the pool's deadline every render
    waiting on it raises ``PoolUnavailable`` (rendered in-process), the helper is killed and
    reaped, and the next render starts a new one. The template check, likewise."""
    import asyncio  # noqa: PLC0415 -- local
    import signal  # noqa: PLC0415 -- local

    from relay.config.settings import EmailAction, RenderSettings  # noqa: PLC0415 -- local
    from relay.render.pool import PoolUnavailable, RenderJob, RenderPool  # noqa: PLC0415 -- local
    from tests.support.data import base_sections  # noqa: PLC0415 -- local

    data = sample("v1")
    data["channel"]["isMissed"] = True
    job = RenderJob(
        RenderSettings(), "Relay <r@shop.test>", body(data), "missed",
        EmailAction(type="email", to=["sales@shop.test"]), "<m@shop.test>",
    )  # fmt: skip
    settings = Settings(**base_sections(tmp_path / "state"))
    pool = RenderPool(1)
    try:
        await pool.render(job)
        for hang in ("render", "check"):
            [helper] = multiprocessing.active_children()
            pool.deadline_seconds = 0.5  # the helper is up: only a hung one misses it
            os.kill(helper.pid, signal.SIGSTOP)
            if hang == "render":
                renders = [pool.render(job) for _ in range(3)]
                outcomes = await asyncio.gather(*renders, return_exceptions=True)
                assert all(isinstance(o, PoolUnavailable) for o in outcomes), outcomes
            else:
                with pytest.raises(PoolUnavailable):
                    await asyncio.to_thread(pool.check, settings)
            multiprocessing.connection.wait([helper.sentinel])  # killed, though stopped
            pool.deadline_seconds = 60.0  # a new helper's start is not a hang
            again = await pool.render(job)
            assert again.message["Message-ID"] == "<m@shop.test>"
            assert helper not in multiprocessing.active_children()
    finally:
        pool.close()
    assert multiprocessing.active_children() == []
