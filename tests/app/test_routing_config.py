"""`relay check` names the rule and key of every problem; `relay routes test` explains."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from relay.cli.main import main
from relay.config.settings import load_settings
from relay.model.errors import ConfigError
from relay.routing.rules import Match
from tests.support.data import SAMPLES
from tests.support.paths import ROOT

GOOD_RULE = """
[[rules]]
name = "low-rated"
actions = [{ type = "slack", channel = "#cx" }]
match = { category = "low-rated" }
"""

# (TOML after a valid first rule, text the error must contain)
BAD: list[tuple[str, str, str]] = [
    ("invalid regex", """
        [[rules]]
        name = "vip-to-owner"
        actions = [{ type = "email", to = ["owner@shop.test"] }]
        match.variables.vip.regex = "(unclosed"
        """, "rule 'vip-to-owner': match.variables.vip.regex: invalid regex '(unclosed'"),
    ("invalid message regex", """
        [[rules]]
        name = "refunds"
        actions = [{ type = "email", to = ["a@shop.test"] }]
        match.message_regex = "*refund"
        """, "rule 'refunds': match.message_regex: invalid regex '*refund'"),
    ("unknown time zone", """
        [[rules]]
        name = "office"
        actions = [{ type = "email", to = ["a@shop.test"] }]
        match.time = { timezone = "Europe/Prage" }
        """, "rule 'office': match.time.timezone: unknown time zone 'Europe/Prage'"),
    ("bad weekday", """
        [[rules]]
        name = "office"
        actions = [{ type = "email", to = ["a@shop.test"] }]
        match.time = { timezone = "UTC", weekdays = ["mon-fry"] }
        """, "rule 'office': match.time.weekdays: unknown weekday 'mon-fry'"),
    ("bad hours", """
        [[rules]]
        name = "office"
        actions = [{ type = "email", to = ["a@shop.test"] }]
        match.time = { timezone = "UTC", hours = ["9-17"] }
        """, "rule 'office': match.time.hours: bad hours range '9-17'"),
    ("unknown matcher", """
        [[rules]]
        name = "colourful"
        actions = [{ type = "email", to = ["a@shop.test"] }]
        match.colour = "red"
        """, "rule 'colourful': match.colour: unknown key"),
    ("unknown action key", """
        [[rules]]
        name = "hooked"
        actions = [{ type = "webhook", url = "http://127.0.0.1/x", sign = true }]
        """, "rule 'hooked': actions.0.sign: unknown key"),
    ("unknown action type", """
        [[rules]]
        name = "faxed"
        actions = [{ type = "fax", to = ["1"] }]
        """, "rule 'faxed': actions.0: Input tag 'fax'"),
    ("unknown destination", """
        [[rules]]
        name = "billing"
        actions = [{ type = "email", to = ["a@shop.test"], destination = "billing" }]
        """, "rule 'billing': actions.0.destination: unknown smtp destination 'billing'"),
    ("unknown webhook destination", """
        [destinations.webhook.crm]
        url = "https://crm.example/hook"
        [[rules]]
        name = "copy"
        actions = [{ type = "webhook", destination = "helpdesk" }]
        """, "unknown webhook destination 'helpdesk' (known: crm)"),
    ("webhook needs one target", """
        [[rules]]
        name = "copy"
        actions = [{ type = "webhook" }]
        """, "rule 'copy': actions.0: give exactly one of destination or url"),
    ("webhook body template", """
        [[rules]]
        name = "copy"
        actions = [{ type = "webhook", url = "http://127.0.0.1/x", body = { text = "{{ key" } }]
        """, "rule 'copy': actions.0.body: template error"),
    ("variable without condition", """
        [[rules]]
        name = "vip"
        actions = [{ type = "email", to = ["a@shop.test"] }]
        match.variables.vip = {}
        """, "rule 'vip': match.variables.vip: give at least one of"),
    ("reserved name", """
        [[rules]]
        name = "fallback"
        actions = [{ type = "email", to = ["a@shop.test"] }]
        """, "rule 'fallback': name: 'fallback' is reserved"),
    ("duplicate name", """
        [[rules]]
        name = "low-rated"
        actions = [{ type = "email", to = ["a@shop.test"] }]
        """, "rule name 'low-rated' is used twice"),
    ("bad fallback", """
        [routing]
        fallback = "keep"
        """, 'routing.fallback: use "drop" or a list of actions'),
    ("fallback destination", """
        [[routing.fallback]]
        type = "slack"
        destination = "ops"
        """, "routing.fallback.0.destination: unknown slack destination 'ops'"),
    ("unknown slack template", """
        [[rules]]
        name = "alerts"
        actions = [{ type = "slack", channel = "#x", template = "fancy" }]
        """, "rule 'alerts': actions.0.template: slack template 'fancy' does not exist"),
    ("unknown email template", """
        [[rules]]
        name = "mail"
        actions = [{ type = "email", to = ["a@shop.test"], template = "nope" }]
        """, "rule 'mail': actions.0.template: email template 'nope'"),
]  # fmt: skip


def write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "relay.toml"
    top, _, rules = textwrap.dedent(extra).partition("[[rules]]")
    text = f'[storage]\nstate_dir = "{tmp_path / "state"}"\n{top}\n{GOOD_RULE}'
    path.write_text(text + (f"\n[[rules]]{rules}" if rules else ""), encoding="utf-8")
    return path


@pytest.mark.parametrize(("extra", "expected"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_check_names_rule_and_key(tmp_path: Path, extra: str, expected: str) -> None:
    result = CliRunner().invoke(main, ["check", "--config", str(write(tmp_path, extra))])
    assert result.exit_code == 1, result.output
    assert expected in result.output


def test_check_accepts_every_matcher_and_action(tmp_path: Path) -> None:
    path = write(tmp_path, FULL)
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "settings OK: 3 rules, fallback 1 actions, 3 named destinations" in result.output


def test_webhook_secret_comes_from_the_secrets_dir(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "destinations__webhook__helpdesk__secret").write_text("from-a-file")
    settings = load_settings(write(tmp_path, FULL), secrets_dir=secrets)
    secret = settings.destinations.webhook["helpdesk"].secret
    assert secret is not None and secret.get_secret_value() == "from-a-file"


def test_load_settings_raises_config_error_naming_the_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"rule 'vip-to-owner': match\.variables\.vip\.regex"):
        load_settings(write(tmp_path, BAD[0][1]))


FULL = """
[destinations.smtp.billing]
host = "127.0.0.1"
from_address = "Billing <billing@shop.test>"
[destinations.slack.ops]
webhook_url = "http://127.0.0.1:9/slack"
[destinations.webhook.helpdesk]
url = "http://127.0.0.1:9/hook"
secret = "in-the-file"
headers = { Authorization = "Bearer abc" }

