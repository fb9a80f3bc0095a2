"""[follow_up] settings: escalation targets and the settings that only make sense together."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from relay.leads.settings import FollowUpSettings

ON: dict[str, Any] = {"enabled": True, "public_url": "https://relay.example.com/"}


def test_escalation_targets_are_slack_channels_or_email_addresses() -> None:
    found = FollowUpSettings.model_validate({"escalate_to": "#sales"})
    assert found.escalate_to == ["#sales"]
    mixed = FollowUpSettings.model_validate({"escalate_to": ["#sales", "boss@shop.test"]})
    assert mixed.escalate_to == ["#sales", "boss@shop.test"]
    for bad in ("#", "#sales team", "#sales\n"):
        with pytest.raises(ValidationError, match="is not a Slack channel name"):
            FollowUpSettings.model_validate({"escalate_to": [bad]})


def test_escalation_and_the_digest_need_somewhere_to_go_once_enabled() -> None:
    with pytest.raises(ValidationError, match="escalate_to is empty"):
        FollowUpSettings.model_validate({**ON, "escalate_after_seconds": 3600})
    with pytest.raises(ValidationError, match="digest_to is empty"):
        FollowUpSettings.model_validate({**ON, "digest_at": "08:30"})
    complete = FollowUpSettings.model_validate(
        {
            **ON,
            "escalate_after_seconds": 3600,
            "escalate_to": "#sales",
            "digest_at": "08:30",
            "digest_to": ["boss@shop.test"],
        }
    )
    assert (complete.public_url, complete.digest_at) == ("https://relay.example.com", "08:30")
    # Switched off, an incomplete section is kept as written (nothing reads it).
    off = FollowUpSettings.model_validate({"escalate_after_seconds": 3600, "digest_at": "08:30"})
    assert off.escalate_to == [] and off.digest_to == []
