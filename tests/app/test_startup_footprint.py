"""What a relay on its built-in defaults builds and imports at start: no sender library for a
destination the settings do not name, no renderer until something renders in its process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from relay.app import build_snapshot
from relay.config.settings import Settings
from relay.senders.outbox import OutboxSender
from relay.senders.registry import SenderRegistry
from relay.senders.smtp import SmtpSender
from relay.senders.webhook import DEFAULT_TIMEOUT_SECONDS, WebhookSender
from tests.support.data import base_sections

# Libraries only a configured destination needs (SMTP, Graph, Slack, Teams, webhooks, CRMs).
SENDER_LIBRARIES = ("httpx", "aiosmtplib", "aiohttp", "cryptography")

BUILD_APP = """
import json, sys
from relay.app import create_app
from relay.config.settings import Settings
create_app(Settings(**json.loads(sys.argv[1])))
print(json.dumps(sorted(name for name in sys.modules if "." not in name)))
"""


def test_an_app_on_the_built_in_defaults_imports_no_sender_library(tmp_path: Path) -> None:
    sections = base_sections(tmp_path / "state")
    found = subprocess.run(
        [sys.executable, "-c", BUILD_APP, json.dumps(sections)],
        check=True,
        capture_output=True,
        text=True,
    )
    imported = set(json.loads(found.stdout))
    assert "litestar" in imported  # the app was built
    assert imported.isdisjoint(SENDER_LIBRARIES), imported & set(SENDER_LIBRARIES)


def test_senders_are_built_for_what_the_settings_name(tmp_path: Path) -> None:
    sections = base_sections(tmp_path / "state")
    built = SenderRegistry().build(Settings(**sections))
    assert isinstance(built["email"], OutboxSender)
    assert isinstance(built["slack"], OutboxSender)
    assert isinstance(built["teams"], OutboxSender)
    # The webhook sender of actions with their own URL is there, built when first used.
    assert built["webhook"].deadline_seconds == DEFAULT_TIMEOUT_SECONDS
    assert not any(":" in key for key in built)
    sections["smtp"] = {"host": "127.0.0.1", "port": 2525}
    sections["destinations"] = {"webhook": {"crm": {"url": "http://127.0.0.1:9/hook"}}}
    built = SenderRegistry().build(Settings(**sections))
    assert isinstance(built["email"], SmtpSender)
    assert isinstance(built["webhook:crm"], WebhookSender)


def test_renderers_are_built_on_first_use(tmp_path: Path) -> None:
    sections = base_sections(tmp_path / "state")
    sections["smtp"] = {"from_address": "Relay <relay@shop.test>"}
    sections["destinations"] = {"smtp": {"billing": {"from_address": "billing@shop.test"}}}
    snapshot = build_snapshot(Settings(**sections))
    assert snapshot.renderers.built() == []
    renderer = snapshot.renderer()
    assert snapshot.renderers.built() == ["Relay <relay@shop.test>"]
    assert snapshot.renderer("Relay <relay@shop.test>") is renderer
    assert snapshot.renderer("billing@shop.test") is not renderer
    with pytest.raises(KeyError):
        snapshot.renderer("someone@else.test")