[[routing.fallback]]
type = "archive"
path = "archive/unmatched.jsonl"

[[rules]]
name = "vip-to-owner"
continue = true

[[rules.actions]]
type = "email"
to = ["owner@shop.test"]
cc = ["boss@shop.test"]
bcc = ["log@shop.test"]
subject = "VIP chat from {{ view.visitor_name }}"
destination = "billing"

[[rules.actions]]
type = "slack"
destination = "ops"
template = "alert"

[[rules.actions]]
type = "webhook"
destination = "helpdesk"
body = { chat = "{{ key }}", rating = "{{ conversation.channel.rating }}" }

[[rules.actions]]
type = "archive"
path = "archive/vip.jsonl"

[rules.match]
category = ["normal", "low-rated"]
rating_min = 1
rating_max = 5
has_rating = true
account_id = 208
country_code = ["CZ", "SK"]
group = "eshop"
has_email = true
message_regex = "(?i)invoice|refund"
triggered = true
triggered_by = ["Test Trigger"]
duration_min = 10
duration_max = 3600
messages_min = 2
messages_max = 100
time.mode = "active"
time.timezone = "Europe/Prague"
time.weekdays = ["mon-fri"]
time.hours = ["08:00-12:00", "13:00-17:00"]
variables.chatPackage = { one_of = ["pro", "enterprise"] }
variables.userId = { regex = "^[0-9]+$", present = true }
variables.vip = { equals = true }

