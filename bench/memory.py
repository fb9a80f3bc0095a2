"""Memory: RSS of `relay serve` while it takes --requests conversations, and the growth
between the half-way point and the end (target: none).

Usage: .venv/bin/python bench/memory.py [--requests 100000] [--deliveries none|outbox]

The hook gets --requests new conversations over 32 keep-alive connections (a small asyncio
HTTP/1.1 client in bench/common.py); VmRSS of the server is read from /proc/<pid>/status
every 10,000 answers. --deliveries none (default): `rules = []`, intake only, so the
measurement is not a backlog of renders; outbox: every conversation is also rendered to an
.eml file by the worker (which falls behind: it is slower than intake).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    EMAIL_EVERYTHING,
    NO_RULES,
    RELAY,
    TOKEN,
    free_port,
    machine,
    post_many,
    relay_config,
    rss_kib,
    server,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--deliveries", choices=["none", "outbox"], default="none")
    parser.add_argument("--every", type=int, default=10_000, help="RSS sample interval")
    args = parser.parse_args()
    print(f"{machine()}; requests={args.requests} deliveries={args.deliveries}")
    with tempfile.TemporaryDirectory(prefix="relay-bench-memory-") as tmp:
        work = Path(tmp)
        port = free_port()
        rules = EMAIL_EVERYTHING if args.deliveries == "outbox" else NO_RULES
        config = relay_config(work / "relay.toml", state_dir=work / "state", port=port, rules=rules)
        with server([RELAY, "serve", "--config", str(config)], port, work / "relay.log") as proc:
            samples = {0: rss_kib(proc.pid)}
            print(f"       0 requests: RSS {samples[0] / 1024:7.1f} MiB", flush=True)

            def sample(done: int) -> None:
                if done % args.every == 0:
                    samples[done] = rss_kib(proc.pid)
                    print(f"  {done:>6} requests: RSS {samples[done] / 1024:7.1f} MiB", flush=True)

            statuses = asyncio.run(
                post_many(port, f"/hooks/smartsupp/{TOKEN}", args.requests, on_progress=sample)
            )
            final = rss_kib(proc.pid)
    print(f"answers: {statuses}")
    half = max(k for k in samples if k <= args.requests // 2)
    growth = final - samples[half]
    print(
        f"RSS after {args.requests} requests: {final / 1024:.1f} MiB; "
        f"growth from {half} to {args.requests}: {growth / 1024:+.1f} MiB "
        f"({growth / samples[half] * 100:+.1f} %)"
    )
    if statuses != {200: args.requests}:
        sys.exit("some requests were not answered 200")


if __name__ == "__main__":
    main()
