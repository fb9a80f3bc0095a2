"""Built-in Jinja2 templates for emails (email/) and Slack messages (slack/)."""
