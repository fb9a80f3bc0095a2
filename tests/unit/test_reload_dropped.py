"""What a reload would take away from a running relay (``relay.reload.dropped``): each loss
is named, and a reload that keeps everything names none."""

from __future__ import annotations

from typing import Any

from relay.config.settings import Settings
from relay.reload import dropped, restart_only_changes


def settings(**sections: Any) -> Settings:
    return Settings(storage={"state_dir": "/var/lib/relay"}, **sections)


def test_a_reload_that_keeps_everything_drops_nothing() -> None:
    old = settings(
        slack={"token": "xoxb-1"},
        routing={"fallback": [{"type": "archive", "path": "chats.jsonl"}]},
    )
    assert dropped(old, old) == []


def test_removing_slack_credentials_is_named() -> None:
    old = settings(slack={"webhook_url": "https://hooks.slack.test/T/B/x"})
    assert dropped(old, settings()) == [
        "[slack] token and webhook_url are removed (messages would go to the outbox)"
    ]


def test_removing_the_fallback_actions_is_named() -> None:
    old = settings(routing={"fallback": [{"type": "archive", "path": "chats.jsonl"}]})
    assert dropped(old, settings()) == ["the routing.fallback actions are removed"]


def test_a_named_slack_destination_left_without_credentials_is_named() -> None:
    old = settings(destinations={"slack": {"ops": {"token": "xoxb-1"}}})
    new = settings(destinations={"slack": {"ops": {}}})
    assert dropped(old, new) == ["destinations.slack 'ops' would write to the outbox"]


def test_the_database_and_its_lease_are_read_only_at_start() -> None:
    """The store is opened once: a reload that changes storage.url, its password or
    lease_seconds would be reported as applied (and lease_seconds checked against the send
    deadlines) while the running store keeps the old database and lease."""
    url = "postgresql://relay@db.shop.test/relay"
    old = Settings(storage={"state_dir": "/var/lib/relay", "url": url, "lease_seconds": 40})
    new = Settings(
        storage={
            "state_dir": "/var/lib/relay",
            "url": url.replace("db.", "db2."),
            "password": "other",
            "lease_seconds": 100,
        }
    )
    assert restart_only_changes(old, new) == [
        "storage.url",
        "storage.password",
        "storage.lease_seconds",
    ]
    assert restart_only_changes(old, old) == []
