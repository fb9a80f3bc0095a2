"""The console: a browser view of what the relay did (leads, queue, quarantine, conversations,
rules, statistics, audit log) for operators who have a user (``relay user add``)."""
