"""Provider presets: what m365 and google fill in, what a section's own keys override, and
what `relay check` says it filled in."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from relay.cli import main
from relay.config.presets import apply_preset
from relay.config.settings import SmtpSettings
from tests.support.config import write_config

SECRET = {"oauth2_client_id": "app-id", "oauth2_client_secret": "app-secret"}


def test_m365_fills_the_submission_server_and_the_tenants_token_endpoint() -> None:
    smtp = SmtpSettings(
        provider="m365", tenant="contoso.com", username="relay@contoso.com", **SECRET
    )
    assert (smtp.host, smtp.effective_port, smtp.security, smtp.auth) == (
        "smtp.office365.com",
        587,
        "starttls",
        "oauth2",
    )
    assert (
        smtp.oauth2_token_url == "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
    )
    assert smtp.oauth2_scope == "https://outlook.office365.com/.default"
    assert set(smtp.preset_filled) == {
        "host",
        "port",
        "security",
        "auth",
        "oauth2_token_url",
        "oauth2_scope",
    }


def test_m365_with_graph_asks_for_the_graph_scope() -> None:
    smtp = SmtpSettings(
        provider="m365",
        tenant="contoso.com",
        transport="graph",
        graph_sender="r@contoso.com",
        **SECRET,
    )
    assert smtp.oauth2_scope == "https://graph.microsoft.com/.default"


def test_m365_with_its_own_token_url_needs_no_tenant() -> None:
    url = "https://login.microsoftonline.us/contoso.us/oauth2/v2.0/token"  # a sovereign cloud
    smtp = SmtpSettings(provider="m365", oauth2_token_url=url, username="r@contoso.us", **SECRET)
    assert (smtp.host, smtp.oauth2_token_url, smtp.auth) == ("smtp.office365.com", url, "oauth2")
    assert "oauth2_token_url" not in smtp.preset_filled


def test_google_fills_gmail_and_googles_token_endpoint() -> None:
    smtp = SmtpSettings(provider="google", username="relay@shop.test", **SECRET)
    assert (smtp.host, smtp.effective_port, smtp.security) == ("smtp.gmail.com", 587, "starttls")
    assert smtp.oauth2_token_url == "https://oauth2.googleapis.com/token"
    assert smtp.oauth2_scope == "https://mail.google.com/"


def test_keys_the_section_sets_win_over_the_preset() -> None:
    data, filled = apply_preset(
        {"provider": "m365", "tenant": "t1", "host": "smtp-eu.example", "port": 25}
    )
    assert (data["host"], data["port"]) == ("smtp-eu.example", 25)
    assert "host" not in filled and "port" not in filled
    assert filled["security"] == "starttls"
    assert apply_preset({"host": "mail.example"}) == ({"host": "mail.example"}, {})


def test_m365_without_a_tenant_or_token_url_and_odd_tenants_are_refused() -> None:
    with pytest.raises(ValueError, match="needs tenant"):
        SmtpSettings(provider="m365", **SECRET)
    with pytest.raises(ValueError, match="tenant must be"):
        SmtpSettings(provider="m365", tenant="../evil?x=", **SECRET)
    with pytest.raises(ValueError, match="provider"):
        SmtpSettings(provider="yahoo")


def test_check_says_what_the_provider_filled_in(tmp_path: Path) -> None:
    path, _ = write_config(
        tmp_path,
        smtp={
            "provider": "m365",
            "tenant": "contoso.com",
            "username": "relay@contoso.com",
            "port": 587,
            **SECRET,
        },
    )
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if "filled in" in line]
    assert line.strip() == (
        "[smtp] provider = \"m365\" filled in: host = 'smtp.office365.com', "
        "security = 'starttls', auth = 'oauth2', "
        "oauth2_scope = 'https://outlook.office365.com/.default', "
        "oauth2_token_url = 'https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token'"
    )
    assert "app-secret" not in result.output
    assert "SMTP smtp.office365.com:587 (starttls, XOAUTH2 as relay@contoso.com)" in result.output
