"""Reloading settings: a valid change is applied, an invalid one is refused (old rules stay),
in process through the reload function and in a real `relay serve` through SIGHUP."""

from __future__ import annotations

import json
import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar.testing import TestClient

from relay.app import build_snapshot, create_app
from relay.config.settings import Settings, load_settings
from relay.reload import reload_runtime
from relay.runtime import Runtime
from tests.support.app import runtime, wait_settled
from tests.support.config import write_config
from tests.support.data import TOKEN, body, sample
from tests.support.process import RelayProcess
from tests.support.webhook import FakeEndpoint, Received


@pytest.fixture
def endpoint() -> Iterator[FakeEndpoint]:
    fake = FakeEndpoint()
    fake.start()
    yield fake
    fake.stop()


def config_text(
    state: Path, endpoint: FakeEndpoint, rule: str, *, port: int = 8080, extra: str = ""
) -> str:
    return f"""
[server]
hook_token = "{TOKEN}"
host = "127.0.0.1"
port = {port}

[storage]
state_dir = "{state}"

[delivery]
backoff_initial_seconds = 0.05
shutdown_grace_seconds = 1

[[rules]]
name = "{rule}"
actions = [{{ type = "webhook", url = "{endpoint.url("/" + rule)}" }}]
{extra}
"""


BROKEN = 'match.time = { timezone = "Mars/Olympus_Mons" }'


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def conversation(channel_id: int) -> bytes:
    data = sample("v1")
    data["channel"]["id"] = channel_id
    return body(data)


