"""Offering due deliveries to a per-destination admission check without reading a backlog."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

# Due deliveries read per query while an admission check chooses among them.
DUE_PAGE = 256


class Admission:
    """Offers stored action texts (JSON, as the deliveries table holds them) to ``admit`` and
    remembers the texts it turned away, so that a scan's next query leaves every delivery with
    one of those actions out in SQL. That relies on ``admit`` being monotone within a scan: it
    only counts deliveries up, so an action once turned away (its destination is full) stays
    turned away. A backlog for a full destination then costs one query, not a JSON parse (and
    a Python row) per queued delivery on every claim."""

    def __init__(self, admit: Callable[[dict[str, Any]], bool]) -> None:
        self._admit = admit
        self.refused: list[str] = []

    def offer(self, action: str) -> bool:
        if self._admit(json.loads(action)):
            return True
        self.refused.append(action)
        return False
