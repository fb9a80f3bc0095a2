"""The environment under test is the one uv.lock pins, and pyproject.toml declares every import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.lock import LOCK, check
from tests.support.paths import ROOT


def test_installed_versions_are_the_locked_ones() -> None:
    result = check()
    assert result.installed >= 20, result.header()
    assert result.mismatches == (), "\n".join(result.mismatches)


def test_lock_agrees_with_pyproject() -> None:
    """uv.lock was refreshed after the last change to pyproject.toml's dependencies."""
    uv = Path(sys.executable).with_name("uv")
    done = subprocess.run(
        [str(uv), "lock", "--check", "--offline", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr or done.stdout
    assert LOCK.is_file()
