"""Helpers shared by the bench scripts: server subprocesses, free ports, RSS, sample bodies."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
SAMPLE = ROOT / "tests" / "samples" / "missed-chat.json"
TOKEN = "bench-token"  # noqa: S105 -- a dummy hook token for a loopback benchmark
PYTHON = sys.executable
RELAY = str(Path(sys.executable).with_name("relay"))


def unit_python_environment(cache: Path) -> dict[str, str]:
    """The ``Environment=PYTHON*`` variables systemd/relay.service runs the relay with, its
    cache directory (``%C``) at ``cache``, and bytecode written (PYTHONDONTWRITEBYTECODE unset,
    as under systemd)."""
    env = {"PYTHONDONTWRITEBYTECODE": ""}
    for line in (ROOT / "systemd" / "relay.service").read_text(encoding="utf-8").splitlines():
        if line.startswith("Environment=PYTHON"):
            name, value = line.removeprefix("Environment=").split("=", 1)
            env[name] = value.replace("%C", str(cache))
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def sample_body(
    channel_id: int, account_id: int | None = None, visitor_id: int | None = None
) -> bytes:
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    data["channel"]["id"] = channel_id
    if account_id is not None:
        data["accountId"] = account_id
    if visitor_id is not None:
        data["visitor"]["id"] = visitor_id
    return json.dumps(data, separators=(",", ":")).encode()


def body_template(path: Path) -> Path:
    """Write the sample body with CHANNEL_ID where the channel id goes (for wrk's Lua)."""
    marker = 987654321987
    path.write_bytes(sample_body(marker).replace(str(marker).encode(), b"CHANNEL_ID"))
    return path


def relay_config(
    path: Path,
    *,
    state_dir: Path,
    port: int,
    rules: str,
    smtp: dict[str, Any] | None = None,
    delivery: dict[str, Any] | None = None,
    storage: dict[str, Any] | None = None,
) -> Path:
    """A settings TOML for a benchmark relay (``storage``: more [storage] keys, e.g. url)."""

    def section(name: str, values: dict[str, Any]) -> str:
        lines = [f"[{name}]"] + [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        return "\n".join(lines) + "\n"

    top_level = not rules.lstrip().startswith("[[")
    text = rules if top_level else ""  # TOML: top-level keys must precede the first table
    text += section("server", {"host": "127.0.0.1", "port": port, "hook_token": TOKEN})
    text += section("storage", {"state_dir": str(state_dir), **(storage or {})})
    if smtp:
        text += section("smtp", smtp)
    if delivery:
        text += section("delivery", delivery)
    path.write_text(text + ("" if top_level else rules), encoding="utf-8")
    return path


EMAIL_EVERYTHING = """
[[rules]]
name = "everything-by-email"
actions = [{ type = "email", to = ["team@example.test"] }]
"""
NO_RULES = "rules = []\n"


def wait_http(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not answer within {timeout} s")


@contextlib.contextmanager
def server(
    command: Sequence[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server subprocess (output to ``log``), wait for /healthz, stop it on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(command),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            cwd=ROOT,
        )
        try:
            wait_http(port, proc)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def rss_kib(pid: int) -> int:
    """VmRSS of a process in KiB, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def thread_cpu_ticks(pids: Sequence[int]) -> dict[tuple[int, int], int]:
    """User + system CPU ticks of every thread of ``pids`` so far, by (pid, thread id)."""
    found = {}
    for pid in pids:
        for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
            with contextlib.suppress(OSError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                found[(pid, int(stat.parent.name))] = int(fields[11]) + int(fields[12])
    return found


def system_cpu_ticks() -> list[int]:
    """The machine's CPU ticks so far by state: user nice system idle iowait irq softirq steal."""
    with open("/proc/stat", encoding="ascii") as f:
        return [int(x) for x in f.readline().split()[1:9]]


class CpuWindow:
    """CPU time per unit of work of the threads of some processes over a timed window, and
    the machine's share of each CPU state: ``start()``, then ``report(count, labels)``."""

    STATES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")

    def __init__(self, pids: dict[int, str]) -> None:
        self.pids = pids  # pid -> what it is ("relay", "sink"); children counted as "<name> child"
        self._threads: dict[tuple[int, int], int] = {}
        self._system: list[int] = []

    def _all(self) -> dict[int, str]:
        found = {}
        for pid, name in self.pids.items():
            for index, member in enumerate(process_tree(pid)):
                found[member] = name if index == 0 else f"{name} child {member}"
        return found

    def start(self) -> None:
        self._threads = thread_cpu_ticks(list(self._all()))
        self._system = system_cpu_ticks()

    def report(self, count: int, thread_names: dict[int, str]) -> list[str]:
        """One line per thread that used CPU (µs per unit of work, busiest first), then the
        machine's states; ``thread_names``: names of thread ids known to the caller."""
        ticks_us = 1e6 / os.sysconf("SC_CLK_TCK")
        owners = self._all()
        after = thread_cpu_ticks(list(owners))
        used = sorted(
            ((ticks - self._threads.get(key, 0), key) for key, ticks in after.items()),
            reverse=True,
        )
        lines = []
        total = 0.0
        for ticks, (pid, tid) in used:
            if ticks <= 0:
                continue
            total += ticks * ticks_us / count
            name = thread_names.get(tid, "main thread" if tid == pid else f"thread {tid}")
            lines.append(f"{ticks * ticks_us / count:7.0f} µs  {owners[pid]}: {name}")
        lines.append(f"{total:7.0f} µs  in all")
        system = [b - a for a, b in zip(self._system, system_cpu_ticks(), strict=True)]
        share = " ".join(
            f"{state} {100 * t / max(sum(system), 1):.0f}%"
            for state, t in zip(self.STATES, system, strict=True)
        )
        lines.append(f"machine: {share}")
        return lines


def need_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is not installed. On Debian/Ubuntu: apt-get install -y wrk")
    return found


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def machine() -> str:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}"


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc/<pid>/task/*/children)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            for child in (task / "children").read_text().split():
                found += process_tree(int(child))
    return found


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(p)
    return total


class SmtpSink:
    """bench/sink.py in a subprocess; ``ids()`` reads the Message-IDs it has accepted."""

    def __init__(self, ids_file: Path, port: int | None = None, *, times: bool = False) -> None:
        self.port = port or free_port()
        self.ids_file = ids_file
        self.times = times
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, str(BENCH / "sink.py"), "--port", str(self.port), "--ids", str(self.ids_file)]
            + (["--times"] if self.times else []),
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if not line.startswith("ready"):
            raise RuntimeError(f"SMTP sink did not start: {line!r}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)

    def ids(self) -> list[bytes]:
        if not self.ids_file.exists():
            return []
        return self.ids_file.read_bytes().splitlines()

    def count(self) -> int:
        if not self.ids_file.exists():
            return 0
        with self.ids_file.open("rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 16), b""))

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def queue_conversations(
    settings: Any, count: int, first_channel: int = 1, *, same_visitor: bool = True
) -> int:
    """Store ``count`` new conversations with their planned deliveries exactly as the hook's
    request path prepares them (relay.intake.http.prepare), without the HTTP server. Returns the
    number of deliveries planned. ``same_visitor``: all from the sample's visitor (each email
    then lists that visitor's earlier chats), else each from a visitor of its own."""
    from relay.app import build_snapshot, database_path  # noqa: PLC0415 -- as above
    from relay.intake.http import prepare  # noqa: PLC0415 -- keep `common` importable without the relay
    from relay.runtime import Runtime  # noqa: PLC0415 -- as above
    from relay.store import Intake, Store  # noqa: PLC0415 -- as above

    runtime = Runtime(snapshot=build_snapshot(settings))
    store = Store(database_path(settings))
    planned_total = 0
    batch: list[Intake] = []
    for n in range(first_channel, first_channel + count):
        intake = prepare(runtime, sample_body(n, visitor_id=None if same_visitor else n))
        planned_total += len(intake.planned)
        batch.append(intake)
        if len(batch) == 500:
            store.accept_many(batch)
            batch = []
    if batch:
        store.accept_many(batch)
    store.close()
    return planned_total


async def post_many(
    port: int,
    path: str,
    count: int,
    *,
    concurrency: int = 32,
    first_channel: int = 1,
    on_progress: Any = None,
) -> dict[int, int]:
    """POST ``count`` sample bodies (channel ids first_channel...) over ``concurrency``
    keep-alive HTTP/1.1 connections; returns how many answers had each status code.
    ``on_progress(done)`` is called after every 1,000 answers."""
    import asyncio  # noqa: PLC0415 -- only the async helpers need it

    template = sample_body(987654321987)
    head, tail = template.split(b"987654321987", 1)
    statuses: dict[int, int] = {}
    counter = iter(range(first_channel, first_channel + count))
    done = 0

    async def connection() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for channel in counter:
            body = head + str(channel).encode() + tail
            writer.write(
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
            done += 1
            if on_progress is not None and done % 1000 == 0:
                on_progress(done)
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(concurrency)))
    return statuses
