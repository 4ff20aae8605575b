"""Alt text for every chart: one or two sentences that say what the picture shows.

Pure: series in, text out.
"""

from __future__ import annotations

import statistics
from datetime import date

from digests.numbers import format_tokens
from digests.series import BumpSeries, ShareSeries, Sparkline


def _days(days: list[date]) -> str:
    return ", ".join(day.isoformat() for day in days)


def _leaders(series: BumpSeries) -> list[tuple[date, str]]:
    """(day, name) for each day with data whose #1 is one of the chart's lines."""
    leaders = []
    for index, day in enumerate(series.days):
        if not series.available[index]:
            continue
        leader = next((line.name for line in series.lines if line.ranks[index] == 1), None)
        if leader is not None:
            leaders.append((day, leader))
    return leaders


def _leader_sentence(series: BumpSeries) -> str:
    leaders = _leaders(series)
    if not leaders:
        return "No charted model was #1 on these days"
    names = [name for _, name in leaders]
    if len(set(names)) == 1:
        return f"{names[0]} held #1 on all {len(leaders)} days with data"
    changes = [(day, name) for (day, name), (_, before) in zip(leaders[1:], leaders, strict=False) if name != before]
    said = [f"{leaders[0][1]} led on {leaders[0][0].isoformat()}"]
    said += [f"{name} took #1 on {day.isoformat()}" for day, name in changes[:2]]
    if len(changes) > 2:
        said.append(f"#1 changed {len(changes) - 2} more time(s)")
    return "; ".join(said)


def _entry_sentences(series: BumpSeries) -> list[str]:
    found = []
    start = series.days.index(series.period_first) if series.period_first in series.days else 0
    for line in series.lines:
        if not line.marker:
            continue
        entry = next((i for i in range(start, len(series.days)) if line.ranks[i] is not None), None)
        if entry is not None:
            kind = "re-entered" if line.marker == "RE-ENTRY" else "entered"
            found.append(f"{line.name} {kind} at #{line.ranks[entry]} on {series.days[entry].isoformat()}")
    return found[:2]


def bump_alt(series: BumpSeries) -> str:
    """``Rank by day of the top 10 … DeepSeek V4.1 Flash held #1 on all 14 days with data; StepFun Step 5
    Preview entered at #2 on 2026-10-09.``"""
    head = (
        f"Bump chart: daily token rank of OpenRouter's top {len(series.lines)} models, source days "
        f"{series.days[0].isoformat()} to {series.days[-1].isoformat()} (UTC)."
    )
    sentence = "; ".join([_leader_sentence(series), *_entry_sentences(series)]) + "."
    if series.missing_days:
        sentence += f" No data from the source for {_days(list(series.missing_days))}."
    return f"{head} {sentence}"


def share_alt(series: ShareSeries) -> str:
    """``Share of all tokens per day …: the top 10 took between 61% and 68% (median 64%); models outside the top
    50 took 9% on average.``"""
    head = (
        f"Stacked bars: share of all OpenRouter tokens per day, source days {series.days[0].isoformat()} to "
        f"{series.days[-1].isoformat()} (UTC)."
    )
    tops = [share for i in range(len(series.days)) if (share := series.top_share(i)) is not None]
    others = [value for value in series.other if value is not None]
    if not tops:
        return f"{head} No data for these days."
    body = (
        f" The top {len(series.names)} took between {min(tops):.0%} and {max(tops):.0%} of all tokens "
        f"(median {statistics.median(tops):.0%}); models outside the top 50 took {statistics.fmean(others):.0%} on "
        "average."
    )
    missing = [day for day, value in zip(series.days, series.other, strict=True) if value is None]
    if missing:
        body += f" No data from the source for {_days(missing)}."
    return head + body


def sparkline_alt(spark: Sparkline) -> str:
    """``DeepSeek V4 Flash: from #3 to #1 over 30 days (best #1), in the top 50 on 30 of 30 days; 1.2T tokens on
    2026-11-19.``"""
    shown = [(day, rank) for day, rank in zip(spark.days, spark.ranks, strict=True) if rank is not None]
    span = f"{spark.days[0].isoformat()} to {spark.days[-1].isoformat()}"
    if not shown:
        return f"{spark.name}: below #50 on every day from {span}."
    (_, first), (last_day, last) = shown[0], shown[-1]
    best = min(rank for _, rank in shown)
    tokens = spark.tokens[spark.days.index(last_day)]
    sentence = (
        f"{spark.name}: rank #{first} to #{last} from {span} (best #{best}), in the top 50 on {len(shown)} of "
        f"{len(spark.days)} days"
    )
    if tokens is not None:
        sentence += f"; {format_tokens(tokens)} tokens on {last_day.isoformat()}"
    return sentence + "."
