"""Outage drain: conversations queued while SMTP is down, then the time to deliver them all
once it is back, with zero lost and zero duplicates (Message-IDs counted at the sink).

Usage: .venv/bin/python bench/drain.py [--conversations 10000] [--backoff-max 5]

Steps: `relay serve` starts with SMTP pointing at a port where nothing listens; the script
posts --conversations new conversations to the hook (32 keep-alive connections; each plans
one transcript email); the worker's attempts fail (connection refused) and are rescheduled
with backoff (delivery.backoff_initial_seconds = 1, backoff_max_seconds = --backoff-max).
Then bench/sink.py starts on that port and the clock runs until the sink holds every
message. Reported: time to drain, emails/s, the wait until the first message (the backoff
still running when SMTP returned), and the delivery counts from the store.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    EMAIL_EVERYTHING,
    RELAY,
    TOKEN,
    SmtpSink,
    free_port,
    machine,
    post_many,
    relay_config,
    server,
)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=10000)
    parser.add_argument("--backoff-max", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=4, help="delivery.concurrency")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    print(
        f"{machine()}; conversations={args.conversations} backoff_max={args.backoff_max:g}s "
        f"delivery.concurrency={args.concurrency}"
    )
    with tempfile.TemporaryDirectory(prefix="relay-bench-drain-") as tmp:
        work = Path(tmp)
        port, smtp_port = free_port(), free_port()
        config = relay_config(
            work / "relay.toml",
            state_dir=work / "state",
            port=port,
            rules=EMAIL_EVERYTHING,
            smtp={"host": "127.0.0.1", "port": smtp_port, "timeout_seconds": 10},
            delivery={
                "concurrency": args.concurrency,
                "backoff_initial_seconds": 1.0,
                "backoff_max_seconds": args.backoff_max,
                "max_age_hours": 24,
            },
        )
        sink = SmtpSink(work / "ids", port=smtp_port)
        with server([RELAY, "serve", "--config", str(config)], port, work / "relay.log"):
            started = time.perf_counter()
            statuses = asyncio.run(post_many(port, f"/hooks/smartsupp/{TOKEN}", args.conversations))
            queued_in = time.perf_counter() - started
            print(f"queued {statuses} in {queued_in:.1f} s while SMTP was down")
            if statuses != {200: args.conversations}:
                sys.exit("intake refused some conversations")
            sink.start()
            up = time.perf_counter()
            first = None
            deadline = up + args.timeout
            while time.perf_counter() < deadline:
                arrived = sink.count()
                if arrived and first is None:
                    first = time.perf_counter() - up
                if arrived >= args.conversations:
                    break
                time.sleep(0.05)
            drained = time.perf_counter() - up
        sink.stop()
        ids = sink.ids()
        with sqlite3.connect(work / "state" / "relay.db") as db:
            counts = dict(db.execute("SELECT status, COUNT(*) FROM deliveries GROUP BY status"))
            (conversations,) = db.execute("SELECT COUNT(*) FROM conversations").fetchone()
            (failed,) = db.execute("SELECT SUM(attempts - 1) FROM deliveries").fetchone()
    duplicates = sum(n - 1 for n in collections.Counter(ids).values() if n > 1)
    distinct = len(set(ids))
    lost = args.conversations - distinct
    print(f"store: conversations={conversations} deliveries={counts} failed attempts={failed}")
    print(f"first message {first or float('nan'):.2f} s after SMTP came up")
    print(
        f"drained {distinct} emails in {drained:.1f} s = {distinct / drained:.0f} emails/s; "
        f"lost={lost} duplicates={duplicates}"
    )
    if lost or duplicates:
        sys.exit("FAILED: lost or duplicated messages")


if __name__ == "__main__":
    main()
