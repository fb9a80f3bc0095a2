"""Intake: the HTTP hook, its limits and connections, and the pipeline parse, classify, route."""
