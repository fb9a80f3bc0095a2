"""Delivery: the worker, the dispatch of an action to its content, and the retry policy."""
