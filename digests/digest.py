"""The ``Digest``: everything one day or week digest says, built from stored history.

Pure: no I/O, no clock. ``build_digest`` picks the period from the history it is given (the latest complete day, or
the 7 calendar days ending there), compares it with the period before, and labels every figure honestly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from digests.diff import (
    Alert,
    Callout,
    ChartStats,
    Move,
    Movement,
    PeriodRanking,
    alerts,
    callouts,
    chart_stats,
    diff_rankings,
    listed,
    rank_period,
)
from digests.labels import CAVEATS, attribution
from digests.model import DaySnapshot, DigestSettings, ModelInfo, Period
from digests.names import display_name, model_info, variant_tags
from digests.numbers import format_as_of

WEEK_DAYS = 7
RUN_RATE_DAYS = 30


class NoDataError(LookupError):
    """The history holds no complete day to build the requested digest from."""


@dataclass(frozen=True, slots=True)
class DigestRow:
    """One model's line in a digest."""

    rank: int
    info: ModelInfo
    tags: tuple[str, ...]
    tokens: int
    """Tokens over the period's available days (a lower bound when ``days_present < days_in_period``)."""
    share: float
    days_present: int
    days_in_period: int
    movement: Movement
    stats: ChartStats

    @property
    def permaslug(self) -> str:
        return self.info.permaslug

    @property
    def lower_bound(self) -> bool:
        return self.days_present < self.days_in_period

    @property
    def tokens_per_day(self) -> float:
        return self.tokens / self.days_in_period

    @property
    def run_rate(self) -> float:
        """30-day run-rate: average day × 30. Always an estimate."""
        return self.tokens_per_day * RUN_RATE_DAYS


@dataclass(frozen=True, slots=True)
class DroppedRow:
    """A model in the previous period's list and not in this one."""

    info: ModelInfo
    previous_rank: int
    previous_tokens: int


