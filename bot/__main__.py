"""``python -m bot`` is the ``rankbot`` command."""

from bot.cli import main

main()
