"""The CRM senders of the named destinations, by ``relay.senders.registry.sender_key``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from relay.senders.crm.freshdesk import FreshdeskSender
from relay.senders.crm.hubspot import HubSpotSender
from relay.senders.crm.pipedrive import PipedriveSender
from relay.senders.crm.zendesk import ZendeskSender

if TYPE_CHECKING:
    from relay.config.settings import DestinationSettings
    from relay.senders.base import Sender


def crm_probes(named: DestinationSettings) -> dict[str, Callable[[], Awaitable[str]]]:
    """A read-only credential check per CRM destination, by sender key."""
    return {key: sender.probe for key, sender in _senders(named).items()}


def crm_senders(named: DestinationSettings) -> dict[str, Sender]:
    """``hubspot:NAME``, ``pipedrive:NAME``, ``freshdesk:NAME``, ``zendesk:NAME``."""
    return dict(_senders(named))


def _senders(
    named: DestinationSettings,
) -> dict[str, HubSpotSender | PipedriveSender | FreshdeskSender | ZendeskSender]:
    return {
        **{f"hubspot:{n}": HubSpotSender(d) for n, d in named.hubspot.items()},
        **{f"pipedrive:{n}": PipedriveSender(d) for n, d in named.pipedrive.items()},
        **{f"freshdesk:{n}": FreshdeskSender(d) for n, d in named.freshdesk.items()},
        **{f"zendesk:{n}": ZendeskSender(d) for n, d in named.zendesk.items()},
    }
