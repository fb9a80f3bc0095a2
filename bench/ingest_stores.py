"""Ingest by store: 1 relay on SQLite against 1 and 2 relays sharing one PostgreSQL database.

Usage: .venv/bin/python bench/ingest_stores.py [--connections 32] [--duration 10] [--repeat 3]
           [--deliveries outbox|none] [--postgres-url URL]

Each case runs `relay serve` processes on 127.0.0.1 from empty stores and posts new
conversations with wrk (bench/ingest.lua) for --duration seconds after a 1 s warm-up:

  sqlite-1      one relay, [storage] on SQLite in its state directory (the default);
  postgresql-1  one relay, [storage] url = a fresh PostgreSQL database;
  postgresql-2  two relays (own state directories) on one fresh database, each posted to by
                its own wrk with half of the connections (what a load balancer would do).

PostgreSQL: --postgres-url (a maintenance database; a fresh database is created per run), or
else a throwaway server started from the machine's binaries (tests/support/postgres.py).
Cases alternate their order between repetitions; reported: medians of requests/s (summed
over the relays of a case), p50 and p99 (the worse relay's), the ratios to sqlite-1, and
the CPU seconds of the relays and of PostgreSQL. After each run the store is checked to hold
at least as many conversations as were answered.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import (
    EMAIL_EVERYTHING,
    NO_RULES,
    RELAY,
    body_template,
    free_port,
    machine,
    median,
    need_wrk,
    relay_config,
    server,
    tree_cpu_seconds,
)
from ingest import wrk

CASES = ("sqlite-1", "postgresql-1", "postgresql-2")
OFFSET = 100_000_000_000  # channel ids of the second relay's wrk start here


@dataclass(frozen=True)
class Run:
    case: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    relay_cpu: float
    postgres_cpu: float
    stored: int


class Postgres:
    """Fresh databases on a given server, or on a throwaway one."""

    def __init__(self, url: str | None, stack: contextlib.ExitStack) -> None:
        from tests.support.postgres import PostgresServer, postgres_server  # noqa: PLC0415

        self.server: PostgresServer = (
            PostgresServer(url) if url else stack.enter_context(postgres_server())
        )

    def fresh(self) -> str:
        return self.server.fresh_database()

    def cpu_seconds(self) -> float:
        """CPU seconds of the server's processes so far (0 for a server elsewhere)."""
        if self.server.data_dir is None:
            return 0.0
        pid_file = self.server.data_dir / "postmaster.pid"
        return tree_cpu_seconds(int(pid_file.read_text().split()[0]))


def stored(case: str, state: Path, url: str | None) -> int:
    if url is None:
        import sqlite3  # noqa: PLC0415

        with contextlib.closing(sqlite3.connect(state / "relay.db")) as db:
            return int(db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0])
    import psycopg  # noqa: PLC0415

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT COUNT(*) FROM conversations").fetchone()
    assert row is not None, case
    return int(row[0])


@contextlib.contextmanager
def relays(
    case: str, work: Path, index: int, url: str | None, rules: str
) -> Iterator[list[tuple[int, int]]]:
    """Start the case's relays; yields (port, pid) of each."""
    count = int(case.rsplit("-", 1)[1])
    with contextlib.ExitStack() as stack:
        started = []
        for n in range(count):
            port = free_port()
            state = work / f"state-{case}-{index}-{n}"
            config = relay_config(
                work / f"relay-{case}-{index}-{n}.toml",
                state_dir=state,
                port=port,
                rules=rules,
                storage={"url": url} if url else None,
            )
            log = work / f"{case}-{index}-{n}.log"
            proc = stack.enter_context(server([RELAY, "serve", "--config", str(config)], port, log))
            started.append((port, proc.pid))
        yield started