@dataclass(frozen=True, slots=True)
class Digest:
    """A day or week digest: its period, figures, movements, call-outs, alerts, caveats and attribution."""

    kind: str
    period: Period
    available: tuple[date, ...]
    previous: Period | None
    as_of: datetime
    revision: int
    rows: tuple[DigestRow, ...]
    dropped: tuple[DroppedRow, ...]
    callouts: tuple[Callout, ...]
    alerts: tuple[Alert, ...]
    total_tokens: int
    settings: DigestSettings
    open_weights_tokens: int
    open_weights_known_tokens: int
    caveats: tuple[str, ...] = CAVEATS
    incomplete: tuple[date, ...] = ()
    """Days of the period after the latest stored day: not yet complete when the digest was built (a weekly digest
    that waited ``late_grace_hours`` for its last day and then went out with what was complete)."""
    previous_available: tuple[date, ...] = ()
    """The previous period's days that have data."""
    restated: tuple[tuple[date, datetime], ...] = ()
    """Days this digest depends on (its period and the previous one) that the source restated, with the ``as_of`` of
    their current figures. Non-empty exactly when ``revision`` > 1."""

    @property
    def id(self) -> str:
        """Stable id: kind + period + revision, e.g. ``week:2026-10-03_2026-10-09:r1``."""
        return f"{self.kind}:{self.period.slug()}:r{self.revision}"

    @property
    def missing_days(self) -> tuple[date, ...]:
        """Days of the period the source has no data for (not counting days that were not yet complete)."""
        return tuple(day for day in self.period.days if day not in self.available and day not in self.incomplete)

    @property
    def days_with_data(self) -> int:
        return len(self.available)

    @property
    def previous_missing_days(self) -> tuple[date, ...]:
        """Days of the previous period the source has no data for."""
        if self.previous is None:
            return ()
        return tuple(day for day in self.previous.days if day not in self.previous_available)

    @property
    def volume_compared(self) -> bool:
        """Volume changes are shown: the previous period has data for at least half its days."""
        return self.previous is not None and 2 * len(self.previous_available) >= len(self.previous.days)

    @property
    def comparison_label(self) -> str:
        """``Compared with source days … (UTC, complete); no data from the source for …``, and what that means for
        the volume changes."""
        if self.previous is None:
            return "No earlier period stored: every model is shown as an entrant."
        label = f"Compared with {self.previous.label().replace('Source', 'source')}"
        if self.previous_missing_days:
            label += "; no data from the source for " + ", ".join(d.isoformat() for d in self.previous_missing_days)
        if not self.volume_compared:
            have, want = len(self.previous_available), len(self.previous.days)
            return f"{label}. It has data for only {have} of its {want} days: no volume change is shown."
        if self.previous_missing_days or self.missing_days or self.incomplete:
            return f"{label}. Volume changes compare tokens per day over the days with data."
        return label + "."

    @property
    def revision_note(self) -> str | None:
        """``Revised: 2026-11-28 restated on 2026-11-30 02:00 UTC.`` for revision 2 and later."""
        if not self.restated:
            return None
        said = ", ".join(f"{day.isoformat()} restated on {format_as_of(as_of)}" for day, as_of in self.restated)
        return f"Revised (revision {self.revision}): {said}."

    @property
    def period_label(self) -> str:
        """``Source days 2026-10-03 → 2026-10-09 (UTC, complete)``, naming any day the source lacks."""
        label = self.period.label()
        if self.incomplete:
            late = ", ".join(day.isoformat() for day in self.incomplete)
            label = label.replace(", complete)", ")") + (
                f"; {late} not yet complete when this digest was published: figures cover the "
                f"{self.days_with_data} complete days"
            )
        if self.missing_days:
            missing = ", ".join(day.isoformat() for day in self.missing_days)
            label += f"; no data from the source for {missing}"
        return label

    @property
    def unit(self) -> str:
        """What a token figure in this digest counts: ``tokens on 2026-06-08`` or ``tokens over 7 days``."""
        if self.kind == "day":
            return f"tokens on {self.period.first.isoformat()}"
        return f"tokens over {self.days_with_data} days"

    @property
    def other_tokens(self) -> int:
        """Tokens of every model outside the listed rows (the source's ``other`` row and any beyond the list)."""
        return self.total_tokens - sum(row.tokens for row in self.rows)

    @property
    def top_n_share(self) -> float:
        top = self.rows[: self.settings.top_n]
        return sum(row.tokens for row in top) / self.total_tokens if self.total_tokens else 0.0

    @property
    def open_weights_share(self) -> float | None:
        """Share of all tokens on open-weights models, as far as the catalogue tells; ``None`` if it tells nothing."""
        if not self.open_weights_known_tokens or not self.total_tokens:
            return None
        return self.open_weights_tokens / self.total_tokens

    @property
    def attribution(self) -> str:
        return attribution(self.as_of)

    def name_of(self, permaslug: str) -> str:
        """The display name (with variant tags) of a model in this digest."""
        for info in [*(row.info for row in self.rows), *(dropped.info for dropped in self.dropped)]:
            if info.permaslug == permaslug:
                return display_name(info)
        return permaslug


def _periods(kind: str, days: Sequence[date], end: date) -> tuple[Period, Period | None]:
    if kind == "day":
        earlier = [day for day in days if day < end]
        return Period("day", (end,)), Period("day", (earlier[-1],)) if earlier else None
    if kind == "week":
        week = tuple(end - timedelta(days=offset) for offset in range(WEEK_DAYS - 1, -1, -1))
        before = tuple(day - timedelta(days=WEEK_DAYS) for day in week)
        return Period("week", week), Period("week", before)
    raise ValueError(f"unknown digest kind {kind!r}: use 'day' or 'week'")


