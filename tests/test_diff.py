"""The diff engine (DESIGN §3): hand-built cases compared with ``==``, and Hypothesis properties."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from digests.diff import Move, alerts, callouts, chart_stats, diff_rankings, rank_period
from digests.digest import build_digest
from digests.model import DaySnapshot, DigestSettings, Period
from digests.render.document import digest_document
from digests.render.text import render_text
from digests.series import bump_series, share_series

AS_OF = datetime(2026, 10, 11, 0, 27, tzinfo=UTC)
D0 = date(2026, 10, 1)
SETTINGS = DigestSettings(top_n=3, jump_threshold=2, tie_band=0.02, list_size=5)
SLUGS_FOR_GAPS = ["a", "b", "c", "d"]


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


def test_a_week_compared_with_a_week_missing_a_day_compares_tokens_per_day() -> None:
    """The real history lacks 2025-06-15: a week of 7 days against one of 6 is compared per day with data, so a
    model with the same tokens every day has no volume change (a sum would say +17 %), and the gap is named."""
    history = [day(i, {"a": 700, "b": 300}) for i in range(14) if i != 6]
    digest = build_digest("week", history, {}, SETTINGS)
    assert {row.permaslug: row.movement.volume_change for row in digest.rows} == {"a": 0.0, "b": 0.0}
    assert digest.comparison_label == (
        "Compared with source days 2026-10-01 → 2026-10-07 (UTC, complete); no data from the source for 2026-10-07. "
        "Volume changes compare tokens per day over the days with data."
    )
    document = digest_document(digest)
    assert len(document["previous_period"]["days_with_data"]) == 6
    assert document["previous_period"]["missing_days"] == ["2026-10-07"]
    assert document["previous_period"]["volume_changes_shown"] is True
    assert "Compared with source days 2026-10-01 → 2026-10-07 (UTC, complete); no data" in render_text(digest)


def test_no_volume_change_against_a_previous_week_with_fewer_than_half_its_days() -> None:
    """A week after a short backfill has one stored day of the week before: ranks are compared, volumes are not
    (no "+935 %")."""
    history = [day(6, {"a": 100, "b": 300})] + [day(i, {"a": 700, "b": 300, "c": 50}) for i in range(7, 14)]
    digest = build_digest("week", history, {}, SETTINGS)
    assert [row.movement.marker for row in digest.rows] == ["▲1", "▼1", "NEW"]
    assert all(row.movement.volume_change is None for row in digest.rows)
    assert all(c.title != "Biggest gainer" for c in digest.callouts)
    assert digest.comparison_label.endswith("It has data for only 1 of its 7 days: no volume change is shown.")
    assert digest_document(digest)["previous_period"]["volume_changes_shown"] is False


@given(
    per_day=st.dictionaries(st.sampled_from(SLUGS_FOR_GAPS), st.integers(1, 10**12), min_size=1),
    gone=st.sets(st.integers(0, 13), max_size=5),
)
@settings(max_examples=100, deadline=None)
def test_the_same_tokens_every_day_never_show_a_volume_change_whatever_days_are_missing(
    per_day: dict[str, int], gone: set[int]
) -> None:
    history = [day(i, per_day) for i in range(14) if i not in gone or i == 13]
    digest = build_digest("week", history, {}, DigestSettings(list_size=50))
    for row in digest.rows:
        change = row.movement.volume_change
        assert change is None or abs(change) < 1e-9, (row.permaslug, change)


def test_new_and_re_entry_are_about_lists_of_the_same_kind() -> None:
    """`x` was on one day's list inside the previous week but never on a weekly list: in the week digest it is
    NEW (not RE-ENTRY); `y` was on the weekly list two weeks ago, not last week: RE-ENTRY. In the day digest `x`,
    seen on an earlier day's list, is a RE-ENTRY."""
    top = {f"m{n}": 1000 - n for n in range(5)}  # five models fill the week lists (list_size 5)
    history = [
        *(day(i, {**top, "y": 2000}) for i in range(7)),
        *(day(i, {**top, "x": 1200} if i == 10 else top) for i in range(7, 14)),
        *(day(i, {"x": 5000, "y": 4000, **top}) for i in range(14, 21)),
    ]
    week = build_digest("week", history, {}, SETTINGS)
    assert {row.permaslug: row.movement.kind for row in week.rows if row.permaslug in "xy"} == {
        "x": Move.NEW,
        "y": Move.REENTRY,
    }
    assert [c.permaslug for c in week.callouts if c.title == "Hot-shot debut"] == ["x"]
    today = build_digest("day", history, {}, SETTINGS, end=D0 + timedelta(days=14))
    assert {row.permaslug: row.movement.kind for row in today.rows if row.permaslug in "xy"} == {
        "x": Move.REENTRY,
        "y": Move.REENTRY,
    }


def test_a_revised_digest_says_so_in_text_markdown_json_and_chart_subtitles() -> None:
    restated_at = datetime(2026, 10, 12, 3, 0, tzinfo=UTC)
    history = [
        day(0, {"a": 100, "b": 90}),
        DaySnapshot.of(D0 + timedelta(days=1), [("a", 101), ("b", 90), ("other", 1000)], restated_at, revision=2),
    ]
    digest = build_digest("day", history, {}, SETTINGS)
    note = "Revised (revision 2): 2026-10-02 restated on 2026-10-12 03:00 UTC."
    assert digest.revision == 2 and digest.revision_note == note
    assert note in render_text(digest)
    assert note in render_text(digest, markdown=True)
    assert digest_document(digest)["restated"] == [{"day": "2026-10-02", "as_of": "2026-10-12T03:00:00Z"}]
    assert bump_series(digest, history).subtitle.endswith("· revised: 2026-10-02 restated on 2026-10-12")
    assert share_series(digest, history).subtitle.endswith("· revised: 2026-10-02 restated on 2026-10-12")
    assert build_digest("day", [day(0, {"a": 1}), day(1, {"a": 1})], {}, SETTINGS).revision_note is None


def test_a_restated_comparison_day_revises_the_digest() -> None:
    """The day before is part of what a day digest says (previous ranks, alerts): restating it is a new revision."""
    history = [
        DaySnapshot.of(D0, [("a", 100), ("b", 90), ("other", 10)], AS_OF, revision=2),
        day(1, {"a": 100, "b": 90}),
    ]
    digest = build_digest("day", history, {}, SETTINGS)
    assert digest.revision == 2 and digest.id == "day:2026-10-02:r2"
    assert digest.restated == ((D0, AS_OF),)


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
