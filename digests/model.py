"""Value objects of the rankings domain.

Pure: no I/O, no clock. Every type is a frozen dataclass, so values compare with ``==`` and can be shared freely.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

OTHER = "other"
"""The permaslug of OpenRouter's aggregated row for every model outside the day's top 50."""

MAX_TOKENS = 2**63 - 1
"""Token counts are stored as signed 64-bit integers; the source's largest rows are near 7.5e12."""


@dataclass(frozen=True, slots=True)
class ModelTokens:
    """One ranked row of one day: a model and the tokens it processed."""

    permaslug: str
    tokens: int


@dataclass(frozen=True, slots=True)
class DaySnapshot:
    """The complete rankings of one UTC source day, as the source reported them at ``as_of``.

    ``rows`` holds the ranked models in rank order (tokens descending, ties by permaslug); ``other_tokens`` is the
    aggregated ``other`` row (``None`` when the source sent none). ``revision`` counts restatements, starting at 1.
    """

    day: date
    rows: tuple[ModelTokens, ...]
    other_tokens: int | None
    as_of: datetime
    revision: int = 1

    @classmethod
    def of(
        cls,
        day: date,
        tokens: Iterable[tuple[str, int]],
        as_of: datetime,
        revision: int = 1,
    ) -> DaySnapshot:
        """Build a snapshot from unordered ``(permaslug, tokens)`` pairs, ``other`` included, ranking them."""
        other: int | None = None
        ranked: list[ModelTokens] = []
        for permaslug, count in tokens:
            if permaslug == OTHER:
                other = count
            else:
                ranked.append(ModelTokens(permaslug, count))
        ranked.sort(key=lambda row: (-row.tokens, row.permaslug))
        return cls(day=day, rows=tuple(ranked), other_tokens=other, as_of=as_of, revision=revision)

    @property
    def total_tokens(self) -> int:
        """All tokens of the day, ``other`` included: the denominator of every share."""
        return sum(row.tokens for row in self.rows) + (self.other_tokens or 0)

    def ranks(self) -> dict[str, int]:
        """Rank (1-based) of every ranked model of the day."""
        return {row.permaslug: position for position, row in enumerate(self.rows, start=1)}

    def same_figures(self, other: DaySnapshot) -> bool:
        """True when both snapshots hold the same rows and tokens, whatever their ``as_of`` or revision."""
        return self.day == other.day and self.rows == other.rows and self.other_tokens == other.other_tokens


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the catalogue (or, failing that, the permaslug) says about a model."""

    permaslug: str
    name: str
    author: str
    context_length: int | None = None
    prompt_price: float | None = None
    """USD per token."""
    completion_price: float | None = None
    """USD per token."""
    open_weights: bool | None = None
    """True when the catalogue names a Hugging Face repository; ``None`` when unknown."""
    in_catalogue: bool = False


@dataclass(frozen=True, slots=True)
class Restatement:
    """One row of a stored complete day that the source changed on a later fetch."""

    day: date
    permaslug: str
    old_tokens: int | None
    new_tokens: int | None
    as_of: datetime


@dataclass(frozen=True, slots=True)
class DigestSettings:
    """The knobs of the diff engine (DESIGN §3), with the documented defaults."""

    top_n: int = 10
    jump_threshold: int = 3
    tie_band: float = 0.02
    list_size: int = 50
    caveats_url: str = "https://openrouter.ai/rankings"


@dataclass(frozen=True, slots=True)
class Period:
    """A run of consecutive complete source days: one day, or a week of seven."""

    kind: str
    """``"day"`` or ``"week"``."""
    days: tuple[date, ...] = field(default_factory=tuple)

    @property
    def first(self) -> date:
        return self.days[0]

    @property
    def last(self) -> date:
        return self.days[-1]

    def label(self) -> str:
        """The honest source-day label, e.g. ``Source days 2026-10-03 → 2026-10-09 (UTC, complete)``."""
        if len(self.days) == 1:
            return f"Source day {self.first.isoformat()} (UTC, complete)"
        return f"Source days {self.first.isoformat()} → {self.last.isoformat()} (UTC, complete)"

    def slug(self) -> str:
        """A file-name-safe name of the period: ``2026-10-09`` or ``2026-10-03_2026-10-09``."""
        if len(self.days) == 1:
            return self.first.isoformat()
        return f"{self.first.isoformat()}_{self.last.isoformat()}"
