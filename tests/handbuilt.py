"""A small hand-built history whose every chart and view answer can be worked out by hand.

Fourteen days, 2026-10-01 → 2026-10-14, of 12 ranked models:
- ``lead/leader`` is #1 on every day with data; ``lab/m2`` … follow in a fixed order;
- the source has no data for 2026-10-06 (a gap for everyone);
- ``lab/m4`` is below #50 (absent) on 2026-10-03 and 2026-10-04 (its own gap);
- ``newco/rocket`` is NEW on 2026-10-11 at #2 and stays there;
- ``old/name-v1`` was renamed ``old/name-v2`` on 2026-10-08; the alias links them into one line (#4, then #5).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from digests.model import DaySnapshot, ModelInfo

FIRST = date(2026, 10, 1)
DAYS = [FIRST + timedelta(days=n) for n in range(14)]
MISSING = date(2026, 10, 6)
ALIASES = {"old/name-v1": "old/name-v2"}
NEW_ON = date(2026, 10, 11)
T = 10**9

CATALOGUE = {
    info.permaslug: info
    for info in [
        ModelInfo("lead/leader", "Leader One", "Lead Labs", 128_000, 1e-7, 4e-7, True, True),
        ModelInfo("newco/rocket", "Rocket", "NewCo", 64_000, 2e-7, 8e-7, False, True),
        ModelInfo("old/name-v2", "Renamed Model", "Old Co", None, None, None, None, True),
        *(ModelInfo(f"lab/m{n}", f"Model {n}", "Lab", in_catalogue=True) for n in range(2, 13)),
    ]
}


def day_rows(day: date) -> list[tuple[str, int]]:
    rows = [("lead/leader", 900 * T)]
    if day >= NEW_ON:
        rows.append(("newco/rocket", 700 * T))
    rows += [(f"lab/m{n}", (600 - 40 * n) * T) for n in range(2, 13) if not (n == 4 and day.day in (3, 4))]
    rows.append(("old/name-v1" if day < date(2026, 10, 8) else "old/name-v2", 470 * T))
    return rows


def history() -> list[DaySnapshot]:
    return [
        DaySnapshot.of(day, [*day_rows(day), ("other", 300 * T)], datetime.combine(day + timedelta(1), time(1), UTC))
        for day in DAYS
        if day != MISSING
    ]