class Collect(logging.Handler):
    """Records of one logger (the app's logging setup replaces the root handlers)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []
        self.logger = logging.getLogger(name)

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Collect:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)


def test_reload_applies_a_valid_change_and_refuses_an_invalid_one(
    tmp_path: Path, endpoint: FakeEndpoint
) -> None:
    path = tmp_path / "relay.toml"
    state = tmp_path / "state"
    path.write_text(config_text(state, endpoint, "first"), encoding="utf-8")

    def load() -> Any:
        return load_settings(path)

    with TestClient(create_app(load(), reload=load)) as client:
        rt = runtime(client)
        client.post(f"/hooks/smartsupp/{TOKEN}", content=conversation(1))
        assert endpoint.wait_for(1)[-1].path == "/first"

        path.write_text(config_text(state, endpoint, "second"), encoding="utf-8")
        assert reload_runtime(rt, load, build_snapshot)
        assert [r.name for r in rt.snapshot.rules.rules] == ["second"]
        client.post(f"/hooks/smartsupp/{TOKEN}", content=conversation(2))
        assert endpoint.wait_for(2)[-1].path == "/second"

        path.write_text(config_text(state, endpoint, "third", extra=BROKEN), encoding="utf-8")
        with Collect("relay.reload") as logged:
            assert not reload_runtime(rt, load, build_snapshot)
        (message,) = logged.messages
        assert message.startswith("reload failed, still running on the previous settings")
        assert "rule 'third': match.time.timezone: unknown time zone" in message
        client.post(f"/hooks/smartsupp/{TOKEN}", content=conversation(3))
        assert endpoint.wait_for(3)[-1].path == "/second"
        wait_settled(client)


@pytest.mark.slow
def test_sighup_reloads_a_running_relay_without_dropping_requests(
    tmp_path: Path, endpoint: FakeEndpoint
) -> None:
    path = tmp_path / "relay.toml"
    state = tmp_path / "state"
    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks/smartsupp/{TOKEN}"
    path.write_text(config_text(state, endpoint, "first", port=port), encoding="utf-8")
    relay = RelayProcess(path, port)
    try:
        relay.start()  # the store and worker are up
        relay.wait_for_line("SIGHUP reloads the settings")
        assert httpx.post(url, content=conversation(1), timeout=10).status_code == 200
        assert endpoint.wait_for(1)[-1].path == "/first"

        # A valid change, sent while requests keep arriving: every one is answered 200.
        path.write_text(config_text(state, endpoint, "second", port=port), encoding="utf-8")
        burst = range(100, 120)
        with httpx.Client(timeout=10) as client:
            relay.hup()
            statuses = [client.post(url, content=conversation(c)).status_code for c in burst]
        relay.wait_for_line("settings reloaded: 1 rules, fallback drop")
        assert statuses == [200] * len(burst)
        assert httpx.post(url, content=conversation(2), timeout=10).status_code == 200
        routed = paths_by_channel(endpoint.wait_for(2 + len(burst)))
        assert routed[1] == "/first" and routed[2] == "/second"
        assert set(routed) == {1, 2, *burst}  # each accepted conversation delivered once
        assert set(routed.values()) == {"/first", "/second"}

        # An invalid change: refused with the reason, and the previous rules stay in force.
        broken = config_text(state, endpoint, "third", port=port, extra=BROKEN)
        path.write_text(broken, encoding="utf-8")
        relay.hup()
        line = relay.wait_for_line("reload failed, still running on the previous settings")
        assert "rule 'third': match.time.timezone: unknown time zone 'Mars/Olympus_Mons'" in line
        assert httpx.post(url, content=conversation(3), timeout=10).status_code == 200
        routed = paths_by_channel(endpoint.wait_for(3 + len(burst)))
        assert routed[3] == "/second"
        code = relay.terminate()
    finally:
        relay.ensure_stopped()
    assert code in (0, -signal.SIGTERM)  # stopped, not crashed
    assert len(endpoint.received) == 3 + len(burst)


def paths_by_channel(calls: list[Received]) -> dict[int, str]:
    routed: dict[int, str] = {}
    for call in calls:
        channel = json.loads(call.body)["channel"]["id"]
        assert channel not in routed, f"conversation {channel} delivered twice"
        routed[channel] = call.path
    return routed


def refused_reload(tmp_path: Path, old: dict[str, Any], new: dict[str, Any]) -> tuple[bool, str]:
    """Reload a runtime built from ``old`` with ``new``: (applied?, what relay.reload logged)."""
    settings = Settings(**old)
    rt = Runtime(snapshot=build_snapshot(settings))
    with Collect("relay.reload") as logged:
        applied = reload_runtime(rt, lambda: Settings(**new), build_snapshot)
    assert (rt.settings is settings) is not applied  # refused: the old settings stay whole
    return applied, "\n".join(logged.messages)


def test_a_reload_that_drops_or_changes_restart_only_settings_is_refused(tmp_path: Path) -> None:
    state = str(tmp_path / "state")
    old = {
        "server": {"hook_token": TOKEN},
        "storage": {"state_dir": state},
        "smtp": {"host": "127.0.0.1", "port": 2525},
        "destinations": {"webhook": {"crm": {"url": "http://127.0.0.1:9/crm"}}},
        "rules": [
            {"name": "all", "actions": [{"type": "webhook", "destination": "crm"}]},
        ],
    }
    cases = {
        "an empty file": (
            {},
            [
                "storage.state_dir changed (read only at start-up: restart to apply)",
                "server.hook_token is removed",
                "smtp.host is removed (mail would go to the outbox)",
                "destinations.webhook 'crm' removed",
                "the 1 [[rules]] are removed (the built-in rules would apply)",
            ],
        ),
        "another state_dir": (
            {**old, "storage": {"state_dir": str(tmp_path / "elsewhere")}},
            ["storage.state_dir changed"],
        ),
        "another port": ({**old, "server": {"hook_token": TOKEN, "port": 9999}}, ["server.port"]),
        "no smtp host": ({**old, "smtp": {}}, ["smtp.host is removed"]),
    }
    for name, (new, reasons) in cases.items():
        applied, logged = refused_reload(tmp_path, old, new)
        assert not applied, name
        assert logged.startswith("reload refused, still running on the previous settings: ")
        for reason in reasons:
            assert reason in logged, (name, logged)
    assert not (tmp_path / "elsewhere").exists()  # nothing of a refused reload is applied

    # Rotating the token and editing the rules is what a reload is for.
    rotated = {**old, "server": {"hook_token": "another-token-456"}}
    applied, logged = refused_reload(tmp_path, old, rotated)
    assert applied, logged


@pytest.mark.slow
def test_sighup_with_an_empty_config_is_refused_and_the_old_token_still_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An empty file's default state_dir is ./var: relative to the relay's working directory.
    monkeypatch.chdir(tmp_path)
    port = free_port()
    config, _ = write_config(tmp_path, server={"host": "127.0.0.1", "port": port})
    relay = RelayProcess(config, port)
    try:
        relay.start()
        with httpx.Client(timeout=10) as client:
            assert relay.post(client, conversation(1)).status_code == 200
            config.write_text("", encoding="utf-8")
            assert relay.proc is not None
            relay.proc.send_signal(signal.SIGHUP)
            line = relay.wait_for_line("reload refused, still running on the previous settings")
            assert "storage.state_dir changed (read only at start-up: restart to apply)" in line
            assert "server.hook_token is removed (Smartsupp's calls would get 404)" in line
            assert "server.port changed" in line
            assert relay.post(client, conversation(2)).status_code == 200
    finally:
        relay.ensure_stopped()
    assert not (tmp_path / "var").exists()  # the new state_dir was not half-applied
