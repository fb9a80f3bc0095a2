"""relay: receive Smartsupp conversations, store them durably and route them to email and Slack."""

from relay.app import create_app
from relay.settings import Settings, load_settings

__all__ = ["Settings", "create_app", "load_settings"]
