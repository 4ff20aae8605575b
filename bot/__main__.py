"""``python -m bot`` is the ``rankbot`` command."""

from bot.launcher import main

main()
