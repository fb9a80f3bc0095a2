"""Rendering: email, Slack, Teams cards, webhook bodies, archive lines, templates, render pool."""
