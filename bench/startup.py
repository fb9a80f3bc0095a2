"""How long `relay --help`, `relay --version` and `relay check` take to start, against a bare
interpreter start and `python -c "import click"` in the same run (median of --repeat runs)."""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from common import PYTHON, RELAY


def median_seconds(argv: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True, stdin=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
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
            seconds = median_seconds(argv, args.repeat)
            baseline = baseline or seconds
            print(f"{name:28} {seconds * 1000:7.1f} ms  {seconds / baseline:5.1f}x baseline")


if __name__ == "__main__":
    main()
