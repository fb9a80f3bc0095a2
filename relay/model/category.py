"""Give every conversation exactly one category.

Precedence, first that holds wins:

1. ``offline``   -- ``channel.isOffline`` is true: a message left through the offline form.
2. ``missed``    -- ``channel.isMissed`` is true: no agent answered the visitor's last message.
3. ``low-rated`` -- ``channel.rating`` is present and ``<= low_rating_threshold`` (default 2).
4. ``normal``    -- everything else.

Offline beats missed because an offline message is by nature unanswered; both beat a rating
because a visitor nobody answered needs a salesperson more than a quality review.
"""

from __future__ import annotations

import enum

from relay.model.conversation import Conversation

DEFAULT_LOW_RATING_THRESHOLD = 2


class Category(enum.StrEnum):
    OFFLINE = "offline"
    MISSED = "missed"
    LOW_RATED = "low-rated"
    NORMAL = "normal"


def classify(
    conversation: Conversation, *, low_rating_threshold: int = DEFAULT_LOW_RATING_THRESHOLD
) -> Category:
    channel = conversation.channel
    if channel.is_offline:
        return Category.OFFLINE
    if channel.is_missed:
        return Category.MISSED
    if channel.rating is not None and channel.rating <= low_rating_threshold:
        return Category.LOW_RATED
    return Category.NORMAL
