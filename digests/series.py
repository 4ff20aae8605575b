"""What the charts show, as plain values: the bump chart's lines, the share chart's stacks, a model's sparkline.

Missing is not zero: a model absent from a day has rank ``None`` that day (below #50), and a day the source has no
data for is ``None`` for everyone — both are drawn as gaps. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from digests.diff import ENTRANTS, listed
from digests.digest import WEEK_DAYS, Digest
from digests.labels import attribution
from digests.model import DaySnapshot, ModelInfo, Period
from digests.names import display_name, model_info

WINDOW_DAYS = 14
SPARK_DAYS = 30


@dataclass(frozen=True, slots=True)
class Line:
    permaslug: str
    name: str
    ranks: tuple[int | None, ...]
    """Rank on each day of the window; ``None``: below #50, or no data that day."""
    marker: str = ""
    """``NEW`` or ``RE-ENTRY`` when the model entered in this digest's period."""
    current_rank: int = 0
    colour: int = 0
    """Index into the palette: the model's own colour (``chart_colours``), the same on the day and week charts."""


@dataclass(frozen=True, slots=True)
class BumpSeries:
    days: tuple[date, ...]
    available: tuple[bool, ...]
    """Whether the source has data for each day."""
    lines: tuple[Line, ...]
    period_first: date
    """The first day of the digest's own period (earlier days are the comparison)."""
    title: str
    subtitle: str
    footer: str

    @property
    def missing_days(self) -> tuple[date, ...]:
        return tuple(day for day, has in zip(self.days, self.available, strict=True) if not has)


@dataclass(frozen=True, slots=True)
class ShareSeries:
    days: tuple[date, ...]
    names: tuple[str, ...]
    """The digest's top models, in rank order."""
    shares: tuple[tuple[float | None, ...], ...]
    """For each day: each top model's share of all tokens (``None``: no data that day)."""
    rest_of_list: tuple[float | None, ...]
    """The share of the other listed models (top 50 minus the top models)."""
    other: tuple[float | None, ...]
    """The share of all models outside the list (the source's ``other`` row)."""
    title: str
    subtitle: str
    footer: str
    colours: tuple[int, ...] = ()
    """Each top model's palette index (``chart_colours``)."""

    def top_share(self, index: int) -> float | None:
        """The top models' combined share on day ``index``."""
        values = [column[index] for column in self.shares]
        if any(value is None for value in values):
            return None
        return sum(value for value in values if value is not None)


@dataclass(frozen=True, slots=True)
class Sparkline:
    permaslug: str
    name: str
    days: tuple[date, ...]
    ranks: tuple[int | None, ...]
    tokens: tuple[int | None, ...]
    footer: str


PALETTE_SIZE = 10


def chart_colours(end: date, history: Sequence[DaySnapshot], top: int = 10) -> dict[str, int]:
    """A palette index per model for every chart of the digests ending at ``end``: a model in both the day's and
    the week's top ``top`` gets one colour on both charts, and no chart shows a colour twice. Models on both lists
    come first (in day order), then each list's own models take the colours left, in rank order."""
    snapshots = _by_day(history)
    day = listed(Period("day", (end,)), snapshots, top)
    week = listed(Period("week", window(end, WEEK_DAYS)), snapshots, top)
    both = [slug for slug in day if slug in week]
    colours = {slug: index for index, slug in enumerate(both)}
    spare = range(len(both), PALETTE_SIZE)  # day-only and week-only models never share a chart
    for own in (day, week):
        colours.update(zip([slug for slug in own if slug not in colours], spare, strict=False))
    return colours


def window(end: date, length: int) -> tuple[date, ...]:
    return tuple(end - timedelta(days=offset) for offset in range(length - 1, -1, -1))


def _by_day(history: Sequence[DaySnapshot]) -> dict[date, DaySnapshot]:
    return {snapshot.day: snapshot for snapshot in history}


def _as_of(snapshots: Sequence[DaySnapshot | None]) -> datetime | None:
    return max((s.as_of for s in snapshots if s is not None), default=None)


def _revised(digest: Digest) -> str:
    """`` · revised: 2026-11-28 restated on 2026-11-30`` for a revised digest, else nothing."""
    if not digest.restated:
        return ""
    return " · revised: " + ", ".join(
        f"{day.isoformat()} restated on {as_of:%Y-%m-%d}" for day, as_of in digest.restated
    )


