"""Delivery: emails/s of the relay's worker against a naive loop and an SMTP ceiling.

Usage: .venv/bin/python bench/delivery.py [--messages 2000] [--repeat 3] [--concurrency 8] [--cpu]

Each run stores --messages new conversations (the sample missed chat with a new channel.id),
each with one planned transcript email, then times one of:
  worker   the relay's Worker (relay.app.build_worker, the real store thread, renderer and
           SmtpSender with its connection pool) from start until nothing is left to send.
           As `relay serve` does (relay.app.create_app), its render helper is started and
           has checked the templates before the clock starts, i.e. before any delivery;
           --cold-helper starts it with the first email instead, inside the timed window;
  naive    a loop that renders each delivery exactly as the worker does and calls
           aiosmtplib.send(), i.e. a new SMTP connection per message, one at a time;
  ceiling  the same messages rendered and flattened to bytes BEFORE the clock starts, then
           pushed with sendmail() over --concurrency persistent connections;
  render   reference: rendering and flattening every message, no SMTP at all (what the
           worker's own CPU allows if sending and bookkeeping were free).
The SMTP server is bench/sink.py (aiosmtpd in its own process, accepts everything and writes
each Message-ID to a file); every run checks that each message arrived exactly once.
The order of the three rotates between repetitions; medians are reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiosmtplib
from common import CpuWindow, SmtpSink, machine, median, queue_conversations

from relay.app import build_snapshot, build_worker, database_path, new_render_pool
from relay.config.settings import DeliverySettings, Settings
from relay.delivery.worker import render_delivery
from relay.model.content import EmailContent
from relay.runtime import Runtime
from relay.senders.registry import SenderRegistry
from relay.snapshot import Snapshot
from relay.store import ClaimedDelivery, Store
from relay.store.storethread import StoreThread

RECIPIENT = "team@example.test"


def settings_for(
    state: Path, port: int, concurrency: int, per_destination: int | None = None
) -> Settings:
    return Settings(
        server={"hook_token": "bench-token"},
        storage={"state_dir": str(state)},
        smtp={"host": "127.0.0.1", "port": port, "from_address": "Relay <relay@example.test>"},
        delivery={"concurrency": concurrency, "per_destination_concurrency": per_destination},
        rules=[{"name": "everything-by-email", "actions": [{"type": "email", "to": [RECIPIENT]}]}],
    )


async def run_worker(
    settings: Settings, *, cold_helper: bool = False, cpu: CpuWindow | None = None
) -> float:
    store = StoreThread(Store(database_path(settings)))
    senders = SenderRegistry()
    # As relay.app.create_app: the helper starts with the relay and checks the templates
    # (build_snapshot waits for its answer), before the worker's first delivery.
    render_pool = None if cold_helper else new_render_pool(settings)
    snapshot = build_snapshot(settings, senders, render_pool)
    runtime = Runtime(snapshot=snapshot, senders=senders)
    worker = build_worker(runtime, store, render_pool=render_pool)
    if cpu is not None:
        cpu.start()
    started = time.perf_counter()
    worker.start()
    await worker.settled()
    elapsed = time.perf_counter() - started
    if cpu is not None:
        names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
        names[os.getpid()] = "event loop"
        sent = (await store.call(lambda s: s.counts()))["sent"]
        print("\n".join(f"    {line}" for line in cpu.report(sent, names)), flush=True)
    await worker.stop(5)
    await senders.close()
    counts = await store.call(lambda s: s.counts())
    store.close()
    if counts["sent"] == 0 or any(counts[k] for k in ("pending", "sending", "retrying", "dead")):
        raise RuntimeError(f"worker did not send everything: {counts}")
    return elapsed


def render(snapshot: Snapshot, delivery: ClaimedDelivery) -> EmailContent:
    """Exactly what the worker does before handing a delivery to its sender."""
    content = render_delivery(snapshot, delivery)
    assert isinstance(content, EmailContent)
    return content


def flat(content: EmailContent) -> bytes:
    """The message as it goes over the wire (what aiosmtplib's send_message produces)."""
    return content.message.as_bytes(policy=content.message.policy.clone(linesep="\r\n"))


def claimed(settings: Settings, count: int) -> list[ClaimedDelivery]:
    store = Store(database_path(settings))
    found = store.claim_due(limit=count)
    store.close()
    return found


async def run_naive(settings: Settings, count: int) -> float:
    deliveries = claimed(settings, count)
    snapshot = build_snapshot(settings)
    started = time.perf_counter()
    for delivery in deliveries:
        content = render(snapshot, delivery)
        await aiosmtplib.send(
            content.message,
            sender="relay@example.test",
            recipients=[RECIPIENT],
            hostname="127.0.0.1",
            port=settings.smtp.port,
        )
    return time.perf_counter() - started


async def run_ceiling(settings: Settings, count: int, connections: int) -> float:
    deliveries = claimed(settings, count)
    snapshot = build_snapshot(settings)
    messages = [flat(render(snapshot, delivery)) for delivery in deliveries]
    pending = iter(messages)

    async def push() -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=settings.smtp.port)
        await smtp.connect()
        for raw in pending:
            await smtp.sendmail("relay@example.test", [RECIPIENT], raw)
        await smtp.quit()

    started = time.perf_counter()
    await asyncio.gather(*(push() for _ in range(connections)))
    return time.perf_counter() - started


