"""Settings: the file, environment and secrets, addresses, destinations and mail provider presets,
loaded once."""
