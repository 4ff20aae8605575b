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
from functools import partial

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

    @property
    def missing(self) -> tuple[date, ...]:
        """The period's days the source has no data for."""
        return tuple(day for day in self.period.days if day not in self.available)

    @property
    def mostly_present(self) -> bool:
        """Data for at least half the period's days: enough to compare volumes with."""
        return 2 * len(self.available) >= len(self.period.days)


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
    days: int = 1
    """Days with data in this period: ``tokens`` is their sum."""
    previous_days: int = 1
    """Days with data in the previous period: ``previous_tokens`` is their sum."""
    volume_comparable: bool = True
    """False when the previous period has data for fewer than half its days: no volume change is shown."""

    @property
    def delta(self) -> int:
        """Places gained (positive) or lost (negative); 0 when not ranked in both periods."""
        if self.rank is None or self.previous_rank is None:
            return 0
        return self.previous_rank - self.rank

    @property
    def volume_change(self) -> float | None:
        """Relative change in tokens per day with data, e.g. ``0.41`` for +41 % (a week of 7 days against one of 6
        compares averages, not sums); ``None`` when not comparable."""
        if not self.tokens or not self.previous_tokens or not self.volume_comparable:
            return None
        return (self.tokens / self.days) / (self.previous_tokens / self.previous_days) - 1

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


def _summed(days: Sequence[date], snapshots: Mapping[date, DaySnapshot]) -> tuple[dict[str, int], dict[str, int]]:
    """Each model's tokens over ``days`` (those stored), and on how many of them it was listed."""
    tokens: dict[str, int] = {}
    present: dict[str, int] = {}
    for day in days:
        for row in snapshots[day].rows if day in snapshots else ():
            tokens[row.permaslug] = tokens.get(row.permaslug, 0) + row.tokens
            present[row.permaslug] = present.get(row.permaslug, 0) + 1
    return tokens, present


def _top(tokens: Mapping[str, int], list_size: int) -> list[str]:
    return sorted(tokens, key=lambda slug: (-tokens[slug], slug))[:list_size]


def listed(period: Period, snapshots: Mapping[date, DaySnapshot], list_size: int) -> list[str]:
    """The permaslugs on the period's list, in rank order (``rank_period`` without the figures)."""
    tokens: dict[str, int] = {}
    for day in period.days:
        for row in snapshots[day].rows if day in snapshots else ():
            tokens[row.permaslug] = tokens.get(row.permaslug, 0) + row.tokens
    return _top(tokens, list_size)


def rank_period(period: Period, snapshots: Mapping[date, DaySnapshot], list_size: int) -> PeriodRanking:
    """Rank the models of a period by tokens over its available days (ties by permaslug)."""
    available = tuple(day for day in period.days if day in snapshots)
    tokens, present = _summed(available, snapshots)
    total = sum(snapshots[day].total_tokens for day in available)
    standings = tuple(
        Standing(slug, rank, tokens[slug], present[slug]) for rank, slug in enumerate(_top(tokens, list_size), start=1)
    )
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

    ``seen_before`` holds every permaslug on an earlier list of the same kind (an earlier day's top 50 for a day
    list, an earlier week's for a week list); one absent from it is ``NEW``, one present but missing from the
    previous list is a ``RE-ENTRY``. Volumes are compared per day with data in each period, and not at all when the
    previous period has data for fewer than half its days.
    """
    before = previous.by_permaslug() if previous else {}
    moved = partial(
        Movement,
        days=len(current.available),
        previous_days=len(previous.available) if previous and previous.available else 1,
        volume_comparable=previous is None or previous.mostly_present,
    )
    movements: list[Movement] = []
    for standing in current.standings:
        old = before.get(standing.permaslug)
        if old is None:
            kind = Move.REENTRY if standing.permaslug in seen_before else Move.NEW
            movements.append(moved(standing.permaslug, kind, standing.rank, None, standing.tokens, None))
            continue
        delta = old.rank - standing.rank
        kind = Move.UP if delta > 0 else Move.DOWN if delta < 0 else Move.SAME
        noise = _is_noise(standing, delta, current.standings, tie_band)
        movements.append(moved(standing.permaslug, kind, standing.rank, old.rank, standing.tokens, old.tokens, noise))
    now = current.by_permaslug()
    for old in previous.standings if previous else ():
        if old.permaslug not in now:
            movements.append(moved(old.permaslug, Move.DROPPED, None, old.rank, None, old.tokens))
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
        if snapshot.rows:
            leader = snapshot.rows[0].permaslug
            at_one[leader] = at_one.get(leader, 0) + 1
        for rank, row in enumerate(snapshot.rows, start=1):
            slug = row.permaslug
            if slug in days:
                days[slug] += 1
                if rank < peak[slug]:
                    peak[slug] = rank
            else:
                days[slug] = 1
                peak[slug] = rank
    return {slug: ChartStats(peak[slug], days[slug], at_one.get(slug, 0)) for slug in peak}
