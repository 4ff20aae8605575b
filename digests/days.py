"""From the source's raw rows to validated, complete day snapshots.

Pure: no I/O, no clock (``today`` is a parameter). Validation is all-or-nothing per day: a day with one bad row is
rejected whole, with a reason a person can act on, so nothing of it is ever stored.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from digests.model import MAX_TOKENS, OTHER, DaySnapshot, Restatement

MAX_ROWS_PER_DAY = 51
"""The top 50 public models plus one aggregated ``other`` row."""

ROW_FIELDS = ("date", "model_permaslug", "total_tokens")
_DIGITS = re.compile(r"[0-9]+")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PERMASLUG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@+~-]{0,254}")


class PayloadError(ValueError):
    """The whole payload is unusable (e.g. a row names no readable day); nothing of it may be stored."""


@dataclass(frozen=True, slots=True)
class RejectedDay:
    """A source day refused by validation, and why."""

    day: date
    reason: str


@dataclass(frozen=True, slots=True)
class IncompleteDay:
    """A valid source day that is not (yet) complete, and why; it is neither stored nor published."""

    day: date
    reason: str


@dataclass(frozen=True, slots=True)
class ValidatedDays:
    """The outcome of validating one payload."""

    days: tuple[DaySnapshot, ...]
    rejected: tuple[RejectedDay, ...]
    unknown_fields: frozenset[str]
    """Fields the rows carried beyond the known schema (tolerated, reported so operators see schema drift)."""


def parse_day(value: object) -> date:
    """A strict ``YYYY-MM-DD`` date, or ``ValueError`` naming the bad value."""
    if not isinstance(value, str) or not _DAY.fullmatch(value):
        raise ValueError(f"date must be a YYYY-MM-DD string, got {value!r}")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"date {value!r} is not a calendar day") from None


def parse_tokens(value: object) -> int:
    """``total_tokens`` as an int: a decimal string of a non-negative integer that fits in 64 bits."""
    if value is None:
        raise ValueError("total_tokens is null")
    if not isinstance(value, str):
        raise ValueError(f"total_tokens must be a decimal string, got the JSON {type(value).__name__} {value!r}")
    if not _DIGITS.fullmatch(value):
        raise ValueError(f"total_tokens {value!r} is not a non-negative whole number")
    tokens = int(value)
    if tokens > MAX_TOKENS:
        raise ValueError(f"total_tokens {value!r} does not fit in 64 bits")
    return tokens


def parse_permaslug(value: object) -> str:
    """A model permaslug such as ``deepseek/deepseek-v4-flash:free``, or ``other``."""
    if not isinstance(value, str) or not _PERMASLUG.fullmatch(value):
        raise ValueError(f"model_permaslug {value!r} is not a valid permaslug")
    return value


def _day_of(row: Mapping[str, object]) -> date:
    try:
        return parse_day(row.get("date"))
    except ValueError as error:
        raise PayloadError(f"a row has no readable day ({error}); the whole response is refused") from None


def _validated_day(day: date, rows: Sequence[Mapping[str, object]], as_of: datetime) -> DaySnapshot:
    if len(rows) > MAX_ROWS_PER_DAY:
        raise ValueError(f"{len(rows)} rows, more than the {MAX_ROWS_PER_DAY} a day can have")
    tokens: dict[str, int] = {}
    for row in rows:
        missing = [name for name in ROW_FIELDS if name not in row]
        if missing:
            raise ValueError(f"a row lacks {', '.join(missing)}")
        permaslug = parse_permaslug(row["model_permaslug"])
        count = parse_tokens(row["total_tokens"])
        if permaslug in tokens:
            what = "two 'other' rows" if permaslug == OTHER else f"duplicate rows for {permaslug}"
            raise ValueError(what)
        tokens[permaslug] = count
    return DaySnapshot.of(day, tokens.items(), as_of)


def validate_rows(rows: Sequence[Mapping[str, object]], as_of: datetime) -> ValidatedDays:
    """Group rows by day and validate each day whole. Raises ``PayloadError`` if a row names no readable day."""
    by_day: dict[date, list[Mapping[str, object]]] = defaultdict(list)
    unknown: set[str] = set()
    for row in rows:
        by_day[_day_of(row)].append(row)
        unknown.update(key for key in row if key not in ROW_FIELDS)
    accepted: list[DaySnapshot] = []
    rejected: list[RejectedDay] = []
    for day in sorted(by_day):
        try:
            accepted.append(_validated_day(day, by_day[day], as_of))
        except ValueError as error:
            rejected.append(RejectedDay(day, str(error)))
    return ValidatedDays(tuple(accepted), tuple(rejected), frozenset(unknown))


def split_complete(
    days: Sequence[DaySnapshot], *, reported_through: date, today: date, min_rows: int
) -> tuple[tuple[DaySnapshot, ...], tuple[IncompleteDay, ...]]:
    """Split days into complete and not (DESIGN §3): before ``today`` (UTC), reported as completed by the source
    (``day <= reported_through``), and at least ``min_rows`` ranked rows."""
    complete: list[DaySnapshot] = []
    incomplete: list[IncompleteDay] = []
    for snapshot in days:
        if snapshot.day >= today:
            incomplete.append(IncompleteDay(snapshot.day, f"not over yet (today is {today.isoformat()} UTC)"))
        elif snapshot.day > reported_through:
            reason = f"the source reports days through {reported_through.isoformat()} as completed"
            incomplete.append(IncompleteDay(snapshot.day, reason))
        elif len(snapshot.rows) < min_rows:
            reason = f"only {len(snapshot.rows)} ranked rows, fewer than min_rows={min_rows}"
            incomplete.append(IncompleteDay(snapshot.day, reason))
        else:
            complete.append(snapshot)
    return tuple(complete), tuple(incomplete)


def restatements(old: DaySnapshot, new: DaySnapshot) -> tuple[Restatement, ...]:
    """Every row (``other`` included) whose tokens differ between two versions of the same day."""
    before = {row.permaslug: row.tokens for row in old.rows} | {OTHER: old.other_tokens}
    after = {row.permaslug: row.tokens for row in new.rows} | {OTHER: new.other_tokens}
    return tuple(
        Restatement(new.day, slug, before.get(slug), after.get(slug), new.as_of)
        for slug in sorted(before.keys() | after.keys())
        if before.get(slug) != after.get(slug)
    )
