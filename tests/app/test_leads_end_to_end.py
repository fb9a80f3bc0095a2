"""Missed chat -> email with a claim link (aiosmtpd) -> confirm page -> claim -> relay leads."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from litestar.testing import TestClient

from relay.app import create_app
from relay.cli import main
from relay.leads import links
from relay.leads.http import NAME_COOKIE, NONCE_COOKIE
from tests.support.config import write_config
from tests.support.data import TOKEN, body, sample
from tests.support.leads import LINK_KEY, follow_up, form_of, tokens_in
from tests.support.smtp import SmtpServer

HOOK = f"/hooks/smartsupp/{TOKEN}"


def missed_chat() -> bytes:
    data = sample("v1")
    data["channel"]["isMissed"] = True
    return body(data)


def leads_json(config: Path) -> list[dict[str, Any]]:
    result = CliRunner().invoke(main, ["leads", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    found: list[dict[str, Any]] = json.loads(result.output)
    return found


def open_form(client: TestClient[Any], token: str) -> dict[str, str]:
    """GET the link as a fresh browser; the form's fields, with the nonce cookie it set."""
    client.cookies.clear()
    page = client.get(f"/leads/{token}")
    assert page.status_code == 200
    action, fields = form_of(page.text)
    assert action == f"/leads/{token}"
    assert page.cookies[NONCE_COOKIE] == fields["nonce"]
    return fields


def submit(client: TestClient[Any], token: str, fields: dict[str, str], **values: str) -> Any:
    client.cookies.clear()
    return client.post(
        f"/leads/{token}",
        data={**fields, **values},
        headers={"Cookie": f"{NONCE_COOKIE}={fields.get('nonce', '')}"},
    )


def test_claim_from_the_email_link_end_to_end(tmp_path: Path, smtp_server: SmtpServer) -> None:
    config, settings = write_config(
        tmp_path,
        smtp={"host": "127.0.0.1", "port": smtp_server.port, "from_address": "R <r@shop.test>"},
        routing={"sales_inbox": "sales@shop.test"},
        follow_up=follow_up(),
    )
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=missed_chat()).status_code == 200
        (email,) = smtp_server.handler.wait_for(1)
        tokens = tokens_in(email.message)
        assert set(tokens) == {"claim", "done"}
        claim_token = tokens["claim"]

        # Two people open the link; a GET (or a mail scanner's prefetch) changes nothing.
        jana = open_form(client, claim_token)
        petr = open_form(client, claim_token)
        assert [lead["state"] for lead in leads_json(config)] == ["open"]

        # A POST without the page's form token is refused and changes nothing.
        forged = submit(client, claim_token, {}, name="Mallory")
        assert forged.status_code == 403
        other_nonce = submit(client, claim_token, {**jana, "nonce": petr["nonce"]}, name="M")
        assert other_nonce.status_code == 403
        assert [lead["state"] for lead in leads_json(config)] == ["open"]

        claimed = submit(client, claim_token, jana, name="Jana Nová")
        assert claimed.status_code == 200
        assert "It is yours, Jana Nová" in claimed.text
        assert claimed.cookies[NAME_COOKIE]
        (lead,) = leads_json(config)
        assert (lead["state"], lead["claimed_by"]) == ("claimed", "Jana Nová")
        assert abs(lead["claimed_at"] - time.time()) < 600

        second = submit(client, claim_token, petr, name="Petr")
        assert second.status_code == 409
        assert re.search(r"Already taken by Jana Nová at \d{1,2}:\d{2}", second.text)
        again = client.get(f"/leads/{claim_token}")
        assert again.status_code == 200 and "Already taken by Jana Nová" in again.text
        assert form_of(again.text)[0] is None  # no form to claim it again
        (lead,) = leads_json(config)
        assert lead["claimed_by"] == "Jana Nová"

        # Done works the same way; the remembered name fills the form.
        client.cookies.clear()
        done_page = client.get(
            f"/leads/{tokens['done']}", headers={"Cookie": f"{NAME_COOKIE}=Jana%20Nov%C3%A1"}
        )
        assert done_page.status_code == 200
        fields = form_of(done_page.text)[1]
        assert fields["name"] == "Jana Nová"
        finished = submit(client, tokens["done"], fields, note="Called back, ordered.")
        assert finished.status_code == 200 and "Marked as done by Jana Nová" in finished.text
        (lead,) = leads_json(config)
        assert (lead["state"], lead["done_by"], lead["note"]) == (
            "done",
            "Jana Nová",
            "Called back, ordered.",
        )


def test_expired_and_tampered_links_are_refused_politely(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    config, settings = write_config(
        tmp_path,
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        follow_up=follow_up(),
    )
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=missed_chat())
        (email,) = smtp_server.handler.wait_for(1)
        token = tokens_in(email.message)["claim"]
        fields = open_form(client, token)
        lead_id = leads_json(config)[0]["id"]
        expired = links.sign(LINK_KEY.encode(), "claim", lead_id, int(time.time()) - 1)
        tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
        longer = re.sub(r"-(\d+)-", lambda m: f"-{int(m[1]) + 86400}-", token, count=1)
        for bad, status, words in (
            (expired, 410, "This link has expired"),
            (tampered, 404, "This link is not valid"),
            (longer, 404, "This link is not valid"),
            ("c1-1-short", 404, "This link is not valid"),
        ):
            shown = client.get(f"/leads/{bad}")
            assert (shown.status_code, shown.headers["content-type"]) == (
                status,
                "text/html; charset=utf-8",
            )
            assert words in shown.text
            posted = submit(client, bad, fields, name="Mallory")
            assert posted.status_code == status and words in posted.text
        assert [(lead["state"], lead["claimed_by"]) for lead in leads_json(config)] == [
            ("open", None)
        ]


