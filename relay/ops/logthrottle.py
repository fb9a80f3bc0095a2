"""Aggregated logging of a repeated event: the first one in full, then one summary per interval."""

from __future__ import annotations

import time
from collections.abc import Callable

SUMMARY_INTERVAL_SECONDS = 60.0


class Throttle:
    """Decides which occurrences of one kind of event are logged.

    The first occurrence is logged on its own. Later ones are counted; the first that comes
    ``interval`` seconds or more after the last logged line returns a summary of the count
    (itself included) instead, so a flood costs one line per interval. ``flush`` returns what
    is still counted (at shutdown). Not thread-safe: the event loop's thread uses it.
    """

    def __init__(
        self,
        one: str,
        many: str,
        interval: float = SUMMARY_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.one = one  # "hook called with a wrong token"
        self.many = many  # "hook calls with a wrong token"
        self.interval = interval
        self.clock = clock
        self._since: float | None = None  # when the last line was logged
        self._count = 0
        self._latest = ""

    def occurred(self, detail: str) -> str | None:
        """Record one occurrence (``detail``: e.g. "from 192.0.2.7"); the line to log now, or
        None if it is only counted."""
        now = self.clock()
        if self._since is None or (self._count == 0 and now - self._since >= self.interval):
            self._since = now
            return f"{self.one} {detail} (more are counted and logged once per {self.interval:g} s)"
        self._count += 1
        self._latest = detail
        if now - self._since < self.interval:
            return None
        return self._summary(now)

    def flush(self) -> str | None:
        """The summary of what was counted but not yet logged, or None."""
        return self._summary(self.clock()) if self._count else None

    def _summary(self, now: float) -> str:
        assert self._since is not None
        line = (
            f"{self._count} {self.many} in the last {now - self._since:.0f} s,"
            f" the latest {self._latest}"
        )
        self._since, self._count, self._latest = now, 0, ""
        return line