async def run_render_only(settings: Settings, count: int) -> float:
    """Reference: rendering and flattening alone, no SMTP (one core's worth of the worker)."""
    deliveries = claimed(settings, count)
    snapshot = build_snapshot(settings)
    started = time.perf_counter()
    for delivery in deliveries:
        flat(render(snapshot, delivery))
    return time.perf_counter() - started


def one_run(kind: str, args: argparse.Namespace, work: Path, index: int) -> float:
    state = work / f"{kind}-{index}"
    ids_file = work / f"{kind}-{index}.ids"
    with SmtpSink(ids_file) as sink:
        settings = settings_for(state, sink.port, args.concurrency, args.per_destination)
        planned = queue_conversations(settings, args.messages, same_visitor=args.visitors == "same")
        assert planned == args.messages, planned
        assert sink.proc is not None
        cpu = CpuWindow({os.getpid(): "relay", sink.proc.pid: "sink"}) if args.cpu else None
        runners: dict[str, Callable[[], float]] = {
            "worker": lambda: asyncio.run(
                run_worker(settings, cold_helper=args.cold_helper, cpu=cpu)
            ),
            "naive": lambda: asyncio.run(run_naive(settings, args.messages)),
            "ceiling": lambda: asyncio.run(run_ceiling(settings, args.messages, args.concurrency)),
            "render": lambda: asyncio.run(run_render_only(settings, args.messages)),
        }
        elapsed = runners[kind]()
        if kind == "render":
            return args.messages / elapsed
        deadline = time.monotonic() + 10
        while sink.count() < args.messages and time.monotonic() < deadline:
            time.sleep(0.05)
    ids = sink.ids()
    if len(ids) != args.messages or len(set(ids)) != args.messages:
        raise RuntimeError(f"{kind}: {len(ids)} arrived, {len(set(ids))} distinct")
    return args.messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=DeliverySettings().concurrency,
        help="worker and ceiling (default: the relay's default delivery.concurrency)",
    )
    parser.add_argument(
        "--per-destination",
        type=int,
        help="worker: [delivery] per_destination_concurrency (default: the relay's default)",
    )
    parser.add_argument("--only", choices=["naive", "ceiling", "worker", "render"], action="append")
    parser.add_argument(
        "--visitors",
        choices=["same", "distinct"],
        default="same",
        help="all conversations from the sample's visitor (default: each email lists up to 20"
        " earlier chats of that visitor, read from all of them), or one visitor each",
    )
    parser.add_argument(
        "--cold-helper",
        action="store_true",
        help="worker: start the render helper with the first email, inside the timed window"
        " (default: before the clock, as `relay serve` starts it with the relay)",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="worker: print the CPU time per email of each thread of the relay, its render"
        " helper and the SMTP sink over the timed window, and the machine's idle share",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the measured runs, one more worker run under py-spy: flame graph SVG here",
    )
    args = parser.parse_args()
    print(
        f"{machine()}; messages={args.messages} concurrency={args.concurrency}"
        f" visitors={args.visitors}" + (" cold-helper" if args.cold_helper else "")
    )
    kinds = args.only or ["naive", "ceiling", "worker", "render"]
    rates: dict[str, list[float]] = {k: [] for k in kinds}
    with tempfile.TemporaryDirectory(prefix="relay-bench-delivery-") as tmp:
        for index in range(args.repeat):
            for kind in kinds[index % len(kinds) :] + kinds[: index % len(kinds)]:
                rate = one_run(kind, args, Path(tmp), index)
                rates[kind].append(rate)
                print(f"  run {index + 1} {kind:<8} {rate:7.0f} emails/s", flush=True)
        if args.profile:
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            out = str(args.profile.resolve())
            script = Path(__file__).resolve()
            only = ["--messages", str(args.messages), "--repeat", "1", "--only", "worker"]
            subprocess.run(
                [spy, "record", "--threads", "-o", out, "--", sys.executable, str(script), *only],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            print(f"profile of one more worker run (not counted above): {args.profile}")
    med = {k: median(v) for k, v in rates.items()}
    for kind in kinds:
        print(f"{kind:<8} median {med[kind]:7.0f} emails/s")
    if not {"naive", "ceiling", "worker"} <= set(kinds):
        return
    print(f"worker / naive   = {med['worker'] / med['naive']:.2f} (target >= 2)")
    print(f"worker / ceiling = {med['worker'] / med['ceiling']:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
