"""How numbers are written: 4.6T, 822.8B, 29.9 %, +41 %.

Pure: no I/O. One place for every figure rankbot prints, so every renderer writes them the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime

_UNITS = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))


def format_tokens(tokens: int | float) -> str:
    """``4_600_000_000_000`` → ``4.6T``; ``822_800_000_000`` → ``822.8B``; under a thousand, the plain number."""
    for size, unit in _UNITS:
        if tokens >= size * 0.9995:
            return f"{tokens / size:.1f}{unit}"
    return f"{tokens:.0f}"


def format_share(share: float) -> str:
    """``0.2993`` → ``29.9 %``; shares under 0.1 % keep two decimals so they do not read as zero."""
    percent = share * 100
    if 0 < percent < 0.1:
        return f"{percent:.2f} %"
    return f"{percent:.1f} %"


def format_change(change: float | None) -> str:
    """``0.41`` → ``+41 %``; ``-0.052`` → ``-5.2 %`` (one decimal under 10 %); ``None`` → ``n/a``."""
    if change is None:
        return "n/a"
    percent = change * 100
    digits = 1 if abs(percent) < 10 else 0
    return f"{percent:+.{digits}f} %"


def format_as_of(as_of: datetime) -> str:
    """``2026-10-11 00:27 UTC``: the data's as-of time, always in UTC."""
    return as_of.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_as_of_text(value: str) -> str:
    """An ISO ``as_of`` from a JSON document as ``2026-10-11 00:27 UTC``."""
    return format_as_of(datetime.fromisoformat(value.replace("Z", "+00:00")))


def format_usd(amount: float) -> str:
    """``1234.5`` → ``$1,234``; small amounts keep cents."""
    if amount >= 100:
        return f"${amount:,.0f}"
    return f"${amount:,.2f}"
