"""Classification precedence: offline > missed > low-rated > normal."""

from __future__ import annotations

import pytest

from relay.intake.payload import parse
from relay.model.category import Category, classify


def conv(**channel: object) -> bytes:
    import json  # noqa: PLC0415 -- tiny helper

    return json.dumps({"accountId": 1, "channel": {"id": 1, **channel}}).encode()


@pytest.mark.parametrize(
    ("channel", "expected"),
    [
        ({}, Category.NORMAL),
        ({"isOffline": True, "isMissed": True, "rating": 1}, Category.OFFLINE),
        ({"isMissed": True, "rating": 1}, Category.MISSED),
        ({"rating": 0}, Category.LOW_RATED),  # 0 is a rating, at or below any threshold >= 0
        ({"rating": 1}, Category.LOW_RATED),
        ({"rating": 2}, Category.LOW_RATED),
        ({"rating": 3}, Category.NORMAL),
        ({"rating": None}, Category.NORMAL),
        ({"isOffline": False, "isMissed": False, "rating": 5}, Category.NORMAL),
    ],
)
def test_precedence(channel: dict[str, object], expected: Category) -> None:
    assert classify(parse(conv(**channel))) is expected


def test_threshold_is_configurable() -> None:
    assert classify(parse(conv(rating=3)), low_rating_threshold=3) is Category.LOW_RATED
    assert classify(parse(conv(rating=2)), low_rating_threshold=1) is Category.NORMAL


def test_threshold_0_makes_only_a_rating_of_0_low() -> None:
    assert classify(parse(conv(rating=0)), low_rating_threshold=0) is Category.LOW_RATED
    assert classify(parse(conv(rating=1)), low_rating_threshold=0) is Category.NORMAL
    assert classify(parse(conv(rating=None)), low_rating_threshold=0) is Category.NORMAL
