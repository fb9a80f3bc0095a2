"""LISTEN for new due deliveries on a connection of its own, so an idle worker wakes at once."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable

import psycopg

from relay.store.pgconnect import connect
from relay.store.postgres.queries import CHANNEL

log = logging.getLogger(__name__)

# How often the listening thread looks whether it should stop (it waits for notifications
# this long at a time), and how long it waits before connecting again after losing the server.
POLL_SECONDS = 0.5
RECONNECT_SECONDS = 1.0


class Listener:
    """A thread listening on ``queries.CHANNEL``: ``notify()`` is called for every notification
    (intake, retry_now and replay send one at commit), and once after each (re)connection, as
    notifications sent while it was not listening are lost. ``notify`` must be thread-safe."""

    def __init__(self, conninfo: str, where: str, notify: Callable[[], object]) -> None:
        self._conninfo = conninfo
        self._where = where
        self._notify = notify
        self._stop = threading.Event()
        # The payload that ends this listener's wait at once (see ``stop``); any "stop:" payload
        # is another relay's listener stopping, not work.
        self.stop_payload = f"stop:{uuid.uuid4().hex}"
        self.listening = threading.Event()  # set while LISTEN is in effect
        self._thread = threading.Thread(target=self._run, name="relay-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, interrupt: Callable[[str], object] | None = None) -> None:
        """Stop and wait for the thread; ``interrupt(payload)`` sends ``stop_payload`` on the
        channel, ending the wait for notifications at once rather than within POLL_SECONDS."""
        self._stop.set()
        if interrupt is not None and self._thread.is_alive():
            with contextlib.suppress(psycopg.Error):  # else the wait ends within POLL_SECONDS
                interrupt(self.stop_payload)
        self._thread.join()

    def _run(self) -> None:
        failed = False
        while not self._stop.is_set():
            try:
                with connect(self._conninfo) as conn:
                    conn.autocommit = True
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    if failed:
                        log.info("listening on %s again", self._where)
                    failed = False
                    self._notify()
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=POLL_SECONDS):
                            if note.payload == self.stop_payload:
                                break
                            if not note.payload.startswith("stop:"):
                                self._notify()
            except psycopg.Error as exc:
                self.listening.clear()
                if not failed:
                    log.warning(
                        "not listening on %s (%s): idle workers poll until it is back",
                        self._where,
                        exc,
                    )
                failed = True
                self._stop.wait(RECONNECT_SECONDS)
        self.listening.clear()
