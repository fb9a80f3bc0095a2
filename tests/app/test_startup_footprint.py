"""What a relay on its built-in defaults builds and imports at start: no sender library for a
destination the settings do not name, no renderer until something renders in its process."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from relay.app import build_snapshot
from relay.config.settings import Settings
from relay.model.errors import ConfigError
from relay.reload import reload_runtime
from relay.render.pool import RenderPool
from relay.render.renderer import SLACK_TEMPLATES
from relay.render.slack import SLACK_BUILDERS
from relay.runtime import Runtime
from relay.senders.outbox import OutboxSender
from relay.senders.registry import SenderRegistry
from relay.senders.smtp import SmtpSender
from relay.senders.webhook import DEFAULT_TIMEOUT_SECONDS, WebhookSender
from tests.support.data import base_sections
from tests.support.footprint import RENDER_LIBRARIES, SENDER_LIBRARIES

BUILD_APP = """
import json, sys
from relay.app import create_app
from relay.config.settings import Settings
if __name__ == "__main__":  # the render helper imports this as its main module
    create_app(Settings(**json.loads(sys.argv[1])))
    print(json.dumps(sorted(sys.modules)))
"""


CHECK = """
import json, sys
from relay.cli.main import main
main(["check", "--config", sys.argv[1]], standalone_mode=False)
print(json.dumps(sorted(sys.modules)))
"""


def test_relay_check_checks_slack_templates_without_slack_sdk(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n', encoding="utf-8")
    found = subprocess.run(
        [sys.executable, "-c", CHECK, str(config)], check=True, capture_output=True, text=True
    )
    assert "slack to #customer-feedback" in found.stdout  # the built-in Slack rule, checked
    imported = set(json.loads(found.stdout.splitlines()[-1]))
    assert "relay.render.renderer" in imported
    assert "slack_sdk" not in imported
    assert set(SLACK_TEMPLATES) == set(SLACK_BUILDERS)


def imported_by_create_app(tmp_path: Path, sections: dict[str, Any]) -> set[str]:
    script = tmp_path / "build_app.py"
    script.write_text(BUILD_APP, encoding="utf-8")
    found = subprocess.run(
        [sys.executable, str(script), json.dumps(sections)],
        check=True,
        capture_output=True,
        text=True,
    )
    imported = set(json.loads(found.stdout))
    assert "litestar" in imported  # the app was built
    return imported


def test_an_app_on_the_built_in_defaults_imports_no_sender_library(tmp_path: Path) -> None:
    imported = imported_by_create_app(tmp_path, base_sections(tmp_path / "state"))
    assert imported.isdisjoint(SENDER_LIBRARIES), imported & set(SENDER_LIBRARIES)


RUN_WORKER = """
import asyncio, json, sys
from relay.app import build_snapshot, build_worker, database_path
from relay.config.settings import Settings
from relay.runtime import Runtime
from relay.senders.registry import SenderRegistry
from relay.store import Store
from relay.store.storethread import StoreThread

async def run(settings):
    database_path(settings).parent.mkdir(parents=True, exist_ok=True)
    store = StoreThread(Store(database_path(settings)))
    senders = SenderRegistry()
    worker = build_worker(Runtime(build_snapshot(settings, senders), senders=senders), store)
    worker.start()
    await worker.settled()
    await worker.stop(5)
    await senders.close()
    store.close()

if __name__ == "__main__":  # the render helper imports this as its main module
    asyncio.run(run(Settings(**json.loads(sys.argv[1]))))
    print(json.dumps(sorted(sys.modules)))
"""


def test_an_idle_worker_on_the_built_in_defaults_imports_no_sender_library(
    tmp_path: Path,
) -> None:
    """The worker's steps (claims, the claim-ahead rule) read no deadline of a sender that is
    built on first use: that would import the webhook sender's httpx in every relay."""
    script = tmp_path / "run_worker.py"
    script.write_text(RUN_WORKER, encoding="utf-8")
    found = subprocess.run(
        [sys.executable, str(script), json.dumps(base_sections(tmp_path / "state"))],
        check=True,
        capture_output=True,
        text=True,
    )
    imported = set(json.loads(found.stdout.splitlines()[-1]))
    assert "relay.delivery.worker" in imported  # the worker ran
    assert imported.isdisjoint(SENDER_LIBRARIES), imported & set(SENDER_LIBRARIES)


def test_with_render_helpers_the_templates_are_checked_in_a_helper(tmp_path: Path) -> None:
    sections = base_sections(tmp_path / "state")
    sections["delivery"]["render_processes"] = 1
    imported = imported_by_create_app(tmp_path, sections)
    assert imported.isdisjoint(RENDER_LIBRARIES), imported & set(RENDER_LIBRARIES)
    # Without helpers the relay's process checks them itself.
    sections["delivery"]["render_processes"] = 0
    assert "relay.render.renderer" in imported_by_create_app(tmp_path, sections)


def test_a_broken_template_is_found_by_the_check_in_a_helper(tmp_path: Path) -> None:
    templates = tmp_path / "templates"
    (templates / "email").mkdir(parents=True)
    (templates / "email" / "transcript.txt.j2").write_text("{% if %}", encoding="utf-8")
    sections = base_sections(tmp_path / "state")
    sections["render"] = {"templates_dir": str(templates)}
    pool = RenderPool(1)
    try:
        with pytest.raises(ConfigError, match=r"email template 'transcript' \(text\)"):
            build_snapshot(Settings(**sections), render_pool=pool)
        assert pool.check(Settings(**sections))  # the helper answered, with the problem
        sections["render"] = {"templates_dir": str(tmp_path / "absent")}
        with pytest.raises(ConfigError, match=r"render\.templates_dir: .* is not a directory"):
            build_snapshot(Settings(**sections), render_pool=pool)
    finally:
        pool.close()


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


def test_a_reload_is_checked_in_the_helper_and_refused_with_a_broken_template(
    tmp_path: Path,
) -> None:
    sections = base_sections(tmp_path / "state")
    pool = RenderPool(1)
    try:
        runtime = Runtime(snapshot=build_snapshot(Settings(**sections), render_pool=pool))
        before = runtime.snapshot
        templates = tmp_path / "templates"
        (templates / "slack").mkdir(parents=True)
        (templates / "slack" / "alert.txt.j2").write_text("{{ view.", encoding="utf-8")
        broken = {**sections, "render": {"templates_dir": str(templates)}}
        build = partial(build_snapshot, render_pool=pool)
        assert not reload_runtime(runtime, lambda: Settings(**broken), build)
        assert runtime.snapshot is before
        (templates / "slack" / "alert.txt.j2").unlink()  # the built-in one again
        assert reload_runtime(runtime, lambda: Settings(**broken), build)
        assert runtime.snapshot.settings.render.templates_dir == templates
    finally:
        pool.close()