[[rules]]
name = "quiet-nights"
actions = [{ type = "webhook", url = "http://127.0.0.1:9/night" }]
match.time = { mode = "mute", timezone = "America/New_York", hours = ["07:00-22:00"] }
"""


def test_routes_test_explains_each_rule(tmp_path: Path) -> None:
    config = write(tmp_path, ROUTES)
    sample = str(SAMPLES / "doc-example-v1.json")
    result = CliRunner().invoke(main, ["routes", "test", sample, "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "conversation 208-55039: category normal, evaluated at 2015-03-27 15:34:36 UTC (endAt)"
    )
    assert "rule 1 'low-rated': not matched" in lines
    assert '    FAIL category: wanted ["low-rated"], got "normal"' in lines
    assert "rule 2 'vip': matched (continue)" in lines
    assert '    ok   variables.chatPackage.equals: wanted "pro", got "pro"' in lines
    assert "rule 3 'germans': not matched" in lines
    assert '    FAIL country_code: wanted ["DE", "AT"], got "CZ"' in lines
    assert "rule 4 'office-hours': matched (stop)" in lines
    assert "rule 5 'later': not reached (rule 'office-hours' matched without continue)" in lines
    assert "result: 2 deliveries" in lines
    assert (
        "    vip: webhook POST to http://127.0.0.1:9/hook (destination 'crm', signed),"
        " body: the conversation as received" in lines
    )


def test_routes_test_at_overrides_the_end_time(tmp_path: Path) -> None:
    config = write(tmp_path, ROUTES)
    sample = str(SAMPLES / "doc-example-v1.json")
    args = ["routes", "test", sample, "--config", str(config), "--at", "2026-03-29T09:00+02:00"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "evaluated at 2026-03-29 07:00:00 UTC (--at)" in result.output
    assert "rule 4 'office-hours': not matched" in result.output
    assert (
        "    FAIL time (active): wanted inside mon-fri 09:00-17:00,"
        " got Sun 2026-03-29 09:00 CEST (Europe/Prague)" in result.output
    )
    assert "rule 5 'later': matched (stop)" in result.output


def test_routes_test_shows_the_fallback(tmp_path: Path) -> None:
    config = write(tmp_path, "")
    sample = str(SAMPLES / "doc-example-v1.json")
    result = CliRunner().invoke(main, ["routes", "test", sample, "--config", str(config)])
    assert 'no rule matched: fallback is "drop"' in result.output
    assert "result: 0 deliveries" in result.output


def test_routes_test_refuses_a_bad_time(tmp_path: Path) -> None:
    sample = str(SAMPLES / "doc-example-v1.json")
    result = CliRunner().invoke(main, ["routes", "test", sample, "--at", "yesterday"])
    assert result.exit_code == 2
    assert "not an ISO 8601 time" in result.output


ROUTES = """
[destinations.webhook.crm]
url = "http://127.0.0.1:9/hook"
secret = "s"

[[rules]]
name = "vip"
continue = true
actions = [{ type = "webhook", destination = "crm" }]
match.variables.chatPackage.equals = "pro"

[[rules]]
name = "germans"
actions = [{ type = "email", to = ["de@shop.test"] }]
match.country_code = ["DE", "AT"]

[[rules]]
name = "office-hours"
actions = [{ type = "email", to = ["cz@shop.test"] }]
match.time = { timezone = "Europe/Prague", weekdays = ["mon-fri"], hours = ["09:00-17:00"] }