def _rows(
    current: PeriodRanking,
    movements: Sequence[Movement],
    stats: Mapping[str, ChartStats],
    catalogue: Mapping[str, ModelInfo],
) -> tuple[DigestRow, ...]:
    by_slug = {m.permaslug: m for m in movements}
    days = len(current.available)
    return tuple(
        DigestRow(
            rank=standing.rank,
            info=model_info(standing.permaslug, catalogue),
            tags=variant_tags(standing.permaslug),
            tokens=standing.tokens,
            share=standing.tokens / current.total_tokens if current.total_tokens else 0.0,
            days_present=standing.days_present,
            days_in_period=days,
            movement=by_slug[standing.permaslug],
            stats=stats[standing.permaslug],
        )
        for standing in current.standings
    )


def _on_earlier_lists(period: Period, snapshots: Mapping[date, DaySnapshot], list_size: int) -> frozenset[str]:
    """Every model on an earlier list of the same kind: an earlier day's top 50 for a day, the top list of an
    earlier week (the weeks ending 7, 14, … days before this one) for a week."""
    first = min(snapshots)
    if period.kind == "day":
        return frozenset(row.permaslug for day, s in snapshots.items() if day < period.first for row in s.rows)
    seen: set[str] = set()
    shift = timedelta(days=WEEK_DAYS)
    earlier = Period("week", tuple(day - shift for day in period.days))
    while earlier.last >= first:
        seen.update(listed(earlier, snapshots, list_size))
        earlier = Period("week", tuple(day - shift for day in earlier.days))
    return frozenset(seen)


def build_digest(
    kind: str,
    history: Sequence[DaySnapshot],
    catalogue: Mapping[str, ModelInfo],
    settings: DigestSettings,
    end: date | None = None,
) -> Digest:
    """Build the ``day`` or ``week`` digest ending at ``end`` (default: the latest day in ``history``).

    ``history`` is every stored complete day, in any order; days after ``end`` are ignored. A week may end after the
    latest stored day (its last days not yet complete): its figures then cover the days that are, and say so. The
    revision counts restatements of every day the digest depends on: its period and the one it is compared with.
    """
    snapshots = {snapshot.day: snapshot for snapshot in history if end is None or snapshot.day <= end}
    if not snapshots:
        raise NoDataError("no complete day is stored yet: run `rankbot poll` or `rankbot backfill` first")
    last = end or max(snapshots)
    latest = max(snapshots)
    if last not in snapshots and not (kind == "week" and last - latest < timedelta(days=WEEK_DAYS)):
        raise NoDataError(f"{last.isoformat()} is not a stored complete day")
    period, previous_period = _periods(kind, sorted(snapshots), last)
    current = rank_period(period, snapshots, settings.list_size)
    previous = rank_period(previous_period, snapshots, settings.list_size) if previous_period else None
    if previous is not None and not previous.available:
        previous = None
    seen_before = _on_earlier_lists(period, snapshots, settings.list_size)
    movements = diff_rankings(current, previous, seen_before, settings.tie_band)
    rows = _rows(current, movements, chart_stats(snapshots.values()), catalogue)
    dropped = tuple(
        DroppedRow(model_info(m.permaslug, catalogue), m.previous_rank or 0, m.previous_tokens or 0)
        for m in movements
        if m.kind is Move.DROPPED
    )
    sources = [snapshots[day] for day in current.available]
    compared = [snapshots[day] for day in previous.available] if previous else []
    restated = tuple((s.day, s.as_of) for s in sorted([*compared, *sources], key=lambda s: s.day) if s.revision > 1)
    known = [row for row in rows if row.info.open_weights is not None]
    return Digest(
        kind=kind,
        period=period,
        available=current.available,
        previous=previous.period if previous else None,
        as_of=max(snapshot.as_of for snapshot in sources),
        revision=1 + sum(snapshot.revision - 1 for snapshot in [*sources, *compared]),
        rows=rows,
        dropped=dropped,
        callouts=callouts(movements),
        alerts=alerts(movements, settings),
        total_tokens=current.total_tokens,
        settings=settings,
        open_weights_tokens=sum(row.tokens for row in known if row.info.open_weights),
        open_weights_known_tokens=sum(row.tokens for row in known),
        incomplete=tuple(day for day in period.days if day > latest),
        previous_available=previous.available if previous else (),
        restated=restated,
    )
