"""A fast local SMTP sink for the delivery benchmarks: accepts everything, appends each
message's Message-ID to a file, prints "ready <port>" once listening. Stop it with SIGINT.

Usage: python bench/sink.py --port N --ids FILE
"""

from __future__ import annotations

import argparse
import re
import signal
import threading
from typing import Any

from aiosmtpd.controller import Controller

MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


class Sink:
    def __init__(self, out: Any) -> None:
        self.out = out

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        head = envelope.content.split(b"\r\n\r\n", 1)[0]
        found = MESSAGE_ID.search(head)
        self.out.write((found.group(1) if found else b"-") + b"\n")
        self.out.flush()
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ids", required=True)
    args = parser.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open(args.ids, "ab") as out:
        controller = Controller(Sink(out), hostname="127.0.0.1", port=args.port)
        controller.start()
        print(f"ready {args.port}", flush=True)
        stop.wait()
        controller.stop()


if __name__ == "__main__":
    main()
