"""A newcomer's first hour, through the real ``relay`` command: outbox mode said loudly, settings
that cannot work refused by ``relay check``, ``send-test``, CLI manners, one relay per state dir."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.support.config import write_config
from tests.support.data import TOKEN, body, sample
from tests.support.paths import SAMPLES
from tests.support.process import RelayProcess, relay_command
from tests.support.smtp import RecordingHandler, SmtpServer, free_port


def relay(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*relay_command(), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


def missed(n: int = 1) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = n
    data["channel"]["isMissed"] = True
    return body(data)


# --- relay check: settings that cannot work ------------------------------------------------


@pytest.mark.parametrize(
    ("sections", "named", "said"),
    [
        ({"routing": {"sales_inbox": "sales"}}, "routing.sales_inbox", "'sales' is not an email"),
        (
            {"routing": {"sales_inbox": ["a@shop.example", "b@"]}},
            "routing.sales_inbox",
            "'b@'",
        ),
        (
            {"smtp": {"host": "mail.shop.example", "port": 465, "security": "starttls"}},
            "smtp",
            "port 465 expects TLS",
        ),
        (
            {"smtp": {"host": "mail.shop.example", "port": 587, "security": "tls"}},
            "smtp",
            "port 587 expects STARTTLS",
        ),
        (
            {"smtp": {"host": "mail.shop.example", "username": "relay"}},
            "smtp",
            "username is set but password is not",
        ),
        (
            {"smtp": {"host": "mail.shop.example", "password": "pw"}},
            "smtp",
            "password is set but username is not",
        ),
        ({"smtp": {"from_address": "relay"}}, "smtp.from_address", "not an email address"),
    ],
    ids=[
        "sales",
        "one-bad-in-a-list",
        "465-starttls",
        "587-tls",
        "user-only",
        "password-only",
        "from-address",
    ],
)
def test_check_refuses_settings_that_cannot_work(
    tmp_path: Path, sections: dict[str, dict[str, object]], named: str, said: str
) -> None:
    config = _raw_config(tmp_path, sections)
    done = relay("check", "--config", str(config))
    assert done.returncode == 1, done.stdout
    assert named in done.stderr, done.stderr
    assert said in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def _raw_config(tmp_path: Path, sections: dict[str, dict[str, object]]) -> Path:
    """write_config loads the settings it writes; these must not load, so write TOML alone."""
    from tests.support.config import to_toml  # noqa: PLC0415

    path = tmp_path / "relay.toml"
    state = {"storage": {"state_dir": str(tmp_path / "state")}}
    path.write_text(to_toml({**state, **sections}), encoding="utf-8")  # type: ignore[arg-type]
    return path


def test_several_recipients_for_the_sales_inbox(tmp_path: Path) -> None:
    config = _raw_config(
        tmp_path, {"routing": {"sales_inbox": ["sales@shop.example", "Boss <boss@shop.example>"]}}
    )
    done = relay("check", "--config", str(config))
    assert done.returncode == 0, done.stderr
    assert "email to sales@shop.example, Boss <boss@shop.example>" in done.stdout


# --- outbox mode says so ---------------------------------------------------------------------


def test_check_says_where_each_action_goes(tmp_path: Path) -> None:
    config = _raw_config(tmp_path, {"smtp": {"host": "mail.shop.example", "port": 2525}})
    done = relay("check", "--config", str(config))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    (email,) = [line for line in lines if "missed-and-offline-to-sales" in line]
    (slack,) = [line for line in lines if "low-rated-to-slack" in line]
    assert email.split()[0] == "ok" and "SMTP mail.shop.example:2525 (none)" in email
    assert slack.split()[0] == "OUTBOX" and "NOT sent ([slack] has no token" in slack
    assert f"{tmp_path / 'state' / 'outbox'}/" in slack
    assert "WARNING: actions marked OUTBOX" in done.stderr


def test_outbox_mode_is_unmistakable_in_log_queue_metrics_and_readyz(tmp_path: Path) -> None:
    port = free_port()
    config, _ = write_config(tmp_path, server={"port": port})
    process = RelayProcess(config, port)
    process.start()
    try:
        warning = process.wait_for_line("OUTBOX MODE")
        assert "2 of 2 configured actions are NOT sent" in warning
        with httpx.Client(timeout=10) as client:
            assert process.post(client, missed()).status_code == 200
            process.wait_for_line("delivery 1 written to the outbox, not sent")
            ready = client.get(f"http://127.0.0.1:{port}/readyz").json()
            metrics = client.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        assert process.terminate() == 0
    assert ready["delivery"]["mode"] == "outbox"
    assert len(ready["delivery"]["outbox"]) == 2
    assert 'relay_deliveries_total{channel="email",outcome="outbox"} 1.0' in metrics
    assert 'relay_deliveries_total{channel="email",outcome="sent"} 0.0' in metrics
    assert 'relay_delivery_queue_depth{status="outbox"} 1.0' in metrics
    queue = relay("queue", "--config", str(config), "--all")
    assert queue.returncode == 0, queue.stderr
    first, note, *_ = queue.stdout.splitlines()
    assert "sent=0" in first.split() and "outbox=1" in first.split()
    assert note.startswith("outbox=1: written to") and "NOT sent" in note
    (row,) = [line for line in queue.stdout.splitlines() if "208-1" in line]
    assert row.split()[1] == "outbox"


# --- send-test ---------------------------------------------------------------------------------


def test_send_test_sends_one_email_and_prints_the_server_answer(tmp_path: Path) -> None:
    handler = RecordingHandler()
    server = SmtpServer(handler)
    server.start()
    try:
        config = _raw_config(tmp_path, {"smtp": {"host": "127.0.0.1", "port": server.port}})
        done = relay("send-test", "--config", str(config), "--to", "owner@shop.example")
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok     email to owner@shop.example via SMTP 127.0.0.1:")
    assert "RCPT 250 OK" in done.stdout and "DATA 250 Message accepted" in done.stdout
    (received,) = handler.messages
    assert received.rcpt_tos == ["owner@shop.example"]
    message = received.message
    assert message["To"] == "owner@shop.example"
    assert message["Subject"] == "relay test message"


def test_send_test_in_outbox_mode_says_nothing_was_sent(tmp_path: Path) -> None:
    config = _raw_config(tmp_path, {})
    done = relay("send-test", "--config", str(config), "--to", "a@shop.example", "--channel", "#x")
    assert done.returncode == 1
    email, slack = done.stdout.splitlines()
    assert email.startswith("FAILED") and "NOT sent: [smtp] has no host" in email
    assert slack.startswith("FAILED") and "NOT sent: [slack] has no token" in slack


def test_send_test_reports_a_refusing_server_word_for_word(tmp_path: Path) -> None:
    handler = RecordingHandler()
    handler.data_replies = ["554 5.7.1 relay test refused by policy"]
    server = SmtpServer(handler)
    server.start()
    try:
        config = _raw_config(tmp_path, {"smtp": {"host": "127.0.0.1", "port": server.port}})
        done = relay("send-test", "--config", str(config), "--to", "owner@shop.example")
    finally:
        server.stop()
    assert done.returncode == 1
    assert "554 5.7.1 relay test refused by policy" in done.stdout


# --- CLI manners -------------------------------------------------------------------------------


def test_version_and_uncut_help() -> None:
    version = relay("--version")
    assert version.returncode == 0 and version.stdout.startswith("relay, version ")
    helptext = relay("--help").stdout
    commands = helptext.split("Commands:", 1)[1].splitlines()
    assert not [line for line in commands if line.rstrip().endswith("...")], helptext
    for command in ("serve", "check", "preview", "send-test", "queue", "retry", "purge"):
        assert f"  {command} " in helptext


def test_preview_writes_to_a_temporary_directory_and_prints_the_paths(tmp_path: Path) -> None:
    payload = tmp_path / "missed.json"
    payload.write_bytes(missed())
    config = _raw_config(tmp_path, {})
    done = relay("preview", str(payload), "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "preview").exists()  # nothing dropped into the working directory
    (rule_line,) = [line for line in done.stdout.splitlines() if line.startswith("rule ")]
    written = Path(rule_line.rsplit(" -> ", 1)[1])
    assert written.is_file() and written.suffix == ".eml"
    assert done.stdout.splitlines()[-1] == f"written to {written.parent}"


# --- one relay per state directory; bind first ------------------------------------------------


def test_serve_host_and_port_options_override_the_settings(tmp_path: Path) -> None:
    port = free_port()
    config, _ = write_config(tmp_path, server={"port": 1})  # would fail if used
    process = RelayProcess(config, port, args=("--host", "127.0.0.1", "--port", str(port)))
    process.start()
    try:
        with httpx.Client(timeout=10) as client:
            assert process.post(client, missed()).status_code == 200
    finally:
        assert process.terminate() == 0


def test_a_second_relay_on_the_same_state_dir_is_refused(tmp_path: Path) -> None:
    port = free_port()
    config, _ = write_config(tmp_path, server={"port": port})
    first = RelayProcess(config, port)
    first.start()
    try:
        second = relay("serve", "--config", str(config), "--port", str(free_port()))
    finally:
        assert first.terminate() == 0
    assert second.returncode == 1
    assert f"state directory {(tmp_path / 'state').resolve()} is in use" in second.stderr
    assert first.proc is not None and f"(pid {first.proc.pid})" in second.stderr


def test_a_state_dir_that_is_a_file_is_refused_without_a_traceback(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, server={"port": free_port()})
    (tmp_path / "state").write_text("a file where the state directory should be")
    done = relay("serve", "--config", str(config))
    assert done.returncode == 1
    assert done.stderr == f"Error: state directory {tmp_path / 'state'} is not a directory\n"


def test_a_port_clash_leaves_nothing_started(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config, _ = write_config(tmp_path, server={"port": port})
        done = relay("serve", "--config", str(config))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert not (tmp_path / "state" / "relay.db").exists()  # no store opened, no worker ran
    assert "relay started" not in done.stderr


def test_a_console_port_clash_leaves_nothing_started(
    tmp_path: Path,
) -> None:
    hook_port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config, _ = write_config(tmp_path, server={"port": hook_port}, console={"port": port})
        done = relay("serve", "--config", str(config))
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port} ([console])" in done.stderr
    assert not (tmp_path / "state" / "relay.db").exists()
    assert "relay started" not in done.stderr


def test_a_sighup_while_starting_is_applied_not_fatal(tmp_path: Path) -> None:
    port = free_port()
    config, _ = write_config(tmp_path, server={"port": port})
    process = RelayProcess(config, port)
    process.start(ready=None)
    try:
        process.wait_for_line("relay starting")  # settings read, store not yet open
        assert process.proc is not None
        process.proc.send_signal(signal.SIGHUP)
        process.wait_for_line("relay ready: listening on")
        process.wait_for_line("SIGHUP received while starting: reloading the settings now")
        with httpx.Client(timeout=10) as client:
            assert process.post(client, missed()).status_code == 200
    finally:
        assert process.terminate() == 0


def test_the_readme_sample_is_accepted_with_its_documented_answer(tmp_path: Path) -> None:
    port = free_port()
    config, _ = write_config(tmp_path, server={"port": port})
    sample_path = SAMPLES / "missed-chat.json"
    process = RelayProcess(config, port)
    process.start()
    try:
        with httpx.Client(timeout=10) as client:
            answer = client.post(
                f"http://127.0.0.1:{port}/hooks/smartsupp/{TOKEN}",
                content=sample_path.read_bytes(),
            )
    finally:
        assert process.terminate() == 0
    assert answer.status_code == 200
    assert json.loads(answer.text)["category"] == "missed"
