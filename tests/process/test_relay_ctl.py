"""systemd/relay-ctl: the operator commands run with the service's own user, state directory,
settings and credentials. systemd-run is replaced by tests/support/fake_systemd_run.py, which
sets up a scratch root the way systemd sets up the transient service."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.testing import TestClient

from relay.app import create_app
from relay.config.settings import load_settings
from tests.support.app import wait_settled
from tests.support.data import SAMPLES, TOKEN
from tests.support.paths import ROOT
from tests.support.units import parse_unit, values

CTL = ROOT / "systemd" / "relay-ctl"
FAKE = ROOT / "tests" / "support" / "fake_systemd_run.py"
UNIT = ROOT / "systemd" / "relay.service"

# The webhook destination has its url only in a credential file: without the credentials the
# settings are invalid and every command fails.
CONFIG = """
[storage]
state_dir = "./not-used-under-systemd"

[routing]
sales_inbox = "sales@shop.test"

[destinations.webhook.helpdesk]
timeout_seconds = 5.0
"""


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch / with /etc/relay/relay.toml, /etc/relay/credentials and a state directory
    /var/lib/relay that a relay filled: one missed chat written to the outbox, one refused
    body in the quarantine."""
    root = tmp_path / "root"
    etc = root / "etc" / "relay"
    (etc / "credentials").mkdir(parents=True)
    (etc / "relay.toml").write_text(CONFIG, encoding="utf-8")
    (etc / "credentials" / "server__hook_token").write_text(TOKEN)
    (etc / "credentials" / "destinations__webhook__helpdesk__url").write_text("http://127.0.0.1:9/")
    for name in [n for n in os.environ if n.startswith("RELAY_") or n == "CREDENTIALS_DIRECTORY"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("RELAY_STORAGE__STATE_DIR", str(root / "var" / "lib" / "relay"))
    settings = load_settings(etc / "relay.toml", secrets_dir=etc / "credentials")
    monkeypatch.delenv("RELAY_STORAGE__STATE_DIR")
    with TestClient(create_app(settings)) as client:
        hook = f"/hooks/smartsupp/{TOKEN}"
        answer = client.post(hook, content=(SAMPLES / "missed-chat.json").read_bytes()).json()
        assert answer["conversation"] == "208-55041"
        assert client.post(hook, content=b'{"broken": ').status_code == 400
        wait_settled(client)
    return root


def ctl(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    bin_dir = root.parent / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "systemd-run"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKE}" "$@"\n', encoding="utf-8")
    shim.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SYSTEMD_ROOT": str(root),
        "FAKE_RELAY": str(Path(sys.executable).with_name("relay")),
    }
    return subprocess.run(
        ["sh", str(CTL), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_operator_commands_see_the_services_state(root: Path) -> None:
    queue = ctl(root, "queue", "--all")
    assert queue.returncode == 0, queue.stdout + queue.stderr
    assert "208-55041" in queue.stdout
    assert "missed-and-offline-to-sales" in queue.stdout

    listed = ctl(root, "quarantine")
    assert listed.returncode == 0, listed.stderr
    assert "invalid_json" in listed.stdout

    retried = ctl(root, "retry", "--dead")
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == "0 deliveries scheduled for retry"

    # The command's exit status is relay-ctl's.
    missing = ctl(root, "retry", "999")
    assert missing.returncode == 1
    assert "no delivery 999" in missing.stderr

    purged = ctl(root, "purge", "--older-than", "0")
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.strip() == (
        "purged 1 conversations, 1 outbox files and 1 quarantined bodies older than 0 days"
    )
    assert "208-55041" not in ctl(root, "queue", "--all").stdout


@pytest.mark.slow
def test_properties_match_the_relay_service(root: Path) -> None:
    assert ctl(root, "queue").returncode == 0
    given = json.loads((root / "properties").read_text(encoding="utf-8"))
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    shared = ("DynamicUser", "User", "Group", "ConfigurationDirectory", "StateDirectory")
    shared += ("StateDirectoryMode", "UMask", "LoadCredential", "SetCredential")
    shared += ("CacheDirectory", "CacheDirectoryMode")
    for key in shared:
        assert [v for k, v in given if k == key] == values(unit, "Service", key), key
    text = CTL.read_text(encoding="utf-8")
    for assignment in values(unit, "Service", "Environment"):
        # %S is /var/lib and %C /var/cache for a system service; systemd-run takes the paths.
        path = assignment.replace("%S", "/var/lib").replace("%C", "/var/cache")
        assert f"--setenv={path} " in text


@pytest.mark.slow
def test_credentials_in_subdirectories_are_refused_clearly(root: Path) -> None:
    old = root / "etc" / "relay" / "credentials" / "smtp"
    old.mkdir()
    (old / "password").write_text("pw")
    result = ctl(root, "queue")
    assert result.returncode == 1
    assert "credential relay_smtp_password" in result.stderr
    assert "smtp__password" in result.stderr
