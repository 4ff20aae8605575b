"""The diff engine (DESIGN §3): hand-built cases compared with ``==``, and Hypothesis properties."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from digests.diff import Move, alerts, callouts, chart_stats, diff_rankings, rank_period
from digests.digest import build_digest
from digests.model import DaySnapshot, DigestSettings, Period

AS_OF = datetime(2026, 10, 11, 0, 27, tzinfo=UTC)
D0 = date(2026, 10, 1)
SETTINGS = DigestSettings(top_n=3, jump_threshold=2, tie_band=0.02, list_size=5)


def day(offset: int, tokens: dict[str, int], other: int = 1000) -> DaySnapshot:
    return DaySnapshot.of(D0 + timedelta(days=offset), [*tokens.items(), ("other", other)], AS_OF)


def kinds(digest_rows: object) -> dict[str, str]:
    return {row.permaslug: row.movement.marker for row in digest_rows}  # type: ignore[attr-defined]


def test_day_movements_new_reentry_dropped_and_rank_changes() -> None:
    """Each model gets the right marker: ▲/▼/=, NEW (never stored), RE-ENTRY (seen before), DROPPED."""
    history = [
        day(0, {"a": 100, "b": 90, "gone": 80, "c": 70}),
        day(1, {"a": 100, "b": 90, "c": 70, "d": 60}),
        day(2, {"c": 300, "a": 100, "gone": 95, "new": 91, "b": 10}),
    ]
    digest = build_digest("day", history, {}, SETTINGS)
    assert kinds(digest.rows) == {"c": "▲2", "a": "▼1", "gone": "RE-ENTRY", "new": "NEW", "b": "▼3"}
    assert [(d.info.permaslug, d.previous_rank) for d in digest.dropped] == [("d", 4)]
    assert [c.title for c in digest.callouts] == [
        "NEW #1", "Biggest climber", "Biggest faller", "Biggest gainer", "Hot-shot debut"
    ]  # fmt: skip
    assert digest.callouts[0].permaslug == "c"
    reasons = {a.permaslug: a.reason for a in digest.alerts}
    assert reasons["c"] == "NEW #1: #3 → #1"
    assert reasons["gone"] == "RE-ENTRY at #3, inside the top 3"
    assert reasons["b"] == "▼3: #2 → #5, -89 % volume; threshold 2"
    assert "new" not in reasons  # entered at #4, outside the top 3


def test_near_tie_swap_is_not_notable() -> None:
    """A one-place swap between neighbours within the tie band is noise, even with threshold 1."""
    history = [day(0, {"a": 1000, "b": 995, "c": 500}), day(1, {"b": 1000, "a": 995, "c": 500})]
    tight = DigestSettings(top_n=3, jump_threshold=1, tie_band=0.02, list_size=5)
    digest = build_digest("day", history, {}, tight)
    by_slug = {row.permaslug: row.movement for row in digest.rows}
    assert by_slug["b"].noise and by_slug["a"].noise
    assert [a.reason for a in digest.alerts] == ["NEW #1: #2 → #1"]  # a new #1 is always notable
    wide = build_digest("day", [day(0, {"a": 1000, "b": 900}), day(1, {"b": 1000, "a": 900})], {}, tight)
    assert not any(row.movement.noise for row in wide.rows)


def test_week_totals_are_lower_bounds_where_a_model_was_absent() -> None:
    """Missing is not zero: a model in the top list on 5 of 7 days has a lower-bound total and says so."""
    history = [day(i, {"a": 100, "b": 50, **({"c": 10} if i % 7 not in (1, 2) else {})}) for i in range(14)]
    digest = build_digest("week", history, {}, SETTINGS)
    c = next(row for row in digest.rows if row.permaslug == "c")
    assert (c.days_present, c.days_in_period, c.lower_bound) == (5, 7, True)
    assert digest.period.label() == "Source days 2026-10-08 → 2026-10-14 (UTC, complete)"
    assert digest.previous == Period("week", tuple(D0 + timedelta(days=i) for i in range(7)))
    assert digest.unit == "tokens over 7 days"


def test_week_with_a_missing_source_day_names_it() -> None:
    """A calendar day the source lacks is named in the label, and averages use the days with data."""
    history = [day(i, {"a": 100}) for i in range(14) if i != 10]
    digest = build_digest("week", history, {}, SETTINGS)
    assert digest.missing_days == (date(2026, 10, 11),)
    assert "no data from the source for 2026-10-11" in digest.period_label
    assert digest.rows[0].tokens_per_day == 100


def test_chart_stats() -> None:
    """Peak rank, days in the top 50 and days at #1 over the history."""
    history = [day(0, {"a": 9, "b": 5}), day(1, {"b": 9, "a": 5}), day(2, {"b": 9, "c": 1})]
    stats = chart_stats(history)
    assert (stats["a"].peak_rank, stats["a"].days_in_top, stats["a"].days_at_1) == (1, 2, 1)
    assert (stats["b"].peak_rank, stats["b"].days_in_top, stats["b"].days_at_1) == (1, 3, 2)
    assert (stats["c"].peak_rank, stats["c"].days_in_top, stats["c"].days_at_1) == (2, 1, 0)


