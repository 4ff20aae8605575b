"""The diff engine: what moved between two periods (DESIGN §3).

Pure: no I/O, no clock. ``rank_period`` turns day snapshots into one ranked list; ``diff_rankings`` compares two
lists and returns one ``Movement`` per model; ``callouts`` and ``alerts`` pick out what is worth saying.
Missing is not zero: a model absent from a day was below #50 that day, so period totals over such days are lower
bounds and carry ``days_present``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from digests.model import DaySnapshot, DigestSettings, Period
from digests.numbers import format_change


class Move(StrEnum):
    NEW = "NEW"
    REENTRY = "RE-ENTRY"
    UP = "UP"
    DOWN = "DOWN"
    SAME = "SAME"
    DROPPED = "DROPPED"


ENTRANTS = frozenset({Move.NEW, Move.REENTRY})


@dataclass(frozen=True, slots=True)
class Standing:
    """A model's place in a period's ranked list."""

    permaslug: str
    rank: int
    tokens: int
    days_present: int

    def lower_bound(self, days_in_period: int) -> bool:
        """True when the model was below #50 on some day, so ``tokens`` is a lower bound."""
        return self.days_present < days_in_period


@dataclass(frozen=True, slots=True)
class PeriodRanking:
    """A period's ranked list: the top ``list_size`` models by tokens summed over the days with data."""

    period: Period
    available: tuple[date, ...]
    """The period's days that have data (a calendar day can be missing from the source)."""
    standings: tuple[Standing, ...]
    total_tokens: int
    """All tokens of the available days, ``other`` and models beyond the list included."""

    def by_permaslug(self) -> dict[str, Standing]:
        return {standing.permaslug: standing for standing in self.standings}


@dataclass(frozen=True, slots=True)
class Movement:
    """How one model moved from the previous period's list to this one."""

    permaslug: str
    kind: Move
    rank: int | None
    """Rank in this period; ``None`` for ``DROPPED``."""
    previous_rank: int | None
    tokens: int | None
    previous_tokens: int | None
    noise: bool = False
    """A swap with a neighbour whose volume is within the tie band: not a notable jump."""

    @property
    def delta(self) -> int:
        """Places gained (positive) or lost (negative); 0 when not ranked in both periods."""
        if self.rank is None or self.previous_rank is None:
            return 0
        return self.previous_rank - self.rank

    @property
    def volume_change(self) -> float | None:
        """Relative change in tokens, e.g. ``0.41`` for +41 %; ``None`` when not comparable."""
        if not self.tokens or not self.previous_tokens:
            return None
        return self.tokens / self.previous_tokens - 1

    @property
    def marker(self) -> str:
        """The short marker shown beside a row: ``▲3``, ``▼2``, ``=``, ``NEW``, ``RE-ENTRY``, ``DROPPED``."""
        if self.kind is Move.UP:
            return f"▲{self.delta}"
        if self.kind is Move.DOWN:
            return f"▼{-self.delta}"
        if self.kind is Move.SAME:
            return "="
        return self.kind.value


@dataclass(frozen=True, slots=True)
class Callout:
    """A headline of the digest: NEW #1, biggest climber, faller, gainer, hot-shot debut."""

    title: str
    permaslug: str
    detail: str


@dataclass(frozen=True, slots=True)
class Alert:
    """A notable movement and why it fired, e.g. ``▲7: #12 → #5, +41 % volume; threshold 3``."""

    permaslug: str
    reason: str


@dataclass(frozen=True, slots=True)
class ChartStats:
    """A model's chart career up to the digest's last day."""

    peak_rank: int
    days_in_top: int
    days_at_1: int


def rank_period(period: Period, snapshots: Mapping[date, DaySnapshot], list_size: int) -> PeriodRanking:
    """Rank the models of a period by tokens over its available days (ties by permaslug)."""
    available = tuple(day for day in period.days if day in snapshots)
    tokens: dict[str, int] = {}
    present: dict[str, int] = {}
    total = 0
    for day in available:
        snapshot = snapshots[day]
        total += snapshot.total_tokens
        for row in snapshot.rows:
            tokens[row.permaslug] = tokens.get(row.permaslug, 0) + row.tokens
            present[row.permaslug] = present.get(row.permaslug, 0) + 1
    order = sorted(tokens, key=lambda slug: (-tokens[slug], slug))[:list_size]
    standings = tuple(Standing(slug, rank, tokens[slug], present[slug]) for rank, slug in enumerate(order, start=1))
    return PeriodRanking(period, available, standings, total)


def _is_noise(standing: Standing, delta: int, by_rank: Sequence[Standing], tie_band: float) -> bool:
    """A one-place swap with the neighbour it traded places with, whose volume is within ``tie_band``."""
    if abs(delta) != 1:
        return False
    neighbour_index = standing.rank if delta > 0 else standing.rank - 2
    if not 0 <= neighbour_index < len(by_rank):
        return False
    neighbour = by_rank[neighbour_index].tokens
    larger = max(neighbour, standing.tokens)
    return larger > 0 and abs(neighbour - standing.tokens) / larger < tie_band


