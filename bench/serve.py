"""Serve one of the benchmark apps (bench/apps.py) with a chosen ASGI server until SIGINT/SIGTERM.

Usage: python bench/serve.py --app bare|relay --server relay|uvicorn-h11|granian --port N
  relay        relay.serving.run_server, exactly what `relay serve` uses
  uvicorn-h11  uvicorn on the plain asyncio loop with the pure-Python h11 parser
  granian      granian (Rust HTTP server), one worker, uvloop
For --app relay the settings come from $RELAY_CONFIG (and $BENCH_WITHOUT, see bench/apps.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--app", choices=["bare", "relay"], required=True)
    parser.add_argument("--server", choices=["relay", "uvicorn-h11", "granian"], default="relay")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    target = "apps:bare" if args.app == "bare" else "apps:relay_app"
    if args.server == "granian":
        from granian import Granian  # noqa: PLC0415 -- optional server
        from granian.constants import Interfaces, Loops  # noqa: PLC0415 -- as above

        Granian(
            target,
            address="127.0.0.1",
            port=args.port,
            interface=Interfaces.ASGI,
            workers=1,
            loop=Loops.uvloop,
            factory=args.app == "relay",
            working_dir=BENCH,
            log_access=False,
        ).serve()
        return
    import apps  # noqa: PLC0415 -- bench/ is on sys.path only now

    app = apps.bare if args.app == "bare" else apps.relay_app()
    if args.server == "relay":
        from relay.serving import run_server  # noqa: PLC0415 -- as above

        run_server(app, host="127.0.0.1", port=args.port, graceful_seconds=5)
        return
    import uvicorn  # noqa: PLC0415 -- as above

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_config=None,
        access_log=False,
        loop="asyncio",
        http="h11",
    )


if __name__ == "__main__":
    main()
