"""Counters the relay keeps about itself (exported at /metrics)."""

from __future__ import annotations

from collections import Counter


class Metrics:
    def __init__(self) -> None:
        self.conversations: Counter[tuple[str, bool]] = Counter()
        self.rejections: Counter[str] = Counter()
        self.deliveries: Counter[tuple[str, str]] = Counter()

    def received(self, category: str, *, duplicate: bool) -> None:
        self.conversations[(category, duplicate)] += 1

    def rejected(self, reason: str) -> None:
        self.rejections[reason] += 1

    def delivered(self, channel: str, outcome: str) -> None:
        self.deliveries[(channel, outcome)] += 1
