"""The bench scripts parse their arguments and complete a tiny run (no timings asserted)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import BENCH


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize(
    "script",
    ["ingest.py", "ingest_stores.py", "delivery.py", "drain.py", "memory.py", "latency.py"],
)
def test_help(script: str) -> None:
    assert "usage:" in run(script, "--help").lower()


@pytest.mark.slow
def test_delivery_tiny_run_delivers_every_message_once() -> None:
    out = run("delivery.py", "--messages", "10", "--repeat", "1")
    assert "worker / naive" in out


@pytest.mark.slow
def test_drain_tiny_run_loses_nothing() -> None:
    out = run("drain.py", "--conversations", "20", "--backoff-max", "0.5")
    assert "lost=0 duplicates=0" in out


@pytest.mark.slow
def test_memory_tiny_run_samples_rss() -> None:
    out = run("memory.py", "--requests", "200", "--every", "100")
    assert "answers: {200: 200}" in out


@pytest.mark.slow
def test_startup_tiny_run_times_every_command() -> None:
    out = run("startup.py", "--repeat", "1", "--serve-repeat", "1")
    for name in ("baseline", "relay --help", "relay check", "relay serve, idle", "after one email"):
        assert name in out


@pytest.mark.slow
def test_latency_tiny_run_measures_every_probe_idle_and_under_load() -> None:
    out = run("latency.py", "--probes", "5", "--rate", "20", "--connections", "2")
    lines = out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == ["idle", "load"]
    assert all("probes=5 " in line and "p99" in line for line in lines[1:])