def test_first_day_has_no_previous_and_everything_is_new() -> None:
    """With no earlier period stored, every model is NEW and no NEW #1 is claimed."""
    digest = build_digest("day", [day(0, {"a": 9, "b": 5})], {}, SETTINGS)
    assert digest.previous is None
    assert {row.movement.kind for row in digest.rows} == {Move.NEW}
    assert all(c.title != "NEW #1" for c in digest.callouts)


# -- properties ---------------------------------------------------------------------------------------------
SLUGS = [f"lab/m{i}" for i in range(12)]


@st.composite
def snapshots(draw: st.DrawFn, offset: int) -> DaySnapshot:
    chosen = draw(st.lists(st.sampled_from(SLUGS), min_size=1, max_size=len(SLUGS), unique=True))
    counts = draw(st.lists(st.integers(0, 8 * 10**12), min_size=len(chosen), max_size=len(chosen)))
    other = draw(st.none() | st.integers(0, 10**12))
    rows = list(zip(chosen, counts, strict=True))
    return DaySnapshot.of(D0 + timedelta(days=offset), rows + ([("other", other)] if other is not None else []), AS_OF)


@st.composite
def histories(draw: st.DrawFn) -> list[DaySnapshot]:
    length = draw(st.integers(1, 16))
    return [draw(snapshots(i)) for i in range(length)]


@given(histories(), st.sampled_from(["day", "week"]))
@settings(max_examples=150, deadline=None)
def test_properties_of_a_digest(history: list[DaySnapshot], kind: str) -> None:
    """Ranks are a permutation; entrants and drop-outs are the set differences; totals are conserved;
    results do not depend on the order the history is given in."""
    digest = build_digest(kind, history, {}, SETTINGS)
    assert [row.rank for row in digest.rows] == list(range(1, len(digest.rows) + 1))
    assert sum(row.tokens for row in digest.rows) + digest.other_tokens == digest.total_tokens
    by_day = {s.day: s for s in history}
    assert digest.total_tokens == sum(by_day[d].total_tokens for d in digest.available)
    current = {row.permaslug for row in digest.rows}
    if digest.previous is not None:
        previous = {s.permaslug for s in rank_period(digest.previous, by_day, SETTINGS.list_size).standings}
        entrants = {row.permaslug for row in digest.rows if row.movement.kind in (Move.NEW, Move.REENTRY)}
        assert entrants == current - previous
        assert {d.info.permaslug for d in digest.dropped} == previous - current
    shuffled = history[:]
    random.Random(len(history)).shuffle(shuffled)
    assert build_digest(kind, shuffled, {}, SETTINGS) == digest


@given(histories())
@settings(max_examples=100, deadline=None)
def test_diff_of_a_period_with_itself_has_no_movements(history: list[DaySnapshot]) -> None:
    """Comparing a ranking with itself: every model ``=``, nothing dropped, no alerts, no call-outs."""
    by_day = {s.day: s for s in history}
    period = Period("day", (history[-1].day,))
    ranking = rank_period(period, by_day, SETTINGS.list_size)
    seen = frozenset(SLUGS)
    movements = diff_rankings(ranking, ranking, seen, SETTINGS.tie_band)
    assert {m.kind for m in movements} <= {Move.SAME}
    assert len(movements) == len(ranking.standings)
    assert alerts(movements, SETTINGS) == ()
    assert callouts(movements) == ()