def test_pages_speak_czech_and_german_and_ask_for_a_name(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    _, settings = write_config(
        tmp_path,
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        follow_up=follow_up(),
        render={"locale": "de"},
    )
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=missed_chat())
        (email,) = smtp_server.handler.wait_for(1)
        token = tokens_in(email.message)["claim"]
        text_part = email.message.get_body(preferencelist=("plain",))
        assert text_part is not None and "Übernehme ich" in text_part.get_content()
        czech = client.get(f"/leads/{token}", headers={"Accept-Language": "cs,en;q=0.5"})
        assert "Vzít si tento kontakt?" in czech.text and 'lang="cs"' in czech.text
        german = client.get(f"/leads/{token}")
        assert "Diesen Lead übernehmen?" in german.text
        for page in (czech, german):
            assert "http" not in page.text.replace("http://relay.test", "")
            assert "default-src 'none'" in page.headers["content-security-policy"]
        fields = open_form(client, token)
        empty = submit(client, token, fields, name="  \r\n ")
        assert empty.status_code == 400
        assert "Bitte geben Sie Ihren Namen ein." in empty.text


def test_hostile_visitor_names_and_claimer_names_stay_inert(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    _, settings = write_config(
        tmp_path,
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        follow_up=follow_up(),
    )
    data = sample("v1")
    data["channel"]["isMissed"] = True
    data["visitor"]["name"] = '<img src=x onerror="alert(1)">{{ 7*7 }}'
    with TestClient(create_app(settings)) as client:
        client.post(HOOK, content=body(data))
        (email,) = smtp_server.handler.wait_for(1)
        token = tokens_in(email.message)["claim"]
        page = client.get(f"/leads/{token}")
        assert "<img" not in page.text and "&lt;img" in page.text
        assert "{{ 7*7 }}" in page.text
        claimed = submit(client, token, open_form(client, token), name="<b>Eve</b>\r\nX-Evil: 1")
        assert claimed.status_code == 200
        assert (
            "<b>Eve</b>" not in claimed.text and "&lt;b&gt;Eve&lt;/b&gt; X-Evil: 1" in claimed.text
        )


def test_a_finished_lead_and_one_that_no_longer_exists_get_no_form(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    config, settings = write_config(
        tmp_path,
        smtp={"host": "127.0.0.1", "port": smtp_server.port},
        follow_up=follow_up(),
    )

    def table() -> list[str]:
        result = CliRunner().invoke(main, ["leads", "--config", str(config)])
        assert result.exit_code == 0, result.output
        return result.output.splitlines()

    with TestClient(create_app(settings)) as client:
        assert table() == ["no leads"]
        client.post(HOOK, content=missed_chat())
        (email,) = smtp_server.handler.wait_for(1)
        tokens = tokens_in(email.message)
        finished = submit(client, tokens["done"], open_form(client, tokens["done"]), name="Eva")
        assert finished.status_code == 200
        header, row = table()
        assert header.split() == [
            "ID",
            "STATE",
            "CATEGORY",
            "CREATED",
            "(UTC)",
            "VISITOR",
            "/",
            "WHO",
        ]
        assert re.search(r" done +missed .* done by Eva \d{4}-\d\d-\d\d \d\d:\d\d$", row), row
        # Both links now say it is done, at any time, and offer no form.
        for token in tokens.values():
            client.cookies.clear()
            shown = client.get(f"/leads/{token}")
            assert shown.status_code == 200
            assert re.search(r"Already done by Eva at \d{1,2}:\d{2}", shown.text)
            assert form_of(shown.text)[0] is None

        # A well-signed link to a lead that is not (or no longer) in the store.
        gone_id = leads_json(config)[0]["id"] + 1000
        gone = links.sign(LINK_KEY.encode(), "claim", gone_id, int(time.time()) + 3600)
        client.cookies.clear()
        shown = client.get(f"/leads/{gone}")
        assert shown.status_code == 404 and "This lead no longer exists" in shown.text
        nonce = "n" * 22
        form = {"nonce": nonce, "csrf": links.csrf(LINK_KEY.encode(), gone, nonce)}
        for name in ("Eva", ""):  # with a name it is tried; without, the form is shown again
            posted = submit(client, gone, form, name=name)
            assert posted.status_code == 404 and "This lead no longer exists" in posted.text


def test_a_lead_answered_in_a_later_chat_says_so_and_offers_no_form(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    _, settings = write_config(
        tmp_path, smtp={"host": "127.0.0.1", "port": smtp_server.port}, follow_up=follow_up()
    )
    with TestClient(create_app(settings)) as client:
        assert client.post(HOOK, content=missed_chat()).status_code == 200
        (email,) = smtp_server.handler.wait_for(1)
        tokens = tokens_in(email.message)
        answered = sample("v1")
        answered["channel"]["id"] += 1  # the same visitor's next chat, answered by an agent
        answered["channel"]["isMissed"] = False
        assert client.post(HOOK, content=body(answered)).status_code == 200
        for token in tokens.values():
            client.cookies.clear()
            shown = client.get(f"/leads/{token}")
            assert shown.status_code == 200
            assert "This visitor was already answered in the chat." in shown.text
            assert form_of(shown.text)[0] is None
