"""The explanations `relay routes test` and the console print: the fallback, inline webhooks,
and links of CRM actions that must be http(s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from relay.config.settings import Settings
from relay.intake.pipeline import take
from relay.routing.explain_text import decision_lines, describe_action
from relay.routing.rules import PipedriveAction, WebhookAction
from tests.support.data import base_sections, body, sample

HOOK = {"type": "webhook", "url": "https://user:secret@hooks.example.test/in?token=secret"}


def test_an_inline_webhook_is_described_unsigned_with_its_secrets_redacted(
    tmp_path: Path,
) -> None:
    settings = Settings(**base_sections(tmp_path))
    said = describe_action(WebhookAction.model_validate(HOOK), settings)
    assert "(unsigned)" in said and "hooks.example.test" in said
    assert "secret" not in said


def test_when_no_rule_matches_the_explanation_says_the_fallback_applies(tmp_path: Path) -> None:
    rules = [{"name": "only-missed", "match": {"category": "missed"}, "actions": [HOOK]}]
    settings = Settings(
        **base_sections(tmp_path),
        rules=rules,
        routing={"fallback": [{**HOOK, "url": "https://fallback.test/in"}]},
    )
    routed = take(
        body(sample("v1")),
        settings.rule_set,
        low_rating_threshold=settings.classify.low_rating_threshold,
        now=1_800_000_000.0,
    )
    assert routed.decision.category.value != "missed"
    lines = decision_lines(routed.conversation, routed.decision, settings)
    assert "no rule matched: the fallback actions apply" in lines
    assert any("fallback.test" in line for line in lines)


def test_a_crm_link_must_be_an_http_address() -> None:
    for link in ("ftp://crm.test/{{ id }}", "javascript:alert(1)", "crm.test/x"):
        with pytest.raises(ValidationError, match="a link must start with https:// or http://"):
            PipedriveAction(type="pipedrive", destination="d", link=link)
    ok = PipedriveAction(type="pipedrive", destination="d", link="https://crm.test/c/{{ id }}")
    assert ok.link == "https://crm.test/c/{{ id }}"
