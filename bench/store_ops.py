"""Store operations: CPU per email of what the store's thread does for each delivered email.

Usage: .venv/bin/python bench/store_ops.py [--messages 2000] [--repeat 3]

Stores --messages conversations (one visitor each, one planned transcript email each, as
bench/delivery.py --visitors distinct does), opens the store as the store thread does
(defer_sync, the log copied on a thread of its own), then for every email, on this thread
alone: a claim of one delivery with its context (claim_with_context, in a transaction of
its own, as the store thread runs a call alone in its batch: without a savepoint), then its
outcome (mark_sent through the outcome writer's _write_all, likewise), each followed by the
store thread's checks (file_problem after the commit, checkpoint). Reported: this thread's
CPU time per email (time.thread_time), median of the repetitions, each on a fresh store.
Without the queues, threads, flushes and wake-ups around them (bench/delivery.py --cpu
measures those too), so the store's own work is seen with far less noise than on a busy
machine.
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, median, queue_conversations
from delivery import settings_for

from relay.app import database_path
from relay.delivery.outcomes import _write_all
from relay.delivery.worker import claim_with_context
from relay.store import Store, StoreProtocol


def _all(action: dict[str, object]) -> bool:
    return True


def mark_sent(store: StoreProtocol, delivery_id: int, message_id: str) -> None:
    store.mark_sent(delivery_id, time.time(), message_id=message_id)


def one_run(messages: int, work: Path) -> float:
    settings = settings_for(work, 2525, 8)
    queue_conversations(settings, messages, same_visitor=False)
    store = Store(database_path(settings))
    wal = store.defer_sync()
    assert wal is not None
    wal.copy_on_a_thread()

    def batch(fn: Callable[[StoreProtocol], Any]) -> Any:
        """As StoreThread._process runs a call alone in its batch: its transaction (no
        savepoint: ``_call_alone``), then the checks after the commit."""
        with store.batch():
            result = fn(store)
        assert store.file_problem() is None
        wal.checkpoint()
        return result

    try:
        started = time.thread_time()
        for _ in range(messages):
            claim = functools.partial(claim_with_context, limit=1, now=time.time(), admit=_all)
            [(delivery, _)] = batch(claim)
            sent = functools.partial(
                mark_sent, delivery_id=delivery.id, message_id=f"<{delivery.id}@bench.test>"
            )
            [(_, error)] = batch(functools.partial(_write_all, [sent]))
            assert error is None
        return (time.thread_time() - started) / messages
    finally:
        wal.close()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"{machine()}; messages={args.messages}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="relay-bench-store-") as tmp:
        for index in range(args.repeat):
            cpu = one_run(args.messages, Path(tmp) / f"run-{index}")
            results.append(cpu)
            print(f"  run {index + 1}: {cpu * 1e6:7.1f} µs CPU per email", flush=True)
    # Also the least: on a shared machine other processes only ever add to a thread's CPU
    # time (cache misses, frequency), so the least is the steadiest figure.
    print(
        f"median: {median(results) * 1e6:7.1f} µs CPU per email (claim + outcome);"
        f" least: {min(results) * 1e6:7.1f} µs"
    )


if __name__ == "__main__":
    main()
