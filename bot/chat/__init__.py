"""What ``/rankings`` does, the same on every chat platform: answers from the database, and channel subscriptions
kept as destinations. Each platform's package (``bot.slack``, ``bot.discord``) renders and transports them."""
