"""The ``[follow_up]`` settings: claim links, escalation and the daily digest."""

from __future__ import annotations

from typing import Annotated

from pydantic import (
    BeforeValidator,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from relay.config.addresses import Addresses, check_address
from relay.config.section import Section
from relay.model.urls import http_url
from relay.routing.rules import TimeWindow, _minute


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _target(text: str) -> str:
    """An escalation target: a Slack channel ("#sales") or one email address."""
    if text.startswith("#"):
        if len(text) < 2 or any(c.isspace() for c in text):
            raise ValueError(f"{text!r} is not a Slack channel name")
        return text
    return check_address(text)


class FollowUpSettings(Section):
    enabled: bool = False
    # The relay's external base URL, e.g. "https://relay.example.com": links point there.
    public_url: str | None = None
    link_lifetime_days: float = Field(default=7.0, gt=0, le=365)
    # None: generated once into <state_dir>/link_key (0600); or the credential
    # follow_up__link_key in the credentials directory.
    link_key: SecretStr | None = None
    # A lead still open after this much business time is escalated (None: never), and again
    # after escalate_again_after_seconds more (None: once).
    escalate_after_seconds: float | None = Field(default=None, gt=0)
    escalate_again_after_seconds: float | None = Field(default=None, gt=0)
    # Email addresses and/or Slack channels ("#sales").
    escalate_to: Annotated[list[str], BeforeValidator(_one_or_many)] = []
    # When business time runs (the rules' time window); None: around the clock.
    business_hours: TimeWindow | None = None
    # Local time (HH:MM, in business_hours' time zone, else render.timezone) of the digest.
    digest_at: str | None = None
    digest_to: Addresses = []

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value).rstrip("/")

    @field_validator("escalate_to")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        return [_target(item) for item in value]

    @field_validator("digest_at")
    @classmethod
    def _time(cls, value: str | None) -> str | None:
        if value is not None and _minute(value, value) >= 24 * 60:
            raise ValueError(f"digest_at {value!r} must be a time of day before 24:00")
        return value

    @model_validator(mode="after")
    def _complete(self) -> FollowUpSettings:
        if not self.enabled:
            return self
        if self.public_url is None:
            raise ValueError("public_url is required when follow-up is enabled (links use it)")
        if self.escalate_after_seconds is not None and not self.escalate_to:
            raise ValueError("escalate_after_seconds is set but escalate_to is empty")
        if self.digest_at is not None and not self.digest_to:
            raise ValueError("digest_at is set but digest_to is empty")
        return self

    @property
    def lifetime_seconds(self) -> float:
        return self.link_lifetime_days * 86400

    @property
    def digest_minute(self) -> int | None:
        return None if self.digest_at is None else _minute(self.digest_at, self.digest_at)
