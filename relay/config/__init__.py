"""Settings: the file, environment and secrets, addresses and destinations, loaded once."""
