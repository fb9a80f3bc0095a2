"""System programs some tests need (apt packages .ci/run installs when they are missing)."""

from __future__ import annotations

import os

import pytest


def require_program(found: str | None, package: str) -> str:
    """``found`` (the program's path); without it a skip on a developer's machine naming the
    package to install, and a failure under CI=true, where no test may skip."""
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{package} is not installed but CI=true requires the tests that use it")
        pytest.skip(f"{package} is not installed (apt-get install {package})")
    return found
