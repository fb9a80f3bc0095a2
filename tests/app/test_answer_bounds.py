"""The Teams, Microsoft Graph, OAuth2 token endpoint and CRM senders read a destination's answer
only up to a bound: against a real loopback server whose answers never end, each send ends at
once with the answer's status sorted (not at its deadline, not with the answer in memory)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC
from email.message import EmailMessage

import pytest
from pydantic import SecretStr

from relay.config.settings import SmtpSettings, TeamsSettings
from relay.intake.payload import parse
from relay.model.category import Category
from relay.model.content import EmailContent, TeamsContent
from relay.model.errors import DeliveryTimeout, TransientDeliveryError
from relay.render.i18n import Translator
from relay.render.teams import build_card
from relay.render.view import build_view
from relay.senders.answers import MAX_ANSWER_BYTES
from relay.senders.crm.http import MAX_CRM_ANSWER_BYTES, Api
from relay.senders.graph import GraphSender
from relay.senders.oauth2 import ClientCredentials, TokenCache
from relay.senders.teams import TeamsSender
from tests.support.data import sample
from tests.support.flood import CHUNK, FloodServer
from tests.support.graph import GRAPH_SCOPE
from tests.support.oauth import CLIENT_ID, CLIENT_SECRET, FakeTokenEndpoint

# Long enough for a bounded read on a busy machine; an unbounded one would still be reading.
DEADLINE = 10.0
# What the server can have pushed before the client hung up: its socket buffers, not gigabytes.
SENT_LIMIT = 64 * len(CHUNK)


@pytest.fixture
def flood() -> Iterator[FloodServer]:
    server = FloodServer()
    server.start()
    yield server
    server.stop()


def teams_card() -> TeamsContent:
    conversation = parse(json.dumps(sample("v1")).encode())
    view = build_view(conversation, Category.MISSED, Translator("en", UTC))
    return TeamsContent(build_card(view, Translator("en", UTC)))


async def test_teams_refusal_is_sorted_from_the_first_bytes(flood: FloodServer) -> None:
    sender = TeamsSender(
        TeamsSettings(webhook_url=SecretStr(flood.url("/busy/flow")), timeout_seconds=DEADLINE)
    )
    with pytest.raises(TransientDeliveryError) as caught:
        await sender.send(teams_card(), delivery_id=1)
    assert not isinstance(caught.value, DeliveryTimeout)
    assert "Teams answered HTTP 503: xxxx" in caught.value.message
    assert flood.sent < SENT_LIMIT


async def test_teams_acceptance_with_an_endless_answer_is_sent(flood: FloodServer) -> None:
    sender = TeamsSender(
        TeamsSettings(webhook_url=SecretStr(flood.url("/flow")), timeout_seconds=DEADLINE)
    )
    assert await sender.send(teams_card(), delivery_id=1) is None
    assert flood.sent < SENT_LIMIT


async def test_an_endless_token_answer_is_no_token(flood: FloodServer) -> None:
    cache = TokenCache(
        ClientCredentials(flood.url("/token"), CLIENT_ID, CLIENT_SECRET, GRAPH_SCOPE),
        timeout_seconds=DEADLINE,
    )
    with pytest.raises(TransientDeliveryError) as caught:
        await cache.token()
    assert not isinstance(caught.value, DeliveryTimeout)
    assert "HTTP 200" in caught.value.message
    assert flood.sent < SENT_LIMIT


@pytest.fixture
def token_endpoint() -> Iterator[FakeTokenEndpoint]:
    endpoint = FakeTokenEndpoint(scope=GRAPH_SCOPE)
    endpoint.start()
    yield endpoint
    endpoint.stop()


async def test_graph_refusal_is_sorted_from_the_first_bytes(
    flood: FloodServer, token_endpoint: FakeTokenEndpoint
) -> None:
    settings = SmtpSettings(
        transport="graph",
        graph_sender="relay@shop.test",
        graph_url=flood.url("/busy"),
        from_address="relay@shop.test",
        auth="oauth2",
        oauth2_token_url=token_endpoint.url(),
        oauth2_client_id=CLIENT_ID,
        oauth2_client_secret=SecretStr(CLIENT_SECRET),
        oauth2_scope=GRAPH_SCOPE,
        timeout_seconds=DEADLINE,
    )
    mail = EmailMessage()
    mail["From"] = "relay@shop.test"
    mail["To"] = "sales@shop.test"
    mail["Subject"] = "bounded"
    mail.set_content("body\n")
    with pytest.raises(TransientDeliveryError) as caught:
        await GraphSender(settings).send(EmailContent(mail, ("sales@shop.test",)), delivery_id=1)
    assert not isinstance(caught.value, DeliveryTimeout)
    assert "Microsoft Graph answered HTTP 503" in caught.value.message
    assert flood.sent < SENT_LIMIT


async def test_crm_refusal_quotes_the_start_of_an_endless_answer(flood: FloodServer) -> None:
    api = Api("Pipedrive", flood.url(""), error_text=str, timeout=DEADLINE)
    async with api.client() as client:
        with pytest.raises(TransientDeliveryError) as caught:
            await api.call(client, "GET", "/busy/v1/persons")
    assert not isinstance(caught.value, DeliveryTimeout)
    assert "Pipedrive answered HTTP 503: xxxx" in caught.value.message
    assert flood.sent < SENT_LIMIT


async def test_crm_success_too_long_to_read_is_transient(flood: FloodServer) -> None:
    api = Api("HubSpot", flood.url(""), error_text=str, timeout=DEADLINE)
    async with api.client() as client:
        with pytest.raises(TransientDeliveryError) as caught:
            await api.call(client, "POST", "/crm/v3/objects/contacts/search", json={})
    assert not isinstance(caught.value, DeliveryTimeout)
    assert f"over {MAX_CRM_ANSWER_BYTES} bytes" in caught.value.message
    assert MAX_ANSWER_BYTES < MAX_CRM_ANSWER_BYTES < SENT_LIMIT
    assert flood.sent < SENT_LIMIT
