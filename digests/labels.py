"""The honest labels every digest carries (DESIGN §4): caveats and the attribution line.

Pure: no I/O.
"""

from __future__ import annotations

from datetime import datetime

from digests.numbers import format_as_of

CAVEATS = (
    "Token volume through OpenRouter only: not quality, and not usage elsewhere.",
    "Tokens from different providers' tokenizers are not strictly comparable.",
    "Only the top 50 models are listed, plus 'all other models'; a model absent from a day was below #50 that day.",
    "Figures may be restated by the source for 2–3 days after a day closes.",
    "Run-rate is an estimate: one day's (or the period's average day's) tokens × 30.",
)

LICENCE = "Licensed under CC BY 4.0."


def attribution(as_of: datetime) -> str:
    """``Source: OpenRouter (openrouter.ai/rankings), as of 2026-10-11 00:27 UTC. Licensed under CC BY 4.0.``"""
    return f"Source: OpenRouter (openrouter.ai/rankings), as of {format_as_of(as_of)}. {LICENCE}"
