"""The systemd units: required directives, the credentials directory, the purge service and
timer sharing the relay's state, and .ci/check-systemd passing on the units and failing on
broken copies of them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from relay.config.credentials import SYSTEMD_ID
from relay.config.settings import Settings, load_settings
from relay.intake.connections import RESERVED_FILES
from tests.support.paths import ROOT
from tests.support.units import parse_unit, single, values

UNIT = ROOT / "systemd" / "relay.service"
PURGE = ROOT / "systemd" / "relay-purge.service"
TIMER = ROOT / "systemd" / "relay-purge.timer"
CHECK = ROOT / ".ci" / "check-systemd"
CREDENTIALS = "/etc/relay/credentials"


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def test_parser_rejects_a_line_without_equals_sign() -> None:
    with pytest.raises(AssertionError):
        parse_unit("[Service]\nProtectSystem strict\n")


@pytest.mark.parametrize(
    ("section", "key", "expected"),
    [
        ("Unit", "After", "network-online.target"),
        ("Unit", "Wants", "network-online.target"),
        ("Service", "Type", "notify"),
        ("Service", "NotifyAccess", "main"),
        ("Service", "ExecStart", "/opt/relay/venv/bin/relay serve"),
        ("Service", "ExecReload", "/bin/kill -HUP $MAINPID"),
        ("Service", "Restart", "on-failure"),
        ("Service", "KillSignal", "SIGTERM"),
        ("Service", "DynamicUser", "yes"),
        ("Service", "StateDirectory", "relay"),
        ("Service", "ConfigurationDirectory", "relay"),
        ("Service", "ProtectSystem", "strict"),
        ("Service", "ProtectHome", "yes"),
        ("Service", "PrivateTmp", "yes"),
        ("Service", "PrivateDevices", "yes"),
        ("Service", "PrivateUsers", "yes"),
        ("Service", "ProtectProc", "invisible"),
        ("Service", "ProcSubset", "pid"),
        ("Service", "NoNewPrivileges", "yes"),
        ("Service", "CapabilityBoundingSet", ""),
        ("Service", "AmbientCapabilities", ""),
        ("Service", "MemoryDenyWriteExecute", "yes"),
        ("Service", "SystemCallArchitectures", "native"),
        ("Service", "RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("Service", "UMask", "0077"),
        ("Install", "WantedBy", "multi-user.target"),
    ],
)
def test_directive(
    unit: dict[str, list[tuple[str, str]]], section: str, key: str, expected: str
) -> None:
    assert single(unit, section, key) == expected


def test_environment_points_the_relay_at_config_and_state_dir(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    env = dict(v.split("=", 1) for v in values(unit, "Service", "Environment"))
    assert env["RELAY_CONFIG"] == "/etc/relay/relay.toml"
    # %S is /var/lib for system services: the StateDirectory= created by systemd.
    assert env["RELAY_STORAGE__STATE_DIR"] == "%S/relay"


def test_stop_timeout_exceeds_the_default_shutdown_time(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    timeout = single(unit, "Service", "TimeoutStopSec")
    assert timeout.endswith("s")
    grace = Settings().delivery.shutdown_grace_seconds
    # Open HTTP requests get grace + 5 s, then deliveries get grace.
    assert float(timeout[:-1]) > (grace + 5) + grace


def test_open_file_limit_holds_the_default_connections_and_the_relays_own_files(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    # Without LimitNOFILE= the usual 1024 would lower the default connection limit at start.
    limit = int(single(unit, "Service", "LimitNOFILE"))
    assert limit >= Settings().server.max_connections + RESERVED_FILES


def test_system_call_filter_drops_privileged_and_resource_calls(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    filters = values(unit, "Service", "SystemCallFilter")
    assert "@system-service" in filters
    denied = [f for f in filters if f.startswith("~")]
    assert denied
    assert {"@privileged", "@resources"} <= set(" ".join(denied)[1:].split())


# --- Credentials ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", [UNIT, PURGE], ids=lambda p: p.name)
def test_the_credentials_directory_is_loaded_whole(path: Path) -> None:
    # A directory LoadCredential=ID:DIR names each file F "<ID>_F"; the relay strips "relay_"
    # and reads F as a setting path (relay.config.credentials). Missing directory: SetCredential=.
    unit = parse_unit(path.read_text(encoding="utf-8"))
    assert values(unit, "Service", "LoadCredential") == [f"{SYSTEMD_ID}:{CREDENTIALS}"]
    assert values(unit, "Service", "SetCredential") == [f"{SYSTEMD_ID}:unused"]


def test_credentials_directory_as_systemd_builds_it(tmp_path: Path) -> None:
    # What $CREDENTIALS_DIRECTORY holds with /etc/relay/credentials/smtp__password and
    # .../destinations__webhook__helpdesk__secret: the files, prefixed, and the fallback.
    (tmp_path / "relay_smtp__password").write_text("s3cret\n")
    (tmp_path / "relay_smtp__username").write_text("relay\n")
    (tmp_path / "relay_destinations__webhook__helpdesk__secret").write_text("hook")
    (tmp_path / SYSTEMD_ID).write_text("unused")
    config = tmp_path / "relay.toml"
    config.write_text('[destinations.webhook.helpdesk]\nurl = "https://h.test/"\n')
    settings = load_settings(config, secrets_dir=tmp_path)
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "s3cret"
    secret = settings.destinations.webhook["helpdesk"].secret
    assert secret is not None and secret.get_secret_value() == "hook"
    assert settings.server.hook_token is None
    assert settings.slack.token is None


# --- relay-purge.service and relay-purge.timer --------------------------------------------

# What makes the purge work on the relay's own data, as the relay itself sees it.
SHARED = (
    "DynamicUser",
    "User",
    "Group",
    "ConfigurationDirectory",
    "StateDirectory",
    "StateDirectoryMode",
    "UMask",
    "LoadCredential",
    "SetCredential",
)
# The purge needs no network; these may differ (it is stricter there).
NETWORK = ("RestrictAddressFamilies", "PrivateNetwork", "IPAddressDeny")


@pytest.fixture(scope="module")
def purge() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(PURGE.read_text(encoding="utf-8"))


def test_purge_runs_relay_purge_once(purge: dict[str, list[tuple[str, str]]]) -> None:
    assert single(purge, "Service", "ExecStart") == "/opt/relay/venv/bin/relay purge"
    assert single(purge, "Service", "Type") == "oneshot"
    # Started by the timer only.
    assert "Install" not in purge


def test_purge_uses_the_relays_user_state_settings_and_credentials(
    unit: dict[str, list[tuple[str, str]]], purge: dict[str, list[tuple[str, str]]]
) -> None:
    for key in SHARED:
        assert values(purge, "Service", key) == values(unit, "Service", key), key
    assert single(unit, "Service", "User") == "relay"
    relay_env = [v for v in values(unit, "Service", "Environment") if v.startswith("RELAY_")]
    purge_env = [v for v in values(purge, "Service", "Environment") if v.startswith("RELAY_")]
    assert purge_env == relay_env


def test_purge_is_sandboxed_at_least_like_the_relay(
    unit: dict[str, list[tuple[str, str]]], purge: dict[str, list[tuple[str, str]]]
) -> None:
    skip = {"Type", "NotifyAccess", "ExecStart", "ExecReload", "Restart", "RestartSec"}
    skip |= {"KillSignal"}
    skip |= {"TimeoutStopSec", "SyslogIdentifier", "Environment", *NETWORK}
    skip |= {"LimitNOFILE"}  # sized for the relay's HTTP connections; purge opens a few files
    # The relay's bytecode cache for PYTHONOPTIMIZE=2; the purge is a short-lived command.
    skip |= {"CacheDirectory", "CacheDirectoryMode"}
    for key in {k for k, _ in unit["Service"]} - skip:
        assert values(purge, "Service", key) == values(unit, "Service", key), key
    assert single(purge, "Service", "PrivateNetwork") == "yes"
    assert single(purge, "Service", "RestrictAddressFamilies") == "AF_UNIX"


def test_timer_runs_the_purge_daily_and_catches_up() -> None:
    timer = parse_unit(TIMER.read_text(encoding="utf-8"))
    assert single(timer, "Timer", "OnCalendar") == "daily"
    assert single(timer, "Timer", "Persistent") == "true"
    assert single(timer, "Timer", "RandomizedDelaySec")
    assert single(timer, "Timer", "Unit") == PURGE.name
    assert single(timer, "Install", "WantedBy") == "timers.target"


# --- .ci/check-systemd -------------------------------------------------------------------

# Outside CI a machine without systemd-analyze skips these; under CI (.ci/run installs it) a
# missing tool must fail them instead.
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and os.environ.get("CI") != "true",
    reason="systemd-analyze is not installed",
)


def run_check(*unit_paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), *map(str, unit_paths)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


@needs_systemd_analyze
def test_check_passes_on_the_unit() -> None:
    result = run_check(UNIT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "exposure" in result.stdout


@needs_systemd_analyze
def test_check_covers_every_shipped_unit_by_default() -> None:
    result = run_check()
    assert result.returncode == 0, result.stdout + result.stderr
    for path in (UNIT, PURGE, TIMER):
        assert f"systemd-analyze verify {path}" in result.stdout
    scores = dict(re.findall(r"OK: (\S+) exposure (\d+\.\d) \(limit 1\.5\)", result.stdout))
    assert set(scores) == {UNIT.name, PURGE.name}
    assert all(float(score) <= 1.5 for score in scores.values()), scores


@needs_systemd_analyze
def test_check_fails_above_one_point_five(tmp_path: Path) -> None:
    # Without RestrictNamespaces= the relay's exposure is 1.8: under the old limit of 2.0.
    text = UNIT.read_text(encoding="utf-8")
    assert "\nRestrictNamespaces=yes\n" in text
    broken = tmp_path / "relay.service"
    broken.write_text(text.replace("\nRestrictNamespaces=yes\n", "\n"), encoding="utf-8")
    result = run_check(broken)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "relay.service exposure 1.8 is above 1.5" in result.stderr


@needs_systemd_analyze
def test_check_fails_on_a_broken_purge_service(tmp_path: Path) -> None:
    text = PURGE.read_text(encoding="utf-8")
    broken = tmp_path / PURGE.name
    broken.write_text(text.replace("Type=oneshot", "Type=oneshoot"), encoding="utf-8")
    result = run_check(broken)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "service type" in result.stderr


@needs_systemd_analyze
def test_check_fails_on_a_weakened_purge_service(tmp_path: Path) -> None:
    kept = [
        line
        for line in PURGE.read_text(encoding="utf-8").splitlines()
        if not line.startswith(("SystemCallFilter=", "PrivateNetwork=", "RestrictNamespaces="))
    ]
    broken = tmp_path / PURGE.name
    broken.write_text("\n".join(kept) + "\n", encoding="utf-8")
    result = run_check(broken)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "relay-purge.service exposure" in result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("OnCalendar=daily", "OnCalendar=dayly", "Failed to parse calendar"),
        ("Persistent=true", "Persistant=true", "Unknown key"),
        ("Unit=relay-purge.service", "Unit=relay-purg.service", "relay-purg.service"),
    ],
)
def test_check_fails_on_a_broken_timer(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = TIMER.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / TIMER.name
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    shutil.copy(PURGE, tmp_path)
    result = run_check(broken)
    assert result.returncode != 0, result.stdout + result.stderr
    assert message in result.stderr


@needs_systemd_analyze
@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # Misspelt key: only a warning for systemd, an error for the check.
        ("ProtectSystem=strict", "ProtectSytem=strict", "Unknown key"),
        ("Type=notify", "Type=notfy", "service type"),
        ("RestartSec=2s", "RestartSec=2x", "sec value"),
        ("SystemCallFilter=@system-service", "SystemCallFilter=@system-servce", "system call"),
        ("SetCredential=relay:unused", "SetCredential=relay:", "Invalid syntax"),
        # Other executables are checked as written.
        ("ExecReload=/bin/kill", "ExecReload=/bin/kil", "not executable"),
        # ExecStart must keep the documented install path.
        ("ExecStart=/opt/relay/venv/bin/relay", "ExecStart=/usr/bin/relay", "ExecStart="),
    ],
)
def test_check_fails_on_a_broken_unit(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = UNIT.read_text(encoding="utf-8")
    assert old in text
    broken = tmp_path / "relay.service"
    broken.write_text(text.replace(old, new, 1), encoding="utf-8")
    result = run_check(broken)
    assert result.returncode != 0, result.stdout + result.stderr
    assert message in result.stderr


@needs_systemd_analyze
def test_check_fails_when_sandboxing_is_weakened(tmp_path: Path) -> None:
    weakened = [
        line
        for line in UNIT.read_text(encoding="utf-8").splitlines()
        if not line.startswith(("SystemCallFilter=", "PrivateUsers=", "ProtectProc="))
    ]
    broken = tmp_path / "relay.service"
    broken.write_text("\n".join(weakened) + "\n", encoding="utf-8")
    result = run_check(broken)
    assert result.returncode != 0, result.stdout + result.stderr
    assert "exposure" in result.stderr
