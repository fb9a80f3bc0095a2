"""Senders: deliver rendered content to SMTP, Slack or the local outbox, and nothing else."""
