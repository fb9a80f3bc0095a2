"""CRM and help desk senders: HubSpot, Pipedrive, Freshdesk and Zendesk behind one contract."""