def measure(
    case: str, args: argparse.Namespace, work: Path, index: int, postgres: Postgres | None
) -> Run:
    url = None if postgres is None else postgres.fresh()
    rules = EMAIL_EVERYTHING if args.deliveries == "outbox" else NO_RULES
    body = work / "body.json"
    with relays(case, work, index, url, rules) as started:
        share = max(args.connections // len(started), 1)

        def load(seconds: float) -> list[dict[str, float]]:
            with ThreadPoolExecutor(len(started)) as pool:
                futures = [
                    pool.submit(wrk, port, body, share, 1, seconds, offset=str(n * OFFSET))
                    for n, (port, _) in enumerate(started)
                ]
                return [f.result()[0] for f in futures]

        load(1)
        cpu_before = sum(tree_cpu_seconds(pid) for _, pid in started)
        pg_before = 0.0 if postgres is None else postgres.cpu_seconds()
        results = load(args.duration)
        relay_cpu = sum(tree_cpu_seconds(pid) for _, pid in started) - cpu_before
        postgres_cpu = 0.0 if postgres is None else postgres.cpu_seconds() - pg_before
    requests = sum(int(r["requests"]) for r in results)
    seconds = max(r["duration_us"] for r in results) / 1e6
    errors = sum(int(r[k]) for r in results for k in ("connect", "read", "write", "status"))
    errors += sum(int(r["timeout"]) for r in results)
    return Run(
        case=case,
        rps=requests / seconds,
        p50_ms=max(r["p50_us"] for r in results) / 1000,
        p99_ms=max(r["p99_us"] for r in results) / 1000,
        requests=requests,
        errors=errors,
        relay_cpu=relay_cpu,
        postgres_cpu=postgres_cpu,
        stored=stored(case, work / f"state-{case}-{index}-0", url),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--deliveries", choices=["outbox", "none"], default="outbox")
    parser.add_argument("--postgres-url", default=None, help="a server to use (superuser)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    args = parser.parse_args()
    need_wrk()
    cases = [c for c in args.cases.split(",") if c]
    print(
        f"{machine()}; deliveries={args.deliveries} connections={args.connections} "
        f"duration={args.duration:g}s repeat={args.repeat}"
    )
    runs: list[Run] = []
    with (
        tempfile.TemporaryDirectory(prefix="relay-bench-stores-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        body_template(work / "body.json")
        needs_pg = any(c.startswith("postgresql") for c in cases)
        postgres = Postgres(args.postgres_url, stack) if needs_pg else None
        for index in range(args.repeat):
            shift = index % len(cases)
            for case in cases[shift:] + cases[:shift]:
                run = measure(
                    case, args, work, index, None if case.startswith("sqlite") else postgres
                )
                runs.append(run)
                print(
                    f"  run {index + 1} {case:<13} {run.rps:6.0f} req/s  p50 {run.p50_ms:6.2f} ms"
                    f"  p99 {run.p99_ms:6.2f} ms  requests={run.requests} errors={run.errors}"
                    f"  cpu relays={run.relay_cpu:.1f}s postgres={run.postgres_cpu:.1f}s"
                    f" stored={run.stored}",
                    flush=True,
                )
                if run.stored < run.requests - run.errors:
                    sys.exit(f"LOST: {run.requests} answered but only {run.stored} stored")
    summary = {}
    for case in cases:
        mine = [r for r in runs if r.case == case]
        summary[case] = (
            median([r.rps for r in mine]),
            median([r.p50_ms for r in mine]),
            median([r.p99_ms for r in mine]),
        )
        rps, p50, p99 = summary[case]
        print(f"{case:<13} median {rps:6.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    if "sqlite-1" in summary:
        base = summary["sqlite-1"]
        for case in cases:
            if case != "sqlite-1":
                print(
                    f"{case}/sqlite-1: requests/s ratio {summary[case][0] / base[0]:.2f},"
                    f" p99 ratio {summary[case][2] / base[2]:.2f}"
                )
    if any(r.errors for r in runs):
        print("WARNING: some runs had errors (non-2xx, timeouts or socket errors)")


if __name__ == "__main__":
    main()
