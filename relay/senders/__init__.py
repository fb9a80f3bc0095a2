"""Senders: one contract, a registry building them from settings, and each destination kind."""
