"""The systemd unit: required directives, credential names that match the settings, and
.ci/check-systemd passing on the unit and failing on broken copies of it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from relay.connections import RESERVED_FILES
from relay.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "relay.service"
CHECK = ROOT / ".ci" / "check-systemd"
CREDENTIALS = "/etc/relay/credentials"


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file as lists of (key, value); keys may repeat, as in systemd."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        assert current is not None, f"directive outside a section: {line!r}"
        assert "=" in line, f"not a key=value line: {line!r}"
        assert not line.endswith("\\"), "continuation lines are not used in this unit"
        key, value = line.split("=", 1)
        current.append((key.strip(), value.strip()))
    return sections


@pytest.fixture(scope="module")
def unit() -> dict[str, list[tuple[str, str]]]:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit.get(section, []) if k == key]


def single(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"[{section}] {key}= appears {len(found)} times, expected once"
    return found[0]


def test_parser_rejects_a_line_without_equals_sign() -> None:
    with pytest.raises(AssertionError):
        parse_unit("[Service]\nProtectSystem strict\n")


@pytest.mark.parametrize(
    ("section", "key", "expected"),
    [
        ("Unit", "After", "network-online.target"),
        ("Unit", "Wants", "network-online.target"),
        ("Service", "Type", "exec"),
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


def secret_setting_names() -> set[str]:
    """<section>__<key> of every SecretStr setting: the file names the relay looks for."""
    names = set()
    for section, field in Settings.model_fields.items():
        model = field.annotation
        for key, sub in getattr(model, "model_fields", {}).items():
            if SecretStr in getattr(sub.annotation, "__args__", (sub.annotation,)):
                names.add(f"{section}__{key}")
    return names


def test_known_secret_settings() -> None:
    assert {
        "server__hook_token",
        "smtp__password",
        "slack__token",
        "slack__webhook_url",
    } <= secret_setting_names()


def test_every_secret_section_is_loaded_as_optional_credentials(
    unit: dict[str, list[tuple[str, str]]],
) -> None:
    # A directory LoadCredential=ID:DIR names each file "<ID>_<file>", so the ID
    # "<section>_" turns DIR/<key> into the credential "<section>__<key>".
    loaded = dict(v.split(":", 1) for v in values(unit, "Service", "LoadCredential"))
    fallbacks = dict(v.split(":", 1) for v in values(unit, "Service", "SetCredential"))
    sections = {name.split("__", 1)[0] for name in secret_setting_names()}
    for section in sections:
        assert loaded.get(f"{section}_") == f"{CREDENTIALS}/{section}"
    for cred_id in loaded:
        # Without a SetCredential= of the same ID a missing directory fails the start.
        assert fallbacks.get(cred_id), f"no SetCredential={cred_id}:... fallback"
        # The fallback credential must not be mistaken for a setting.
        assert cred_id.rstrip("_") in sections
        assert not cred_id.endswith("__")


def test_credentials_directory_as_systemd_builds_it(tmp_path: Path) -> None:
    # What $CREDENTIALS_DIRECTORY holds with only /etc/relay/credentials/smtp/password
    # present: the loaded file plus the three SetCredential= fallbacks.
    (tmp_path / "smtp__password").write_text("s3cret\n")
    (tmp_path / "smtp__username").write_text("relay\n")
    for cred_id in ("server_", "smtp_", "slack_"):
        (tmp_path / cred_id).write_text("unused")
    settings = load_settings(None, secrets_dir=tmp_path)
    assert settings.smtp.password is not None
    assert settings.smtp.password.get_secret_value() == "s3cret"
    assert settings.server.hook_token is None
    assert settings.slack.token is None
    assert settings.slack.webhook_url is None


# --- .ci/check-systemd -------------------------------------------------------------------

# Outside CI a machine without systemd-analyze skips these; under CI (.ci/run installs it) a
# missing tool must fail them instead.
needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None and os.environ.get("CI") != "true",
    reason="systemd-analyze is not installed",
)


def run_check(unit_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHECK), str(unit_path)],
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
@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        # Misspelt key: only a warning for systemd, an error for the check.
        ("ProtectSystem=strict", "ProtectSytem=strict", "Unknown key"),
        ("Type=exec", "Type=exce", "service type"),
        ("RestartSec=2s", "RestartSec=2x", "sec value"),
        ("SystemCallFilter=@system-service", "SystemCallFilter=@system-servce", "system call"),
        ("SetCredential=smtp_:unused", "SetCredential=smtp_:", "Invalid syntax"),
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
