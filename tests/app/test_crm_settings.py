"""CRM and help desk settings: the example block passes `relay check`, mistakes are refused
by name, `relay routes test` explains the actions and `relay queue` says why one skipped."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from relay.app import create_app
from relay.cli.main import main
from relay.config.settings import Settings, load_settings
from relay.model.errors import ConfigError
from tests.support.app import wait_settled
from tests.support.crm_systems import SYSTEMS
from tests.support.data import TOKEN, body
from tests.support.paths import ROOT

SAMPLE = ROOT / "tests" / "samples" / "missed-chat.json"


def crm_example() -> str:
    text = (ROOT / "settings.example.toml").read_text(encoding="utf-8")
    _, _, rest = text.partition("# --- example CRM exports: begin ---\n")
    block, end, _ = rest.partition("# --- example CRM exports: end")
    assert block and end, "settings.example.toml lost its CRM example markers"
    return "\n".join(line.removeprefix("#").removeprefix(" ") for line in block.splitlines())


def write(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "relay.toml"
    config.write_text(f'[storage]\nstate_dir = "{tmp_path / "state"}"\n{text}', encoding="utf-8")
    return config


def test_the_example_block_passes_relay_check(tmp_path: Path) -> None:
    config = write(tmp_path, crm_example())
    settings = load_settings(config)
    kinds = {action.type for _, action in settings.actions_by_place()}
    assert kinds == {"hubspot", "pipedrive", "freshdesk", "zendesk"}
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "4 named destinations" in result.output
    assert "HubSpot API https://api.hubapi.com (destination 'sales')" in result.output
    assert "Zendesk API https://yourcompany.zendesk.com (destination 'support')" in result.output
    assert "change-me" not in result.output


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (
            '[[rules]]\nname = "r"\nactions = [{ type = "hubspot", destination = "nope" }]\n',
            "unknown hubspot destination 'nope' (known: none)",
        ),
        ('[destinations.hubspot.sales]\napi_url = "https://api.hubapi.com"\n', "token"),
        (
            '[destinations.hubspot.sales]\ntoken = "t"\nproperties = { userId = "email" }\n',
            "the contact's email is the visitor's",
        ),
        (
            '[destinations.hubspot.sales]\ntoken = "t"\nproperties = { userId = "Shop User" }\n',
            "is no HubSpot property name",
        ),
        (
            '[destinations.zendesk.s]\napi_url = "ftp://x.zendesk.com"\nemail = "a@b.com"\n'
            'api_token = "t"\n',
            "api_url",
        ),
        (
            '[destinations.zendesk.s]\napi_url = "https://x.zendesk.com"\nemail = "not-an-email"\n'
            'api_token = "t"\n',
            "email",
        ),
        (
            '[destinations.freshdesk.s]\napi_url = "https://x.freshdesk.com"\napi_key = "k"\n'
            '[[rules]]\nname = "r"\n[[rules.actions]]\ntype = "freshdesk"\ndestination = "s"\n'
            'priority = "whenever"\n',
            "priority",
        ),
        (
            '[destinations.freshdesk.s]\napi_url = "https://x.freshdesk.com"\napi_key = "k"\n'
            '[[rules]]\nname = "r"\n[[rules.actions]]\ntype = "freshdesk"\ndestination = "s"\n'
            'tags = ["two words"]\n',
            "no spaces or commas",
        ),
        (
            '[destinations.pipedrive.s]\napi_token = "k"\n'
            '[[rules]]\nname = "r"\n[[rules.actions]]\ntype = "pipedrive"\ndestination = "s"\n'
            'title = "{{ name "\n',
            "template error",
        ),
    ],
)
def test_relay_check_refuses_mistakes_by_name(tmp_path: Path, text: str, says: str) -> None:
    config = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert says in str(caught.value)
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code != 0
    assert says in result.output


def test_routes_test_explains_each_crm_action(tmp_path: Path) -> None:
    config = write(tmp_path, crm_example())
    result = CliRunner().invoke(main, ["routes", "test", str(SAMPLE), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "HubSpot (destination 'sales'): upsert the contact by email" in result.output
    assert "skipped without a visitor email" in result.output
    assert "Pipedrive (destination 'sales')" in result.output


def test_relay_queue_says_why_a_crm_delivery_was_skipped(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    system = SYSTEMS["hubspot"]
    api = system.make().start()
    try:
        settings = make_settings(
            destinations={"hubspot": {"sales": system.destination(api)}},
            rules=[{"name": "crm", "actions": [{"type": "hubspot", "destination": "sales"}]}],
        )
        data: dict[str, Any] = json.loads(SAMPLE.read_text("utf-8"))
        data["visitor"]["email"] = ""
        with TestClient(create_app(settings)) as client:
            response = client.post(f"/hooks/smartsupp/{TOKEN}", content=body(data))
            assert response.status_code == 200
            wait_settled(client)
    finally:
        api.stop()
    assert api.requests == []
    config = tmp_path / "queue.toml"
    config.write_text(
        f'[storage]\nstate_dir = "{settings.storage.state_dir}"\n'
        f'[destinations.hubspot.sales]\ntoken = "x"\napi_url = "{api.url}"\n'
        '[[rules]]\nname = "crm"\nactions = [{ type = "hubspot", destination = "sales" }]\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(main, ["queue", "--all", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output
    assert "reason: skipped: the visitor left no email address, and HubSpot needs one" in (
        result.output
    )


def test_send_test_crm_checks_each_credential_read_only(tmp_path: Path) -> None:
    apis = {name: system.make().start() for name, system in SYSTEMS.items()}
    try:
        tables = []
        for name, api in apis.items():
            destination = dict(SYSTEMS[name].destination(api))
            destination.pop("properties", None)
            if name == "zendesk":
                destination["api_token"] = "wrong-token"  # this one is refused
            keys = "\n".join(f"{k} = {json.dumps(v)}" for k, v in destination.items())
            tables.append(f"[destinations.{name}.main]\n{keys}\n")
        config = write(tmp_path, "\n".join(tables))
        result = CliRunner().invoke(main, ["send-test", "--crm", "--config", str(config)])
    finally:
        for api in apis.values():
            api.stop()
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    assert any(line.startswith("ok") and "hubspot destination 'main'" in line for line in lines)
    assert any(line.startswith("ok") and "bot@shop.test" in line for line in lines)
    assert any(
        line.startswith("FAILED") and "zendesk" in line and "Couldn't authenticate you" in line
        for line in lines
    )
    assert "wrong-token" not in result.output
    for api in apis.values():
        assert api.problems == []
        assert {r.method for r in api.requests} == {"GET"}  # nothing was created


def test_send_test_without_to_or_crm_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["send-test", "--config", str(write(tmp_path, ""))])
    assert result.exit_code == 2
    assert "--crm" in result.output


def test_send_test_crm_without_any_crm_destination_fails_saying_so(tmp_path: Path) -> None:
    config = write(tmp_path, "")
    result = CliRunner().invoke(main, ["send-test", "--crm", "--config", str(config)])
    assert result.exit_code == 1
    assert result.output == "FAILED CRM destinations: none configured\n"