def diff_rankings(
    current: PeriodRanking, previous: PeriodRanking | None, seen_before: frozenset[str], tie_band: float
) -> tuple[Movement, ...]:
    """One movement per model of the current list (in rank order), then one per drop-out (in previous order).

    ``seen_before`` holds every permaslug stored before the current period; one absent from it is ``NEW``, one
    present but missing from the previous list is a ``RE-ENTRY``.
    """
    before = previous.by_permaslug() if previous else {}
    movements: list[Movement] = []
    for standing in current.standings:
        old = before.get(standing.permaslug)
        if old is None:
            kind = Move.REENTRY if standing.permaslug in seen_before else Move.NEW
            movements.append(Movement(standing.permaslug, kind, standing.rank, None, standing.tokens, None))
            continue
        delta = old.rank - standing.rank
        kind = Move.UP if delta > 0 else Move.DOWN if delta < 0 else Move.SAME
        noise = _is_noise(standing, delta, current.standings, tie_band)
        movements.append(
            Movement(standing.permaslug, kind, standing.rank, old.rank, standing.tokens, old.tokens, noise)
        )
    now = current.by_permaslug()
    for old in previous.standings if previous else ():
        if old.permaslug not in now:
            movements.append(Movement(old.permaslug, Move.DROPPED, None, old.rank, None, old.tokens))
    return tuple(movements)


def callouts(movements: Sequence[Movement]) -> tuple[Callout, ...]:
    """The headlines: NEW #1, biggest climber and faller (places), biggest gainer (volume %), hot-shot debut."""
    found: list[Callout] = []
    ranked = [m for m in movements if m.rank is not None]
    leader = next((m for m in ranked if m.rank == 1), None)
    if leader is not None and leader.previous_rank != 1 and any(m.previous_rank == 1 for m in movements):
        was = f"#{leader.previous_rank}" if leader.previous_rank else leader.marker
        found.append(Callout("NEW #1", leader.permaslug, f"was {was}"))
    moved = [m for m in ranked if m.delta != 0]
    if climbers := [m for m in moved if m.delta > 0]:
        top = max(climbers, key=lambda m: (m.delta, -(m.rank or 0)))
        found.append(Callout("Biggest climber", top.permaslug, f"{top.marker}: #{top.previous_rank} → #{top.rank}"))
    if fallers := [m for m in moved if m.delta < 0]:
        low = min(fallers, key=lambda m: (m.delta, m.rank or 0))
        found.append(Callout("Biggest faller", low.permaslug, f"{low.marker}: #{low.previous_rank} → #{low.rank}"))
    if gainers := [m for m in ranked if m.volume_change is not None and m.volume_change > 0]:
        gain = max(gainers, key=lambda m: (m.volume_change or 0.0, -(m.rank or 0)))
        found.append(Callout("Biggest gainer", gain.permaslug, f"{format_change(gain.volume_change)} volume"))
    if debuts := [m for m in ranked if m.kind is Move.NEW]:
        debut = min(debuts, key=lambda m: m.rank or 0)
        found.append(Callout("Hot-shot debut", debut.permaslug, f"entered at #{debut.rank}"))
    return tuple(found)


def _jump_reason(movement: Movement, threshold: int) -> str:
    change = movement.volume_change
    volume = f", {format_change(change)} volume" if change is not None else ""
    route = f"#{movement.previous_rank} → #{movement.rank}"
    return f"{movement.marker}: {route}{volume}; threshold {threshold}"


def alerts(movements: Sequence[Movement], settings: DigestSettings) -> tuple[Alert, ...]:
    """The notable movements and why each fired: a new #1, an entrant in the top N, a jump of at least
    ``jump_threshold`` places within the top N (not a near-tie swap), a drop-out from the top N."""
    found: list[Alert] = []
    top = settings.top_n
    had_leader = any(m.previous_rank == 1 for m in movements)
    for m in movements:
        in_top = (m.rank is not None and m.rank <= top) or (m.previous_rank is not None and m.previous_rank <= top)
        if m.rank == 1 and m.previous_rank != 1 and had_leader:
            was = f"#{m.previous_rank}" if m.previous_rank else m.marker
            found.append(Alert(m.permaslug, f"NEW #1: {was} → #1"))
        elif m.kind in ENTRANTS and m.rank is not None and m.rank <= top:
            found.append(Alert(m.permaslug, f"{m.marker} at #{m.rank}, inside the top {top}"))
        elif m.kind is Move.DROPPED and in_top:
            found.append(Alert(m.permaslug, f"DROPPED out of the top 50 from #{m.previous_rank}"))
        elif in_top and abs(m.delta) >= settings.jump_threshold and not m.noise:
            found.append(Alert(m.permaslug, _jump_reason(m, settings.jump_threshold)))
    return tuple(found)


def chart_stats(history: Iterable[DaySnapshot]) -> dict[str, ChartStats]:
    """Peak rank, days in the top 50 and days at #1 of every model in ``history``."""
    peak: dict[str, int] = {}
    days: dict[str, int] = {}
    at_one: dict[str, int] = {}
    for snapshot in history:
        for rank, row in enumerate(snapshot.rows, start=1):
            slug = row.permaslug
            peak[slug] = min(peak.get(slug, rank), rank)
            days[slug] = days.get(slug, 0) + 1
            if rank == 1:
                at_one[slug] = at_one.get(slug, 0) + 1
    return {slug: ChartStats(peak[slug], days[slug], at_one.get(slug, 0)) for slug in peak}
