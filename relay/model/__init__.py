"""Shared values for every stage: the conversation, its category, content, errors, URLs."""