[[rules]]
name = "later"
actions = [{ type = "archive", path = "later.jsonl" }]
"""


def example_rules(text: str) -> str:
    """The commented rule examples of settings.example.toml with the comment marks removed."""
    _, _, rest = text.partition("# --- example rules: begin ---\n")
    block, end, _ = rest.partition("# --- example rules: end")
    assert block and end, "settings.example.toml lost its example-rules markers"
    return "\n".join(line.removeprefix("#").removeprefix(" ") for line in block.splitlines())


def test_example_rules_in_settings_example_are_valid(tmp_path: Path) -> None:
    root = ROOT
    text = example_rules((root / "settings.example.toml").read_text(encoding="utf-8"))
    config = tmp_path / "rules.toml"
    config.write_text(f'[storage]\nstate_dir = "{tmp_path}"\n{text}', encoding="utf-8")
    settings = load_settings(config)
    kinds = {action.type for _, action in settings.actions_by_place()}
    assert kinds == {"email", "slack", "webhook", "archive"}
    used = {
        key
        for rule in settings.effective_rules
        for key, value in rule.match.model_dump(exclude_none=True).items()
        if value is not None
    }
    assert used == set(Match.model_fields)  # every matcher has an example
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "settings OK: 7 rules, fallback 1 actions, 3 named destinations" in result.output


def test_routes_test_reads_a_time_without_offset_as_utc(tmp_path: Path) -> None:
    config = write(tmp_path, ROUTES)
    sample = str(SAMPLES / "doc-example-v1.json")
    args = ["routes", "test", sample, "--config", str(config), "--at", "2026-03-29T09:00"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "evaluated at 2026-03-29 09:00:00 UTC (--at)" in result.output


def test_routes_test_names_a_bad_settings_file(tmp_path: Path) -> None:
    config = write(tmp_path, "[[rules]]\nname = 1\n")
    sample = str(SAMPLES / "doc-example-v1.json")
    result = CliRunner().invoke(main, ["routes", "test", sample, "--config", str(config)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: invalid settings in {config}: ")
    assert "name: Input should be a valid string" in result.output


def test_routes_test_names_what_is_wrong_with_the_body(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"accountId": 1}')
    result = CliRunner().invoke(main, ["routes", "test", str(bad)])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: {bad}: missing_field: ")


def test_relay_check_says_where_teams_cards_go(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        [destinations.teams.support]
        webhook_url = "https://tenant.example.test/workflows/abc?sig=secret"

        [[rules]]
        name = "to-teams"
        actions = [{ type = "teams" }, { type = "teams", destination = "support" }]
        """,
    )
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code == 0, result.output
    outbox = tmp_path / "state" / "outbox"
    assert (
        f"teams card -> outbox {outbox}/ as .json files, NOT sent ([teams] has no webhook_url)"
        in result.output
    )
    assert "teams card -> Teams Workflows webhook https://tenant.example.test" in result.output
    assert "secret" not in result.output and "/workflows" not in result.output


def test_routes_test_describes_every_kind_of_action(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        """
        [destinations.slack.ops]
        token = "xoxb-ops"

        [destinations.teams.support]
        webhook_url = "https://tenant.example.test/workflows/abc"

        [destinations.freshdesk.desk]
        api_url = "https://shop.freshdesk.example.test"
        api_key = "k"

        [destinations.zendesk.help]
        api_url = "https://shop.zendesk.example.test"
        email = "agent@shop.test"
        api_token = "t"

        [[rules]]
        name = "everything"
        actions = [
            { type = "slack", channel = "#ops", destination = "ops" },
            { type = "archive", path = "chats.jsonl" },
            { type = "teams", destination = "support" },
            { type = "freshdesk", destination = "desk", tags = ["chat"] },
            { type = "zendesk", destination = "help" },
        ]
        """,
    )
    sample = str(SAMPLES / "doc-example-v1.json")
    result = CliRunner().invoke(main, ["routes", "test", sample, "--config", str(config)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    for expected in (
        "    everything: slack to #ops via slack destination 'ops' (template 'alert')",
        "    everything: archive: append a JSON line to chats.jsonl",
        "    everything: teams Adaptive Card via teams destination 'support'",
    ):
        assert expected in lines, result.output
    freshdesk = next(line for line in lines if "Freshdesk" in line)
    assert "(destination 'desk'): one ticket (" in freshdesk
    assert "tags chat); a later version adds a private note" in freshdesk
    assert freshdesk.endswith("a placeholder requester without a visitor email")
    zendesk = next(line for line in lines if "Zendesk" in line)
    assert "tags smartsupp); a later version adds a private comment" in zendesk
