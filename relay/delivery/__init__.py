"""Delivery: the worker that claims, renders, sends and records due deliveries; retry policy."""
