"""Charts on a hand-built history with a gap day, a model's own gap, a NEW entrant and a rename through an alias:
snapshot images (compared pixel by pixel with a small tolerance), sizes, determinism, and alt text."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from digests.aliases import with_aliases
from digests.digest import Digest, build_digest
from digests.model import DaySnapshot, DigestSettings
from digests.render.charts import (
    TEXT_PALETTE,
    Chart,
    bump_chart,
    contrast,
    rank_ticks,
    readable,
    share_chart,
    sparkline_chart,
)
from digests.series import bump_series, share_series, sparkline
from tests import handbuilt

SNAPSHOTS = Path(__file__).parent / "snapshots" / "charts"


@pytest.fixture(scope="module")
def days() -> tuple[DaySnapshot, ...]:
    return with_aliases(handbuilt.history(), handbuilt.ALIASES)


@pytest.fixture(scope="module")
def week(days: tuple[DaySnapshot, ...]) -> Digest:
    return build_digest("week", days, handbuilt.CATALOGUE, DigestSettings())


def pixels(png: bytes) -> object:
    from matplotlib.image import imread

    return imread(io.BytesIO(png), format="png")


def assert_matches_snapshot(chart: Chart, name: str) -> None:
    """Compare with the stored image: same size, and at most 0.5 % of pixels differing by more than 10 %."""
    import numpy as np

    path = SNAPSHOTS / f"{name}.png"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        SNAPSHOTS.mkdir(parents=True, exist_ok=True)
        path.write_bytes(chart.png)
    expected, actual = np.asarray(pixels(path.read_bytes())), np.asarray(pixels(chart.png))
    assert expected.shape == actual.shape
    differing = np.mean(np.abs(expected - actual).max(axis=-1) > 0.1)
    assert differing <= 0.005, f"{name}: {differing:.2%} of pixels differ from {path}"


def test_bump_chart_snapshot(week: Digest, days: tuple[DaySnapshot, ...]) -> None:
    chart = bump_chart(bump_series(week, days))
    assert (chart.width, chart.height) == (1200, 675)
    assert pixels(chart.png).shape[:2] == (675, 1200)  # type: ignore[attr-defined]
    assert_matches_snapshot(chart, "bump-week")


def test_share_chart_snapshot(week: Digest, days: tuple[DaySnapshot, ...]) -> None:
    chart = share_chart(share_series(week, days))
    assert (chart.width, chart.height) == (1200, 675)
    assert_matches_snapshot(chart, "share-week")


def test_sparkline_snapshot(days: tuple[DaySnapshot, ...]) -> None:
    chart = sparkline_chart(sparkline("lab/m4", days, handbuilt.CATALOGUE))
    assert (chart.width, chart.height) == (600, 160)  # room for the name, the dates and the attribution
    assert_matches_snapshot(chart, "sparkline-m4")


def test_a_model_keeps_its_colour_on_the_day_and_week_charts(days: tuple[DaySnapshot, ...]) -> None:
    """Colour follows the model, not its rank: the day and week charts ending on the same day agree on every model
    they share, and no chart uses a colour twice."""
    end = handbuilt.DAYS[-1]
    week = build_digest("week", days, handbuilt.CATALOGUE, DigestSettings(), end=end)
    day = build_digest("day", days, handbuilt.CATALOGUE, DigestSettings(), end=end)
    week_colours = {line.permaslug: line.colour for line in bump_series(week, days).lines}
    day_colours = {line.permaslug: line.colour for line in bump_series(day, days).lines}
    shared = week_colours.keys() & day_colours.keys()
    assert shared and all(week_colours[slug] == day_colours[slug] for slug in shared)
    for colours in (week_colours, day_colours):
        assert len(set(colours.values())) == len(colours)
    share = share_series(week, days)
    assert dict(zip((row.permaslug for row in week.rows), share.colours, strict=False)) == week_colours


def test_every_label_colour_reads_on_white() -> None:
    """Text drawn in a line's colour meets WCAG AA (4.5:1) on the white background, the pale sand and cyan too."""
    assert min(contrast(colour) for colour in TEXT_PALETTE) >= 4.5
    assert contrast("#DDCC77") < 3 and readable("#DDCC77") != "#DDCC77"  # the old pale yellow label
    assert contrast("#000000") == 21


