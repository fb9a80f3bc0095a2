"""The README's `relay routes test` example, run as written on a copy of settings.example.toml."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import ROOT

README = ROOT / "README.md"
RELAY = Path(sys.executable).with_name("relay")


def readme_blocks() -> list[tuple[str, str]]:
    """Every fenced code block of the README as (language, text)."""
    text = README.read_text(encoding="utf-8")
    return [(m[1], m[2]) for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.S | re.M)]


def routes_example() -> tuple[str, list[str], list[str]]:
    """The setup commands, the `relay routes test` command and its output shown in the README."""
    blocks = readme_blocks()
    for index, (_, text) in enumerate(blocks):
        if text.startswith("$ relay routes test "):
            command, *output = text.splitlines()
            setup_lang, setup = blocks[index - 1]
            assert setup_lang == "sh", "the README's setup commands precede the example"
            return setup, shlex.split(command.removeprefix("$ ")), output
    raise AssertionError("README.md has no `$ relay routes test` example")


@pytest.mark.slow
def test_readme_routes_example_matches_the_real_command(tmp_path: Path) -> None:
    setup, command, shown = routes_example()
    # The setup commands use paths of the checkout; give them the same files in a scratch dir.
    shutil.copy(ROOT / "settings.example.toml", tmp_path)
    (tmp_path / "tests" / "samples").mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "samples" / "doc-example-v1.json", tmp_path / "tests" / "samples")
    subprocess.run(
        ["bash", "-euo", "pipefail", "-c", setup],
        cwd=tmp_path,
        check=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert command[:3] == ["relay", "routes", "test"]
    result = subprocess.run(
        [str(RELAY), *command[1:]],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == shown
    # The example shows every kind of line: it is not trivially short.
    assert any(line.startswith("rule 1 ") for line in shown)
    assert "result: 2 deliveries" in shown


@pytest.mark.slow
def test_plain_copy_of_the_example_settings_uses_the_built_in_rules(tmp_path: Path) -> None:
    """Without the README's edit the same command runs on the built-in rules."""
    config = tmp_path / "relay.toml"
    shutil.copy(ROOT / "settings.example.toml", config)
    sample = ROOT / "tests" / "samples" / "doc-example-v1.json"
    result = subprocess.run(
        [str(RELAY), "routes", "test", str(sample), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "rule 1 'missed-and-offline-to-sales': not matched" in result.stdout
    assert 'no rule matched: fallback is "drop"' in result.stdout
