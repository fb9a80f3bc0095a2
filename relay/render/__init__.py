"""Rendering: Jinja2 templates turn a conversation into email and Slack content."""

from relay.render.renderer import Renderer

__all__ = ["Renderer"]
