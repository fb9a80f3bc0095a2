"""Plain-text rendering of a routing Decision, for ``relay routes test``."""

from __future__ import annotations

from relay.config.settings import Settings
from relay.model.conversation import Conversation
from relay.model.urls import redact_url
from relay.routing.crm_describe import describe
from relay.routing.decide import Decision, RuleOutcome
from relay.routing.rules import (
    AnyAction,
    ArchiveAction,
    CrmAction,
    EmailAction,
    SlackAction,
    TeamsAction,
)


def describe_action(action: AnyAction, settings: Settings) -> str:
    if isinstance(action, EmailAction):
        via = f"smtp destination {action.destination!r}" if action.destination else "[smtp]"
        extra = "".join(
            f"; {label} {', '.join(addrs)}"
            for label, addrs in (("cc", action.cc), ("bcc", action.bcc))
            if addrs
        )
        subject = f", subject {action.subject!r}" if action.subject else ""
        return (
            f"email to {', '.join(action.to)}{extra} via {via}"
            f" (template {action.template!r}{subject})"
        )
    if isinstance(action, SlackAction):
        via = f"slack destination {action.destination!r}" if action.destination else "[slack]"
        return f"slack to {action.channel or '(webhook)'} via {via} (template {action.template!r})"
    if isinstance(action, ArchiveAction):
        return f"archive: append a JSON line to {action.path}"
    if isinstance(action, CrmAction):
        return describe(action)
    if isinstance(action, TeamsAction):
        via = f"teams destination {action.destination!r}" if action.destination else "[teams]"
        return f"teams Adaptive Card via {via}"
    if action.destination is not None:
        hook = settings.destinations.webhook.get(action.destination)
        url = redact_url(hook.url) if hook else "?"
        signed = ", signed" if hook is not None and hook.secret is not None else ""
        target = f"{url} (destination {action.destination!r}{signed})"
    else:
        target = f"{redact_url(action.url or '?')} (unsigned)"
    body = "the conversation as received" if action.body is None else "a JSON template"
    return f"webhook POST to {target}, body: {body}"


def _outcome_lines(index: int, outcome: RuleOutcome, decision: Decision) -> list[str]:
    rule = outcome.rule
    head = f"rule {index} {rule.name!r}: {outcome.verdict}"
    if outcome.verdict == "not reached":
        return [f"{head} (rule {decision.stopped_by!r} matched without continue)"]
    if outcome.verdict == "matched":
        head += " (continue)" if rule.continue_ else " (stop)"
    lines = [head]
    if not outcome.checks:
        lines.append("    (no matchers: matches every conversation)")
    lines.extend(f"    {check.describe()}" for check in outcome.checks)
    return lines


def decision_lines(conversation: Conversation, decision: Decision, settings: Settings) -> list[str]:
    lines = [
        f"conversation {conversation.key}: category {decision.category.value},"
        f" evaluated at {decision.at_text} ({decision.at_source})",
        "",
    ]
    for index, outcome in enumerate(decision.outcomes, start=1):
        lines.extend(_outcome_lines(index, outcome, decision))
    if decision.fallback_used:
        lines.append("no rule matched: the fallback actions apply")
    elif decision.dropped:
        lines.append('no rule matched: fallback is "drop" (stored and logged, nothing is sent)')
    lines.append("")
    count = len(decision.planned)
    lines.append(f"result: {count} deliver{'y' if count == 1 else 'ies'}")
    lines.extend(
        f"    {plan.rule}: {describe_action(plan.action, settings)}" for plan in decision.planned
    )
    return lines
