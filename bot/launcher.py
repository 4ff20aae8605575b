"""The ``rankbot`` entry point. It runs before anything heavy is imported, so a SIGTERM or Ctrl-C in the first
second (while Python loads the CLI, the database driver and the migrations) is never the default death by signal.

Signals that arrive that early are remembered. ``rankbot run`` takes them over and stops cleanly before it starts;
every other command gives them back to their defaults (``release_early_signals``) and a remembered one is delivered
again, so ``poll`` or ``backfill`` still end as an interrupted command would.
"""

from __future__ import annotations

import os
import signal
from types import FrameType

EARLY_SIGNALS = (signal.SIGTERM, signal.SIGINT)
_pending: list[int] = []


def _remember(signum: int, _frame: FrameType | None) -> None:
    _pending.append(signum)


def early_signal() -> int | None:
    """The first SIGTERM/SIGINT that arrived before a command took over signals, if any."""
    return _pending[0] if _pending else None


def release_early_signals() -> None:
    """Give SIGTERM and SIGINT back to their defaults; deliver again one that arrived early."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if _pending:
        os.kill(os.getpid(), _pending[0])


def main() -> None:
    for signum in EARLY_SIGNALS:
        signal.signal(signum, _remember)
    from bot.cli import main as cli_main

    cli_main()
