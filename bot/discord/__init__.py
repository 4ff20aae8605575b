"""Discord: the bot (``/rankings`` application commands, on the gateway), its publishers and its REST client."""