def test_the_bump_chart_has_rank_ticks(week: Digest, days: tuple[DaySnapshot, ...]) -> None:
    assert rank_ticks(12) == [1, 5, 10]
    assert rank_ticks(50) == [1, 5, 10, 20, 30, 40, 50]


def test_rendering_is_deterministic(week: Digest, days: tuple[DaySnapshot, ...]) -> None:
    series = bump_series(week, days)
    assert bump_chart(series).png == bump_chart(series).png
    assert b"matplotlib" not in bump_chart(series).png  # no software or date stamp in the file


def test_the_bump_series_has_gaps_not_zeros_and_one_line_for_a_renamed_model(
    week: Digest, days: tuple[DaySnapshot, ...]
) -> None:
    series = bump_series(week, days)
    lines = {line.permaslug: line for line in series.lines}
    gap = handbuilt.DAYS.index(handbuilt.MISSING)
    assert all(line.ranks[gap] is None for line in series.lines)
    assert series.available[gap] is False and series.missing_days == (handbuilt.MISSING,)
    assert lines["lab/m4"].ranks[2:4] == (None, None)
    assert "old/name-v1" not in lines
    assert lines["old/name-v2"].ranks == (4, 4, 4, 4, 4, None, 4, 4, 4, 4, 5, 5, 5, 5)
    assert lines["newco/rocket"].marker == "NEW"
    assert lines["newco/rocket"].ranks == (None,) * 10 + (2, 2, 2, 2)


def test_without_the_alias_the_rename_is_a_new_model() -> None:
    raw_days = handbuilt.history()
    raw = build_digest("week", raw_days, handbuilt.CATALOGUE, DigestSettings())
    line = next(line for line in bump_series(raw, raw_days).lines if line.permaslug == "old/name-v2")
    assert line.ranks[:7] == (None,) * 7 and line.marker == "NEW"


def test_bump_alt_text(week: Digest, days: tuple[DaySnapshot, ...]) -> None:
    assert bump_chart(bump_series(week, days)).alt == (
        "Bump chart: daily token rank of OpenRouter's top 10 models, source days 2026-10-01 to 2026-10-14 (UTC). "
        "Leader One held #1 on all 13 days with data; Rocket entered at #2 on 2026-10-11. "
        "No data from the source for 2026-10-06."
    )


def test_bump_alt_text_names_changes_of_leader(days: tuple[DaySnapshot, ...]) -> None:
    swapped = [
        DaySnapshot.of(s.day, [(r.permaslug, r.tokens if r.permaslug != "lab/m2" else 10**15) for r in s.rows], s.as_of)
        if s.day >= handbuilt.DAYS[12]
        else s
        for s in days
    ]
    digest = build_digest("week", swapped, handbuilt.CATALOGUE, DigestSettings())
    alt = bump_chart(bump_series(digest, swapped)).alt
    assert "Leader One led on 2026-10-01; Model 2 took #1 on 2026-10-13; Rocket entered at #2" in alt


def test_share_alt_text(week: Digest, days: tuple[DaySnapshot, ...]) -> None:
    assert share_chart(share_series(week, days)).alt == (
        "Stacked bars: share of all OpenRouter tokens per day, source days 2026-10-01 to 2026-10-14 (UTC). "
        "The top 10 took between 79% and 83% of all tokens (median 80%); models outside the top 50 took 6% on "
        "average. No data from the source for 2026-10-06."
    )


def test_sparkline_alt_text(days: tuple[DaySnapshot, ...]) -> None:
    assert sparkline_chart(sparkline("lab/m4", days, handbuilt.CATALOGUE)).alt == (
        "Model 4: rank #5 to #6 from 2026-09-15 to 2026-10-14 (best #5), in the top 50 on 11 of 30 days; "
        "440.0B tokens on 2026-10-14."
    )
    absent = sparkline_chart(sparkline("no/where", days, {})).alt
    assert absent == "where: below #50 on every day from 2026-09-15 to 2026-10-14."
