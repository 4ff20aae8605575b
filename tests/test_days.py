"""Validation and completeness of source days (DESIGN §3): bad rows reject their whole day, with a reason."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from digests.days import PayloadError, parse_tokens, restatements, split_complete, validate_rows
from digests.model import DaySnapshot

AS_OF = datetime(2026, 10, 11, 0, 27, tzinfo=UTC)
DAY = "2026-10-09"


def rows(count: int = 50, day: str = DAY, other: bool = True) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        {"date": day, "model_permaslug": f"lab/model-{i:02d}", "total_tokens": str(10**12 - i * 10**9)}
        for i in range(count)
    ]
    if other:
        found.append({"date": day, "model_permaslug": "other", "total_tokens": "123456789"})
    return found


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("-5", "not a non-negative whole number"),
        ("1e9", "not a non-negative whole number"),
        ("12.5", "not a non-negative whole number"),
        ("", "not a non-negative whole number"),
        (" 12", "not a non-negative whole number"),
        (None, "is null"),
        (12, "must be a decimal string, got the JSON int"),
        (1.5, "must be a decimal string, got the JSON float"),
        ("99999999999999999999", "does not fit in 64 bits"),
    ],
)
def test_bad_total_tokens_rejects_the_whole_day(value: object, reason: str) -> None:
    """One bad ``total_tokens`` rejects its whole day and names the problem; other days are unaffected."""
    payload = rows() + rows(day="2026-10-08")
    payload[3]["total_tokens"] = value
    result = validate_rows(payload, AS_OF)
    assert [d.day for d in result.days] == [date(2026, 10, 8)]
    assert len(result.rejected) == 1
    assert result.rejected[0].day == date(2026, 10, 9)
    assert reason in result.rejected[0].reason


def test_largest_64_bit_value_is_accepted() -> None:
    """``2**63 - 1`` is the largest count that fits; it parses exactly."""
    assert parse_tokens(str(2**63 - 1)) == 2**63 - 1


@pytest.mark.parametrize(
    ("edit", "reason"),
    [
        (lambda r: [*r, dict(r[0])], "duplicate rows for lab/model-00"),
        (lambda r: [*r, {"date": DAY, "model_permaslug": "other", "total_tokens": "1"}], "two 'other' rows"),
        (lambda r: rows(59), "60 rows, more than the 51"),
        (lambda r: [{k: v for k, v in row.items() if k != "total_tokens"} for row in r], "lacks total_tokens"),
        (lambda r: [*r[:-1], {"date": DAY, "model_permaslug": "bad slug!", "total_tokens": "1"}], "not a valid"),
    ],
)
def test_malformed_day_is_rejected_with_its_reason(edit: Any, reason: str) -> None:
    """Duplicate rows, two ``other`` rows, too many rows, missing fields and bad slugs reject the day."""
    result = validate_rows(edit(rows(49)), AS_OF)
    assert result.days == ()
    assert reason in result.rejected[0].reason


def test_extra_fields_are_tolerated_and_reported() -> None:
    """An added field is schema drift to report, not a reason to refuse otherwise valid figures."""
    payload = [{**row, "requests": "5"} for row in rows()]
    result = validate_rows(payload, AS_OF)
    assert len(result.days) == 1
    assert result.unknown_fields == frozenset({"requests"})


@pytest.mark.parametrize("bad_date", [None, "2026-13-01", "2026-10-9", "yesterday", 20261009])
def test_row_without_a_readable_day_refuses_the_payload(bad_date: object) -> None:
    """A row that names no readable day cannot be attributed, so nothing of the payload is accepted."""
    payload = rows()
    payload[0]["date"] = bad_date
    with pytest.raises(PayloadError, match="no readable day"):
        validate_rows(payload, AS_OF)


def test_ranks_follow_tokens_then_permaslug_with_other_apart() -> None:
    """Rank is derived: tokens descending, ties by permaslug; ``other`` is kept apart and counts in the total."""
    snapshot = DaySnapshot.of(date(2026, 1, 1), [("b/x", 5), ("other", 100), ("a/y", 5), ("c/z", 9)], AS_OF)
    assert [r.permaslug for r in snapshot.rows] == ["c/z", "a/y", "b/x"]
    assert snapshot.other_tokens == 100
    assert snapshot.total_tokens == 119


def test_completeness_rules() -> None:
    """Complete means: before today, reported completed by the source, and at least ``min_rows`` ranked rows."""
    full = validate_rows(rows(day="2026-10-08") + rows(day="2026-10-09") + rows(day="2026-10-10"), AS_OF).days
    partial = validate_rows(rows(20, day="2026-10-07"), AS_OF).days
    complete, incomplete = split_complete(
        [*partial, *full], reported_through=date(2026, 10, 9), today=date(2026, 10, 10), min_rows=50
    )
    assert [d.day for d in complete] == [date(2026, 10, 8), date(2026, 10, 9)]
    reasons = {d.day: d.reason for d in incomplete}
    assert "fewer than min_rows=50" in reasons[date(2026, 10, 7)]
    assert "not over yet" in reasons[date(2026, 10, 10)]


def test_unreported_day_is_not_complete() -> None:
    """A past day the source does not yet report as completed is held back."""
    full = validate_rows(rows(day="2026-10-09"), AS_OF).days
    complete, incomplete = split_complete(
        full, reported_through=date(2026, 10, 8), today=date(2026, 10, 12), min_rows=50
    )
    assert complete == ()
    assert "reports days through 2026-10-08" in incomplete[0].reason


def test_restatements_list_changed_rows_only() -> None:
    """A restatement lists exactly the rows whose figures changed, with old and new values."""
    old = DaySnapshot.of(date(2026, 10, 7), [("a/x", 100), ("b/y", 50), ("other", 10)], AS_OF)
    new = DaySnapshot.of(date(2026, 10, 7), [("a/x", 116), ("b/y", 50), ("other", 11)], AS_OF, revision=2)
    changed = restatements(old, new)
    assert [(r.permaslug, r.old_tokens, r.new_tokens) for r in changed] == [("a/x", 100, 116), ("other", 10, 11)]
