"""The due-delivery scan behind both stores' claims: which rows it takes, and how many it reads."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from relay.store.admission import Admission, scan_due


def queue(*destinations: str) -> list[tuple[int, str, float]]:
    """Due rows in claim order: (id, action text, due time), one per destination named."""
    return [
        (n, json.dumps({"type": "email", "destination": d}), float(n))
        for n, d in enumerate(destinations, start=1)
    ]


class Rows:
    """Pages of ``rows`` after a claim-order position without the refused actions, as the
    stores' queries read them; records the page sizes asked for."""

    def __init__(self, rows: list[tuple[int, str, float]]) -> None:
        self.rows = rows
        self.pages: list[int] = []

    def __call__(self, at: float, last: int, refused: Sequence[str], page: int) -> list[Any]:
        self.pages.append(page)
        after = [r for r in self.rows if (r[2], r[0]) > (at, last) and r[1] not in refused]
        return after[:page]


def test_a_claim_reads_one_row_more_than_it_still_needs_per_page() -> None:
    """A page is only read up to its first refusal, so no page asks for more than that."""
    rows = Rows(queue(*["a"] * 300))
    ids: list[int] = []
    scan_due(rows, 3, Admission(lambda action: True), ids)
    assert ids == [1, 2, 3]
    assert rows.pages == [4]


def test_deliveries_past_a_full_destination_are_found_and_the_order_is_kept() -> None:
    rows = Rows(queue("full", "b", "full", "c", "full", "d", "e"))
    ids: list[int] = []
    admission = Admission(lambda action: action["destination"] != "full")
    scan_due(rows, 3, admission, ids)
    assert ids == [2, 4, 6]
    assert all(page <= 4 for page in rows.pages)
    assert len(admission.refused) == 1


def test_without_looking_past_a_refusal_the_scan_ends_there() -> None:
    rows = Rows(queue("b", "full", "c"))
    ids: list[int] = []
    admission = Admission(lambda action: action["destination"] != "full", past_refused=False)
    scan_due(rows, 3, admission, ids)
    assert ids == [1]


def test_every_delivery_is_offered_though_each_action_text_is_parsed_once_per_scan() -> None:
    """admit still counts each delivery (the destination caps rely on it), with the action
    parsed as before."""
    seen: list[dict[str, Any]] = []

    def admit(action: dict[str, Any]) -> bool:
        seen.append(action)
        return True

    rows = Rows(queue("a", "a", "b", "a"))
    ids: list[int] = []
    scan_due(rows, 4, Admission(admit), ids)
    assert ids == [1, 2, 3, 4]
    assert [action["destination"] for action in seen] == ["a", "a", "b", "a"]
    assert seen == [json.loads(text) for _, text, _ in queue("a", "a", "b", "a")]
