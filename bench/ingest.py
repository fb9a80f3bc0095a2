"""Ingest: requests/s and latency of the relay's hook against a bare Litestar handler.

Usage: .venv/bin/python bench/ingest.py [--connections 32] [--duration 10] [--repeat 5]
           [--deliveries outbox|none] [--server relay|uvicorn-h11|granian]

Both apps run as subprocesses on 127.0.0.1 under the same ASGI server, one after the other,
alternating which goes first; wrk (apt-get install -y wrk) posts the sample body with a new
channel.id on every request (bench/ingest.lua), so every request is a new conversation.

relay: `relay serve` with a hook token, the full path (token check, msgspec parse and
  validation, classification, routing, a durable group commit with synchronous=FULL, the
  deliveries planned in the same transaction) and its usual INFO log line per request.
  --deliveries outbox (default): one rule sends every conversation by email; no SMTP host is
  configured, so the worker runs during the measurement and renders each email into
  <state_dir>/outbox/ - the whole relay, competing for the same CPU.
  --deliveries none: `rules = []`, nothing is planned; intake only.
bare: bench/apps.py `bare`, a Litestar handler that reads the body and answers 200 with JSON.

--without store|logs|store,logs adds a relay with those parts taken out (bench/apps.py), to
show where the time goes; such a relay is not durable and is no result in itself.

Each run is preceded by a 1 s warm-up. Reported: median over --repeat runs of requests/s,
p50 and p99 latency, and relay/bare ratios, plus CPU seconds used by the server and wrk.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH,
    EMAIL_EVERYTHING,
    NO_RULES,
    PYTHON,
    RELAY,
    TOKEN,
    body_template,
    free_port,
    machine,
    median,
    need_wrk,
    relay_config,
    server,
    tree_cpu_seconds,
)


@dataclass(frozen=True)
class Run:
    app: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    server_cpu: float
    wrk_cpu: float
    stored: int | None
    sent: int | None = None  # deliveries sent (to the outbox) by the end, shutdown included


def wrk(
    port: int, body: Path, connections: int, threads: int, seconds: float, *, offset: str = "0"
) -> tuple[dict[str, float], float]:
    """One wrk run; ``offset`` is added to every posted channel id (bench/ingest.lua)."""
    command = [
        need_wrk(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(seconds)}s",
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "ingest.lua"),
        f"http://127.0.0.1:{port}",
        "--",
        f"/hooks/smartsupp/{TOKEN}",
        str(body),
        offset,
    ]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed:\n{output}")
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT ")), usage.ru_utime + usage.ru_stime


def profiler(pid: int, seconds: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy (bash .ci/install --bench) sampling ``pid`` into a flame graph SVG, or into
    py-spy's raw collapsed stacks when ``out`` ends in .txt."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    command = [spy, "record", "--threads", "--pid", str(pid), "-d", str(seconds), "-o", str(out)]
    command += ["-f", "raw"] if out.suffix == ".txt" else []
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(
    app: str, args: argparse.Namespace, work: Path, index: int, profile: Path | None = None
) -> Run:
    port = free_port()
    state = work / f"state-{app}-{index}"
    env: dict[str, str] = {}
    if app != "bare":
        rules = EMAIL_EVERYTHING if args.deliveries == "outbox" else NO_RULES
        config = relay_config(work / f"relay-{index}.toml", state_dir=state, port=port, rules=rules)
        env["RELAY_CONFIG"] = str(config)
    if app == "relay" and args.server == "relay":
        command = [RELAY, "serve", "--config", str(config)]
    else:
        kind = "bare" if app == "bare" else "relay"
        command = [PYTHON, str(BENCH / "serve.py"), "--app", kind, "--server", args.server]
        command += ["--port", str(port)]
        if app.startswith("relay-without-"):
            env["BENCH_WITHOUT"] = app.removeprefix("relay-without-")
    body = work / "body.json"
    with server(command, port, work / f"{app}-{index}.log", env) as proc:
        wrk(port, body, args.connections, args.threads, 1)
        cpu_before = tree_cpu_seconds(proc.pid)
        spy = profiler(proc.pid, args.duration, profile) if profile else None
        result, wrk_cpu = wrk(port, body, args.connections, args.threads, args.duration)
        server_cpu = tree_cpu_seconds(proc.pid) - cpu_before
        if spy is not None:
            spy.wait()
    stored = sent = None
    if app == "relay":
        with sqlite3.connect(state / "relay.db") as db:
            (stored,) = db.execute("SELECT COUNT(*) FROM conversations").fetchone()
            (sent,) = db.execute("SELECT COUNT(*) FROM deliveries WHERE status = 'sent'").fetchone()
    errors = sum(int(result[k]) for k in ("connect", "read", "write", "status", "timeout"))
    seconds = result["duration_us"] / 1e6
    return Run(
        app=app,
        rps=result["requests"] / seconds,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        requests=int(result["requests"]),
        errors=errors,
        server_cpu=server_cpu,
        wrk_cpu=wrk_cpu,
        stored=stored,
        sent=sent,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--deliveries", choices=["outbox", "none"], default="outbox")
    parser.add_argument("--server", choices=["relay", "uvicorn-h11", "granian"], default="relay")
    parser.add_argument(
        "--without",
        action="append",
        default=[],
        choices=["store", "logs", "store,logs"],
        help="also run a relay with these parts taken out (cost breakdown only; see apps.py)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="after the measured runs, one more relay run under py-spy: flame graph SVG here",
    )
    args = parser.parse_args()
    need_wrk()
    print(
        f"{machine()}; server={args.server} deliveries={args.deliveries} "
        f"connections={args.connections} wrk_threads={args.threads} duration={args.duration:g}s "
        f"repeat={args.repeat}"
    )
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="relay-bench-ingest-") as tmp:
        work = Path(tmp)
        body_template(work / "body.json")
        for index in range(args.repeat):
            apps = ["bare", "relay", *(f"relay-without-{w}" for w in args.without)]
            shift = index % len(apps)
            order = apps[shift:] + apps[:shift]
            for app in order:
                run = measure(app, args, work, index)
                runs.append(run)
                stored = "" if run.stored is None else f" stored={run.stored}"
                stored += "" if not run.sent else f" sent={run.sent}"
                print(
                    f"  run {index + 1} {app:<5} {run.rps:6.0f} req/s  p50 {run.p50_ms:6.2f} ms"
                    f"  p99 {run.p99_ms:6.2f} ms  requests={run.requests} errors={run.errors}"
                    f"  cpu server={run.server_cpu:.1f}s wrk={run.wrk_cpu:.1f}s{stored}",
                    flush=True,
                )
                if run.stored is not None and run.stored < run.requests:
                    sys.exit(f"LOST: {run.requests} answered but only {run.stored} stored")
    if args.profile:
        with tempfile.TemporaryDirectory(prefix="relay-bench-profile-") as tmp:
            body_template(Path(tmp) / "body.json")
            measure("relay", args, Path(tmp), 0, profile=args.profile.resolve())
        print(f"profile of one more relay run (not counted above): {args.profile}")
    summary = {}
    for app in dict.fromkeys(r.app for r in runs):
        mine = [r for r in runs if r.app == app]
        summary[app] = (
            median([r.rps for r in mine]),
            median([r.p50_ms for r in mine]),
            median([r.p99_ms for r in mine]),
        )
        rps, p50, p99 = summary[app]
        print(f"{app:<5} median {rps:6.0f} req/s  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    for app in summary:
        if app == "bare":
            continue
        ratio = summary[app][0] / summary["bare"][0]
        p99_ratio = summary[app][2] / summary["bare"][2]
        print(
            f"{app}/bare: requests/s ratio {ratio:.2f} (target >= 0.5, 0.4 with the worker"
            f" writing the outbox), p99 ratio {p99_ratio:.2f} (target <= 3.0)"
        )
    if any(r.errors for r in runs):
        print("WARNING: some runs had errors (non-2xx, timeouts or socket errors)")


if __name__ == "__main__":
    main()
