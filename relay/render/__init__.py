"""Rendering: email, Slack, webhook bodies and archive lines, templates and the render pool."""
