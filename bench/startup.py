"""How long `relay --help`, `relay --version` and `relay check` take to start, against a bare
interpreter start and `python -c "import click"` in the same run (median of --repeat runs);
then the idle memory of a real `relay serve` on its built-in defaults (only its port and state
directory and a known hook token set): VmRSS of the relay's process once /healthz answers
and a second has passed, of the processes it started (render helpers), and of both; and the
same after it wrote one missed chat's email (median of --serve-repeat starts). Then the same
again with the Python environment of systemd/relay.service (PYTHONOPTIMIZE=2, its bytecode
in a cache directory that one uncounted start fills first, as the service's first start
does)."""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from common import (
    PYTHON,
    RELAY,
    TOKEN,
    free_port,
    process_tree,
    rss_kib,
    sample_body,
    server,
    unit_python_environment,
)


def median_seconds(argv: list[str], repeat: int) -> tuple[float, float]:
    """Median wall-clock and CPU (user + system) seconds of running ``argv``: on a machine
    shared with other work the CPU time moves less than the wall-clock time."""
    times, cpu = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(times), statistics.median(cpu)


def memory(pid: int) -> tuple[float, float]:
    """VmRSS in MiB of the process ``pid`` and of all the processes it started."""
    return rss_kib(pid) / 1024, sum(rss_kib(child) for child in process_tree(pid)[1:]) / 1024


def idle_rss(
    scratch: Path, repeat: int, env: dict[str, str] | None = None, label: str = ""
) -> None:
    """Start `relay serve` ``repeat`` times from an empty state directory; print the medians
    of its memory when idle, and after it has written one missed chat's email (to the outbox:
    the built-in defaults have no SMTP server). ``env`` is added to its environment."""
    scratch.mkdir(exist_ok=True)
    idle: list[tuple[float, float]] = []
    after: list[tuple[float, float]] = []
    ready = []
    for n in range(repeat):
        port = free_port()
        state = scratch / f"serve-{n}"
        config = scratch / f"serve-{n}.toml"
        config.write_text(
            f'[server]\nport = {port}\nhook_token = "{TOKEN}"\n[storage]\nstate_dir = "{state}"\n'
        )
        start = time.perf_counter()
        command = [RELAY, "serve", "--config", str(config)]
        with server(command, port, scratch / "serve.log", env=env) as proc:
            ready.append(time.perf_counter() - start)
            time.sleep(1.0)  # let the threads started with the relay settle
            idle.append(memory(proc.pid))
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/hooks/smartsupp/{TOKEN}", data=sample_body(1)
            )
            with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 -- http on loopback
                assert answer.status == 200
            deadline = time.monotonic() + 30
            while not list((state / "outbox").glob("*.eml")) and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1.0)
            after.append(memory(proc.pid))
    for name, found in (("idle", idle), ("after one email", after)):
        relay = statistics.median(r for r, _ in found)
        helpers = statistics.median(h for _, h in found)
        together = statistics.median(r + h for r, h in found)
        print(
            f"relay serve{label}, {name:15} relay process {relay:5.1f} MiB, its helpers"
            f" {helpers:5.1f} MiB, together {together:5.1f} MiB (VmRSS)"
        )
    print(f"relay serve{label}: /healthz answered after {statistics.median(ready) * 1000:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--serve-repeat", type=int, default=3, help="relay serve starts (0: none)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "relay.toml"
        config.write_text(f'[storage]\nstate_dir = "{scratch}/state"\n', encoding="utf-8")
        cases = {
            "python -c pass (baseline)": [PYTHON, "-c", "pass"],
            "python -c 'import click'": [PYTHON, "-c", "import click"],
            "relay --version": [RELAY, "--version"],
            "relay --help": [RELAY, "--help"],
            "relay check": [RELAY, "check", "--config", str(config)],
        }
        baseline = None
        for name, argv in cases.items():
            seconds, cpu = median_seconds(argv, args.repeat)
            baseline = baseline or seconds
            print(
                f"{name:28} {seconds * 1000:7.1f} ms  {seconds / baseline:5.1f}x baseline"
                f"  CPU {cpu * 1000:6.1f} ms"
            )
        if args.serve_repeat:
            idle_rss(Path(scratch), args.serve_repeat)
            unit = unit_python_environment(Path(scratch) / "cache")
            idle_rss(Path(scratch) / "unit-first", 1, unit, " (unit, first start)")
            idle_rss(Path(scratch) / "unit", args.serve_repeat, unit, " (unit)")


if __name__ == "__main__":
    main()
