"""Latency: from the hook's 2xx to the SMTP server's 250 for a missed chat, idle and under load.

Usage: .venv/bin/python bench/latency.py [--probes 200] [--rate 200] [--connections 8]

`relay serve` runs with its built-in rules (a missed chat is emailed to the sales inbox) and
SMTP pointing at bench/sink.py --times, which notes time.monotonic() just before each 250
(CLOCK_MONOTONIC, one clock for every process of the machine). Probes are missed chats posted
one at a time: the next is posted only after the sink has accepted the previous one's email,
so each probe is measured alone; the latency of a probe is the sink's 250 minus the moment
the client had read the hook's 2xx.

  idle   only the probes;
  load   the probes while --rate other conversations per second (finished chats an agent
         answered: stored, classified "normal", nothing to send) are posted open-loop over
         --connections keep-alive connections.

Reported: p50, p99 and max per case, and the background rate actually reached.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RELAY, SAMPLE, TOKEN, SmtpSink, free_port, machine, relay_config, server

HOOK = f"/hooks/smartsupp/{TOKEN}"


def body(channel_id: int, *, missed: bool) -> bytes:
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    data["channel"]["id"] = channel_id
    data["channel"]["isMissed"] = missed
    return json.dumps(data, separators=(",", ":")).encode()


class Connection:
    """One keep-alive HTTP/1.1 connection posting to the hook."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, payload: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        self.writer.write(
            f"POST {HOOK} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            await self.writer.wait_closed()


def sink_times(path: Path) -> list[float]:
    """The sink's times so far: only whole lines (the sink may be writing the last one)."""
    if not path.exists():
        return []
    whole = path.read_bytes().rpartition(b"\n")[0]
    return [float(line.split()[1]) for line in whole.splitlines() if line.strip()]


async def background(port: int, rate: float, connections: int, stop: asyncio.Event) -> int:
    """Post ``rate`` normal chats per second, open-loop: each is due at its own time."""
    posted = 0
    channels = iter(range(10_000_000, 20_000_000))
    started = time.monotonic()

    async def one(conn: Connection, offset: int) -> None:
        nonlocal posted
        n = offset
        while not stop.is_set():
            due = started + n / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            status = await conn.post(body(next(channels), missed=False))
            if status != 200:
                raise RuntimeError(f"background conversation answered {status}")
            posted += 1
            n += connections

    conns = [Connection(port) for _ in range(connections)]
    try:
        await asyncio.gather(*(one(c, i) for i, c in enumerate(conns)))
    finally:
        for conn in conns:
            await conn.close()
    return posted


async def probes(port: int, count: int, times_file: Path, first_channel: int) -> list[float]:
    """Post ``count`` missed chats one at a time; the seconds from each 2xx to its 250."""
    conn = Connection(port)
    latencies = []
    try:
        for i in range(count):
            before = len(sink_times(times_file))
            status = await conn.post(body(first_channel + i, missed=True))
            answered = time.monotonic()
            if status != 200:
                raise RuntimeError(f"probe answered {status}")
            deadline = answered + 30
            while len(found := sink_times(times_file)) <= before:
                if time.monotonic() > deadline:
                    raise RuntimeError("a probe's email did not arrive within 30 s")
                await asyncio.sleep(0.0005)
            latencies.append(found[before] - answered)
            await asyncio.sleep(random.uniform(0.005, 0.02))
    finally:
        await conn.close()
    return latencies


async def measure(port: int, args: argparse.Namespace, times_file: Path, load: bool) -> str:
    stop = asyncio.Event()
    task = (
        asyncio.create_task(background(port, args.rate, args.connections, stop)) if load else None
    )
    started = time.monotonic()
    if task is not None:
        await asyncio.sleep(1.0)  # the load runs before the first probe
    first = 1_000_000 if load else 1
    try:
        latencies = await probes(port, args.probes, times_file, first)
    finally:
        stop.set()
    elapsed = time.monotonic() - started
    posted = await task if task is not None else 0
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    name = f"load {args.rate:g}/s" if load else "idle"
    reached = f"  background {posted / elapsed:6.0f} conversations/s" if load else ""
    return (
        f"{name:<12} probes={len(latencies)}  p50 {p50 * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"
        f"  max {latencies[-1] * 1000:7.2f} ms{reached}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--probes", type=int, default=200, help="missed chats per case")
    parser.add_argument("--rate", type=float, default=200, help="background conversations/s")
    parser.add_argument("--connections", type=int, default=8, help="for the background load")
    parser.add_argument("--only", choices=["idle", "load"], action="append")
    args = parser.parse_args()
    print(f"{machine()}; probes={args.probes} rate={args.rate:g}/s")
    with tempfile.TemporaryDirectory(prefix="relay-bench-latency-") as tmp:
        work = Path(tmp)
        for case in args.only or ["idle", "load"]:
            times_file = work / f"{case}.times"
            with SmtpSink(times_file, times=True) as sink:
                port = free_port()
                config = relay_config(
                    work / f"{case}.toml",
                    state_dir=work / f"{case}-state",
                    port=port,
                    rules="",  # the built-in rules: missed and offline chats by email
                    smtp={"host": "127.0.0.1", "port": sink.port},
                )
                command = [RELAY, "serve", "--config", str(config)]
                with server(command, port, work / f"{case}.log"):
                    print(asyncio.run(measure(port, args, times_file, case == "load")), flush=True)


if __name__ == "__main__":
    main()
