"""How long `relay --help`, `relay --version` and `relay check` take to start, against a bare
interpreter start and `python -c "import click"` in the same run (median of --repeat runs);
then the idle memory of a real `relay serve` on its built-in defaults (only its port and state
directory set): VmRSS of the relay's process once /healthz answers and a second has passed,
of the processes it started (render helpers), and of both (median of --serve-repeat starts)."""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import PYTHON, RELAY, free_port, process_tree, rss_kib, server


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


def idle_rss(scratch: Path, repeat: int) -> None:
    """Start `relay serve` ``repeat`` times from an empty state directory; print the medians."""
    relay, helpers, ready = [], [], []
    for n in range(repeat):
        port = free_port()
        state = scratch / f"serve-{n}"
        config = scratch / f"serve-{n}.toml"
        config.write_text(f'[server]\nport = {port}\n[storage]\nstate_dir = "{state}"\n')
        start = time.perf_counter()
        with server([RELAY, "serve", "--config", str(config)], port, scratch / "serve.log") as proc:
            ready.append(time.perf_counter() - start)
            time.sleep(1.0)  # let the threads started with the relay settle
            relay.append(rss_kib(proc.pid) / 1024)
            helpers.append(sum(rss_kib(pid) for pid in process_tree(proc.pid)[1:]) / 1024)
    median = statistics.median
    together = [r + h for r, h in zip(relay, helpers, strict=True)]
    print(
        f"relay serve, idle (built-in defaults): relay process {median(relay):5.1f} MiB,"
        f" its helpers {median(helpers):5.1f} MiB, together {median(together):5.1f} MiB"
        f" (VmRSS); /healthz answered after {median(ready) * 1000:.0f} ms"
    )


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


if __name__ == "__main__":
    main()
