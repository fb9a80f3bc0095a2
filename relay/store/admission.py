"""Offering due deliveries to a per-destination admission check without reading a backlog."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

# Due deliveries read per query while an admission check chooses among them.
DUE_PAGE = 256


class Admission:
    """Offers stored action texts (JSON, as the deliveries table holds them) to ``admit`` and
    remembers the texts it turned away, so that a scan's next query leaves every delivery with
    one of those actions out in SQL. That relies on ``admit`` being monotone within a scan: it
    only counts deliveries up, so an action once turned away (its destination is full) stays
    turned away. A backlog for a full destination then costs one query, not a JSON parse (and
    a Python row) per queued delivery on every claim.

    ``admit`` must not change the action it is given: deliveries with the same action text
    are offered the same parsed dict.

    ``past_refused=False``: the scan ends at the first action turned away instead. Leaving
    that action out still reads every queued delivery it has (in SQL, but all of them): with
    one destination full and a backlog for it, that was a pass over the backlog per claim."""

    def __init__(
        self, admit: Callable[[dict[str, Any]], bool], *, past_refused: bool = True
    ) -> None:
        self._admit = admit
        self.past_refused = past_refused
        self.refused: list[str] = []
        # Each action text read once per scan: the due deliveries share the same few actions.
        self._parsed: dict[str, dict[str, Any]] = {}

    def offer(self, action: str) -> bool:
        parsed = self._parsed.get(action)
        if parsed is None:
            parsed = self._parsed[action] = json.loads(action)
        if self._admit(parsed):
            return True
        self.refused.append(action)
        return False


# One page of due deliveries in claim order after (next_attempt_at, id), without the actions
# turned away, at most ``page`` rows: (id, action text, next_attempt_at) each.
FetchPage = Callable[[float, int, Sequence[str], int], Sequence[Sequence[Any]]]


def scan_due(fetch: FetchPage, limit: int, admission: Admission | None, ids: list[int]) -> None:
    """Append to ``ids`` the due deliveries ``fetch`` reads, page by page in claim order, until
    there are ``limit``: with ``admission``, only those it accepts, and after each action it
    turns away the scan goes on from there without that action; without, every row (one page
    of what is still missing). Both stores' claims read through it."""
    at, last = float("-inf"), 0
    while len(ids) < limit:
        page = limit - len(ids)  # without admission: exactly what is still missing
        if admission is not None:
            # A page is read up to its first refusal (the next query starts there, without
            # that action), so one row more than is missing is all a page can use: a larger
            # one only reads (and turns into Python objects) rows that are never looked at.
            page = min(page + 1, DUE_PAGE)
        rows = fetch(at, last, [] if admission is None else admission.refused, page)
        turned_away = False
        for delivery_id, action, due in rows:
            at, last = float(due), int(delivery_id)
            if admission is not None and not admission.offer(action):
                turned_away = True
                break  # the next page leaves that action out
            ids.append(int(delivery_id))
            if len(ids) >= limit:
                break
        if not turned_away and len(rows) < page:
            break
        if turned_away and admission is not None and not admission.past_refused:
            break
