"""The generated history the demo, tests and benchmarks share has the shapes the issue asks the demo to show."""

from __future__ import annotations

from datetime import date

from bot.demo.generator import generate_history
from digests.diff import Move
from digests.digest import build_digest
from digests.model import DigestSettings


def test_demo_history_has_every_kind_of_movement() -> None:
    """90 days, ~60 permaslugs with :free variants, ≥ 50 ranked rows a day, entrants, re-entries, drop-outs and a
    change of #1."""
    history = generate_history(end=date(2026, 11, 28), days=90)
    slugs = {row.permaslug for day in history.days for row in day.rows}
    assert len(history.days) == 90 and 55 <= len(slugs) <= 65
    assert any(slug.endswith(":free") for slug in slugs)
    assert min(len(day.rows) for day in history.days) >= 50
    seen: set[str] = set()
    for end in range(1, len(history.days)):
        digest = build_digest("day", history.days[: end + 1], {}, DigestSettings())
        seen |= {row.movement.kind.value for row in digest.rows} | ({Move.DROPPED.value} if digest.dropped else set())
        seen |= {callout.title for callout in digest.callouts}
    assert {"NEW", "RE-ENTRY", "DROPPED", "UP", "DOWN", "NEW #1"} <= seen


def test_generation_is_deterministic() -> None:
    assert generate_history(date(2026, 1, 31), days=10) == generate_history(date(2026, 1, 31), days=10)
