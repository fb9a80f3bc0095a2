"""A fast local SMTP sink for the delivery benchmarks: accepts everything, appends each
message's Message-ID to a file, prints "ready <port>" once listening. Stop it with SIGINT.
With --times, each line is "<Message-ID> <time.monotonic() just before the 250>" (the
system-wide CLOCK_MONOTONIC on Linux, comparable across processes: bench/latency.py).

Usage: python bench/sink.py --port N --ids FILE [--times]
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


class Sink:
    def __init__(self, out: Any, *, times: bool = False) -> None:
        self.out = out
        self.times = times

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        head = envelope.content.split(b"\r\n\r\n", 1)[0]
        found = MESSAGE_ID.search(head)
        line = found.group(1) if found else b"-"
        if self.times:
            line += b" %.6f" % time.monotonic()
        self.out.write(line + b"\n")
        self.out.flush()
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ids", required=True)
    parser.add_argument("--times", action="store_true", help="add the time of each 250")
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open(args.ids, "ab") as out:
        controller = Controller(Sink(out, times=args.times), hostname="127.0.0.1", port=args.port)
        controller.start()
        print(f"ready {args.port}", flush=True)
        stop.wait()
        controller.stop()


if __name__ == "__main__":
    main()
