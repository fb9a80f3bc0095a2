"""Routing: rules, matchers, the pure decision and its explanation."""
