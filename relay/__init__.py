"""relay: receive Smartsupp conversations, store them durably and route them to email and Slack."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.app import create_app
    from relay.config.settings import Settings, load_settings

__all__ = ["Settings", "create_app", "load_settings"]


def __getattr__(name: str) -> Any:
    """Import on first use, so ``relay --help`` does not load the web framework."""
    if name == "create_app":
        from relay.app import create_app  # noqa: PLC0415

        return create_app
    if name in ("Settings", "load_settings"):
        from relay.config import settings  # noqa: PLC0415

        return getattr(settings, name)
    raise AttributeError(f"module 'relay' has no attribute {name!r}")
