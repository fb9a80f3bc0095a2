"""Signed links, CSRF tokens, the link key file, [follow_up] settings and page locales."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from relay.config.settings import Settings, load_settings
from relay.leads import links
from relay.leads.settings import FollowUpSettings
from relay.leads.texts import pick_locale, text
from relay.model.errors import ConfigError
from tests.support.data import base_sections

KEY = b"secret-key"


def test_a_signed_link_verifies_until_it_expires() -> None:
    token = links.sign(KEY, "claim", 42, 2000)
    assert links.verify(KEY, token, 1999.0) == links.LinkOk("claim", 42, 2000)
    assert links.verify(KEY, token, 2000.0) == links.LinkBad("expired")
    done = links.sign(KEY, "done", 42, 2000)
    assert links.verify(KEY, done, 1.0) == links.LinkOk("done", 42, 2000)


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("c42-", "c43-"),  # another lead
        lambda t: t.replace("-2000-", "-9000-"),  # a later expiry
        lambda t: "d" + t[1:],  # claim turned into done
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # the signature
        lambda t: t + "x",
        lambda t: "",
        lambda t: "../../etc/passwd",
    ],
)
def test_a_tampered_link_is_invalid_not_expired(change: object) -> None:
    token = links.sign(KEY, "claim", 42, 2000)
    assert callable(change)
    assert links.verify(KEY, change(token), 1.0) == links.LinkBad("invalid")


def test_another_key_does_not_verify() -> None:
    token = links.sign(KEY, "claim", 1, 2000)
    assert links.verify(b"other", token, 1.0) == links.LinkBad("invalid")


def test_the_form_token_is_tied_to_the_link_and_the_nonce() -> None:
    token = links.sign(KEY, "claim", 1, 2000)
    other = links.sign(KEY, "claim", 2, 2000)
    mac = links.csrf(KEY, token, "n1")
    assert links.csrf_ok(KEY, token, "n1", mac)
    assert not links.csrf_ok(KEY, token, "n2", mac)
    assert not links.csrf_ok(KEY, other, "n1", mac)
    assert not links.csrf_ok(KEY, token, "", "")


def test_links_expire_link_lifetime_days_after_the_delivery_was_planned() -> None:
    settings = FollowUpSettings(enabled=True, public_url="https://relay.example.com/")
    found = links.links_for(settings, KEY, 7, since=1000.0)
    assert found is not None
    assert found.claim_url.startswith("https://relay.example.com/leads/c7-")
    claim_token = found.claim_url.rsplit("/", 1)[1]
    assert links.verify(KEY, claim_token, 1000.0) == links.LinkOk("claim", 7, 1000 + 7 * 86400)
    assert links.links_for(FollowUpSettings(), KEY, 7, since=1000.0) is None


def test_without_a_configured_key_one_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = FollowUpSettings()
    first = links.link_key(settings, tmp_path)
    assert len(first) >= 32
    assert stat.S_IMODE((tmp_path / "link_key").stat().st_mode) == 0o600
    assert links.link_key(settings, tmp_path) == first


def test_the_key_comes_from_the_credentials_directory(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "follow_up__link_key").write_text("from-credentials\n", encoding="utf-8")
    config = tmp_path / "relay.toml"
    config.write_text('[follow_up]\nenabled = true\npublic_url = "https://r.example"\n')
    settings = load_settings(config, secrets_dir=credentials)
    assert links.link_key(settings.follow_up, tmp_path) == b"from-credentials"
    assert not (tmp_path / "link_key").exists()


def test_follow_up_on_requires_a_public_url(tmp_path: Path) -> None:
    config = tmp_path / "relay.toml"
    config.write_text("[follow_up]\nenabled = true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="public_url is required"):
        load_settings(config)
    assert Settings(**base_sections(tmp_path)).follow_up.enabled is False


def test_escalation_targets_are_addresses_or_slack_channels() -> None:
    settings = FollowUpSettings(escalate_to=["boss@shop.test", "#sales"])
    assert settings.escalate_to == ["boss@shop.test", "#sales"]
    with pytest.raises(ValueError, match="not an email address"):
        FollowUpSettings(escalate_to="nobody")
    with pytest.raises(ValueError, match="before 24:00"):
        FollowUpSettings(digest_at="24:00")


@pytest.mark.parametrize(
    ("header", "default", "expected"),
    [
        ("cs-CZ,cs;q=0.9,en;q=0.8", "en", "cs"),
        ("fr-FR, de;q=0.5, en;q=0.7", "cs", "en"),
        ("de-AT", "en", "de"),
        ("fr", "de", "de"),
        (None, "cs", "cs"),
        ("en;q=0, cs;q=bad", "de", "de"),
    ],
)
def test_the_page_language_follows_accept_language(
    header: str | None, default: str, expected: str
) -> None:
    assert pick_locale(header, default) == expected


def test_every_text_exists_in_each_language() -> None:
    from relay.leads.texts import TEXTS  # noqa: PLC0415

    assert set(TEXTS["cs"]) == set(TEXTS["en"]) == set(TEXTS["de"])
    assert text("cs", "taken", name="Jana", time="10:42") == "Už si to vzal(a) Jana v 10:42."


def test_relay_check_names_the_missing_public_url(tmp_path: Path) -> None:
    from click.testing import CliRunner  # noqa: PLC0415

    from relay.cli import main  # noqa: PLC0415

    config = tmp_path / "relay.toml"
    config.write_text(
        f'[storage]\nstate_dir = "{tmp_path}"\n[follow_up]\nenabled = true\n', encoding="utf-8"
    )
    result = CliRunner().invoke(main, ["check", "--config", str(config)])
    assert result.exit_code != 0
    assert "follow_up" in result.output and "public_url is required" in result.output


def test_the_links_travel_to_the_render_helpers_with_the_job() -> None:
    import pickle  # noqa: PLC0415

    from relay.config.settings import EmailAction, RenderSettings  # noqa: PLC0415
    from relay.render.pool import RenderJob, render  # noqa: PLC0415
    from tests.support.data import body, sample  # noqa: PLC0415

    data = sample("v1")
    data["channel"]["isMissed"] = True
    found = links.LeadLinks(3, "https://r.example/leads/c3-9-x", "https://r.example/leads/d3-9-x")
    job = RenderJob(
        RenderSettings(locale="cs"),
        "Relay <relay@shop.test>",
        body(data),
        "missed",
        EmailAction(type="email", to=["sales@shop.test"]),
        "<m@shop.test>",
        follow_up=found,
    )
    content = render(pickle.loads(pickle.dumps(job)))  # noqa: S301 -- our own job, as the pool does
    message = content.message  # type: ignore[union-attr]
    plain = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    for part in (plain, html):
        assert found.claim_url in part and found.done_url in part
        assert "Vezmu si to" in part
    from dataclasses import replace  # noqa: PLC0415

    unlinked = render(replace(job, follow_up=None))
    assert "/leads/" not in unlinked.message.as_string()  # type: ignore[union-attr]
