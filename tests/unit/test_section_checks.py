"""Settings checks on values that would land in an HTTP header: a webhook destination's extra
headers and the console's proxy user header."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from relay.config.settings import WebhookDestination
from relay.console.settings import ConsoleSettings

URL = "https://hooks.example.test/in"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Ok": "a\r\nBcc: x"},
        {"X-Ok\n": "a"},
        {"": "a"},
        {"X-Bad:": "a"},
        {"X-Nul": "a\0b"},
    ],
)
def test_a_webhook_header_that_could_split_the_request_is_refused(
    headers: dict[str, str],
) -> None:
    with pytest.raises(ValidationError, match="has an invalid name or value"):
        WebhookDestination(url=URL, headers=headers)


def test_a_webhook_header_of_plain_text_is_kept() -> None:
    found = WebhookDestination(url=URL, headers={"X-Team": "sales; cz"})
    assert found.headers == {"X-Team": "sales; cz"}


@pytest.mark.parametrize("name", ["", "X Remote-User", "X-Remote-User:", "X-User\r\n"])
def test_the_consoles_user_header_must_be_a_header_name(name: str) -> None:
    with pytest.raises(ValidationError, match="is not a header name"):
        ConsoleSettings(user_header=name)
    assert ConsoleSettings(user_header="X-Remote-User").user_header == "X-Remote-User"
