"""Shared test data: the hook token, the base settings every test starts from, sample bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.support.paths import SAMPLES

TOKEN = "test-token-123"


def base_sections(state_dir: Path) -> dict[str, Any]:
    """The settings every test starts from: a known token, a temp state dir, fast retries."""
    return {
        "server": {"hook_token": TOKEN},
        "storage": {"state_dir": str(state_dir)},
        "delivery": {
            "backoff_initial_seconds": 0.05,
            "backoff_max_seconds": 0.2,
            # Render in-process: a helper process per test app would only slow the suite
            # (tests/app/test_render_pool.py covers the pool).
            "render_processes": 0,
        },
    }


def sample(name: str = "v1") -> dict[str, Any]:
    return json.loads((SAMPLES / f"doc-example-{name}.json").read_text(encoding="utf-8"))


def body(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()