def bump_series(digest: Digest, history: Sequence[DaySnapshot], top: int = 10) -> BumpSeries:
    """The digest's top ``top`` models over 14 days ending at its last day: for a week digest its 7 days and the 7
    before; for a day digest the last 14 days."""
    days = window(digest.period.last, WINDOW_DAYS)
    snapshots = _by_day(history)
    found = [snapshots.get(day) for day in days]
    ranks_by_day = [s.ranks() if s is not None else {} for s in found]
    colours = chart_colours(digest.period.last, history, top)
    lines = []
    for index, row in enumerate(digest.rows[:top]):
        marker = row.movement.kind.value if row.movement.kind in ENTRANTS else ""
        ranks = tuple(day_ranks.get(row.permaslug) for day_ranks in ranks_by_day)
        colour = colours.get(row.permaslug, index % PALETTE_SIZE)
        lines.append(Line(row.permaslug, display_name(row.info), ranks, marker, row.rank, colour))
    kind = "week" if digest.kind == "week" else "day"
    return BumpSeries(
        days=days,
        available=tuple(s is not None for s in found),
        lines=tuple(lines),
        period_first=digest.period.first,
        title=f"OpenRouter top {len(lines)} by tokens — rank by day, {kind} ending {digest.period.last.isoformat()}",
        subtitle=f"Source days {days[0].isoformat()} → {days[-1].isoformat()} (UTC, complete) · gaps: below #50 "
        f"or no data{_revised(digest)}",
        footer=digest.attribution,
    )


def share_series(digest: Digest, history: Sequence[DaySnapshot], top: int = 10) -> ShareSeries:
    """Each day's share of all tokens taken by the digest's top ``top`` models, the rest of the list, and
    ``other``, over the same 14 days as the bump chart."""
    days = window(digest.period.last, WINDOW_DAYS)
    snapshots = _by_day(history)
    leaders = [row.permaslug for row in digest.rows[:top]]
    shares: list[list[float | None]] = [[] for _ in leaders]
    rest: list[float | None] = []
    other: list[float | None] = []
    for day in days:
        snapshot = snapshots.get(day)
        if snapshot is None or not snapshot.total_tokens:
            for column in shares:
                column.append(None)
            rest.append(None)
            other.append(None)
            continue
        total = snapshot.total_tokens
        tokens = {row.permaslug: row.tokens for row in snapshot.rows}
        for column, slug in zip(shares, leaders, strict=True):
            column.append(tokens.get(slug, 0) / total)
        listed = sum(tokens.values())
        rest.append((listed - sum(tokens.get(slug, 0) for slug in leaders)) / total)
        other.append((snapshot.other_tokens or 0) / total)
    colours = chart_colours(digest.period.last, history, top)
    return ShareSeries(
        days=days,
        colours=tuple(colours.get(slug, index % PALETTE_SIZE) for index, slug in enumerate(leaders)),
        names=tuple(display_name(row.info) for row in digest.rows[:top]),
        shares=tuple(tuple(column) for column in shares),
        rest_of_list=tuple(rest),
        other=tuple(other),
        title=f"Share of all OpenRouter tokens per day — top {len(leaders)} of {digest.period.last.isoformat()}",
        subtitle=f"Source days {days[0].isoformat()} → {days[-1].isoformat()} (UTC, complete); 'other' = models "
        f"outside the top 50{_revised(digest)}",
        footer=digest.attribution,
    )


def sparkline(
    permaslug: str, history: Sequence[DaySnapshot], catalogue: Mapping[str, ModelInfo], end: date | None = None
) -> Sparkline:
    """One model's rank and tokens over the 30 days ending at ``end`` (default: the latest stored day)."""
    snapshots = _by_day(history)
    last = end or max(snapshots)
    days = window(last, SPARK_DAYS)
    found = [snapshots.get(day) for day in days]
    ranks = tuple(s.ranks().get(permaslug) if s is not None else None for s in found)
    tokens = tuple(
        next((row.tokens for row in s.rows if row.permaslug == permaslug), None) if s is not None else None
        for s in found
    )
    as_of = _as_of(found)
    return Sparkline(
        permaslug=permaslug,
        name=display_name(model_info(permaslug, catalogue)),
        days=days,
        ranks=ranks,
        tokens=tokens,
        footer=attribution(as_of) if as_of else "Source: OpenRouter (openrouter.ai/rankings).",
    )
