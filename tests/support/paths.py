"""Where the checkout's files are, for tests in any folder."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
SAMPLES = TESTS / "samples"
SNAPSHOTS = TESTS / "snapshots"
SCHEMAS = TESTS / "schemas"
BENCH = ROOT / "bench"
DOCS = ROOT / "docs"
