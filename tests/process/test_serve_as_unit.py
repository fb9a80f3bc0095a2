"""`relay serve` run with the Python environment of systemd/relay.service (docstrings and
asserts left out, the bytecode for that mode kept in the service's cache directory): it takes
a hook, its render helper renders the email a real SMTP server receives, the console signs a
user in, a SIGHUP reload checks the templates again, and a second start finds its bytecode
cached instead of compiling it again."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from relay.cli import main
from tests.support.config import write_config
from tests.support.data import body
from tests.support.paths import ROOT, SAMPLES
from tests.support.process import RelayProcess
from tests.support.smtp import RecordingHandler, SmtpServer, free_port
from tests.support.units import parse_unit, python_environment

UNIT = ROOT / "systemd" / "relay.service"
PASSWORD = "a long password"


def unit_environment(cache: Path) -> dict[str, str]:
    env = python_environment(parse_unit(UNIT.read_text(encoding="utf-8")), str(cache))
    # The suite may run with PYTHONDONTWRITEBYTECODE set; the service does not (empty: unset).
    return {**env, "PYTHONDONTWRITEBYTECODE": ""}


def cached(cache: Path) -> dict[Path, int]:
    return {path: path.stat().st_mtime_ns for path in cache.rglob("*.pyc")}


def sign_in(client: httpx.Client) -> None:
    form = client.get("/console/login")
    assert form.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    signed = client.post(
        "/console/login", data={"csrf": found.group(1), "user": "jana", "password": PASSWORD}
    )
    assert signed.status_code == 303, signed.text


def test_the_unit_runs_python_without_docstrings_with_bytecode_in_its_cache() -> None:
    env = unit_environment(Path("/var/cache"))
    assert env["PYTHONOPTIMIZE"] == "2"
    assert env["PYTHONPYCACHEPREFIX"] == "/var/cache/relay/bytecode"
    unit = parse_unit(UNIT.read_text(encoding="utf-8"))
    assert ("CacheDirectory", "relay") in unit["Service"]


@pytest.mark.slow
def test_relay_serve_with_the_units_python_environment(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = unit_environment(cache)
    handler = RecordingHandler()
    smtp = SmtpServer(handler)
    smtp.start()
    port = free_port()
    config, _ = write_config(
        tmp_path,
        server={"port": port},
        smtp={"host": "127.0.0.1", "port": smtp.port},
        delivery={"render_processes": 1},
    )
    added = CliRunner().invoke(
        main, ["user", "add", "jana", "--config", str(config)], input=PASSWORD
    )
    assert added.exit_code == 0, added.output
    base = f"http://127.0.0.1:{port}"
    missed = (SAMPLES / "missed-chat.json").read_bytes()
    try:
        with RelayProcess(config, port, env=env) as relay:
            assert httpx.post(relay.url, content=missed).status_code == 200
            (email,) = handler.wait_for(1)
            broken = httpx.post(relay.url, content=b'{"broken": ')
            assert broken.status_code == 400, broken.text
            with httpx.Client(base_url=base, timeout=10) as client:
                sign_in(client)
                leads = client.get("/console/leads")
                assert leads.status_code == 200 and "Signed in as jana" in leads.text
            relay.hup()
            relay.wait_for_line("settings reloaded")
            assert relay.terminate() == 0
        first = cached(cache)
        with RelayProcess(config, port, env=env) as relay:
            another = json.loads(missed)
            another["channel"]["id"] += 1
            assert httpx.post(relay.url, content=body(another)).status_code == 200
            handler.wait_for(2)
            assert relay.terminate() == 0
        second = cached(cache)
    finally:
        smtp.stop()
    # The email came from the render helper, whole: its HTML part names the chat's visitor.
    (html,) = [p for p in email.message.walk() if p.get_content_type() == "text/html"]
    assert json.loads(missed)["visitor"]["name"] in html.get_content()
    # The relay and its render helper (which alone imports relay.render.view) compiled what
    # they imported into the cache, and only for this mode.
    names = {path.name for path in first}
    for module in ("app", "pipe", "renderer", "view"):
        assert f"{module}.{sys.implementation.cache_tag}.opt-2.pyc" in names, module
    assert all(".opt-2." in path.name for path in first)
    # The second start found every file of the first one valid and rewrote none of them.
    assert {path: second[path] for path in first} == first


# Every command's help text, by command path, as click shows it (``relay X --help``).
HELP_TEXTS = """
import json, click
from relay.cli import main
def walk(command, path):
    yield " ".join(path), command.help or "", command.short_help or ""
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from walk(sub, [*path, name])
print(json.dumps(list(walk(main, ["relay"]))))
"""


def help_texts(env: dict[str, str]) -> list[list[str]]:
    shown = subprocess.run(
        [sys.executable, "-c", HELP_TEXTS],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def test_every_commands_help_reads_the_same_with_the_units_python_environment(
    tmp_path: Path,
) -> None:
    """`relay-ctl ... --help` runs `relay` as the unit does (PYTHONOPTIMIZE=2: no
    docstrings): each command still says what it does."""
    plain = help_texts({"PYTHONOPTIMIZE": ""})
    assert len(plain) > 10 and all(text for _, text, _ in plain), plain
    assert help_texts(unit_environment(tmp_path / "cache")) == plain
