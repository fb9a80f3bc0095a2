"""Settings and hook-routed conversations for tests that run the delivery worker against a
store and a real SMTP server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relay.config.settings import Settings
from relay.intake.http import prepare
from relay.runtime import Runtime
from relay.snapshot import Snapshot
from relay.store import Intake
from tests.support.data import base_sections, body, sample

# One rule: every conversation emailed to one address.
BY_EMAIL = [{"name": "all-by-email", "actions": [{"type": "email", "to": ["ops@shop.test"]}]}]


def email_settings(tmp_path: Path, port: int, **sections: Any) -> Settings:
    """Settings with a state directory under ``tmp_path``, the SMTP server on ``port`` of
    127.0.0.1 and ``BY_EMAIL`` as the rules; ``sections`` replace whole sections."""
    data: dict[str, Any] = base_sections(tmp_path / "state")
    data["smtp"] = {"host": "127.0.0.1", "port": port, "from_address": "Relay <r@shop.test>"}
    data["rules"] = BY_EMAIL
    return Settings(**{**data, **sections})


def routed_intake(snapshot: Snapshot, n: int = 1) -> Intake:
    """Conversation ``n`` (a channel of its own) parsed, classified and routed as the hook
    would."""
    data = sample("v1")
    data["channel"]["id"] = 7_000 + n
    return prepare(Runtime(snapshot=snapshot), body(data))
