"""The repository on real SQLite files: what is stored is what comes back, revisions included."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import SQLModel

from digests.model import DaySnapshot, ModelInfo
from storage.engine import current_revision, upgrade_database
from storage.repository import Outcome, Repository

AS_OF = datetime(2026, 10, 11, 0, 27, tzinfo=UTC)


def snapshot(day: date, tokens: dict[str, int], other: int | None = 7, as_of: datetime = AS_OF) -> DaySnapshot:
    rows = [*tokens.items(), *([("other", other)] if other is not None else [])]
    return DaySnapshot.of(day, rows, as_of)


def test_round_trip_and_idempotence(repo: Repository) -> None:
    """A stored day comes back equal; storing it again is a no-op."""
    day = snapshot(date(2026, 10, 9), {"a/x": 7_500_000_000_000, "b/y": 1, "c/z": 2**63 - 1})
    assert repo.add_day(day).outcome is Outcome.STORED
    assert repo.get_day(day.day) == day
    assert repo.add_day(day).outcome is Outcome.UNCHANGED
    assert repo.revisions(day.day) == (day,)


def test_revisions_keep_old_figures(repo: Repository) -> None:
    """A changed day becomes revision 2; revision 1 stays readable; the current day is revision 2."""
    old = snapshot(date(2026, 10, 7), {"a/x": 100, "b/y": 50})
    new = snapshot(date(2026, 10, 7), {"a/x": 100, "b/y": 51}, as_of=AS_OF + timedelta(days=1))
    repo.add_day(old)
    result = repo.add_day(new)
    assert (result.outcome, result.revision) == (Outcome.REVISED, 2)
    first, second = repo.revisions(old.day)
    assert first == old
    assert second == DaySnapshot(new.day, new.rows, new.other_tokens, new.as_of, 2)
    assert repo.get_day(old.day) == second
    assert repo.add_day(new).outcome is Outcome.UNCHANGED


def test_days_by_range_oldest_first(repo: Repository) -> None:
    days = [snapshot(date(2026, 10, 1) + timedelta(days=i), {"a/x": i + 1}, other=None) for i in range(5)]
    repo.add_days(list(reversed(days)), "api")
    assert repo.days() == tuple(days)
    assert repo.days(start=date(2026, 10, 2), end=date(2026, 10, 3)) == tuple(days[1:3])
    assert repo.latest_day() == date(2026, 10, 5)


def test_models_are_replaced(repo: Repository) -> None:
    infos = [ModelInfo("a/x", "X", "A", 1000, 1e-7, 2e-7, True, True), ModelInfo("b/y", "Y", "B", in_catalogue=True)]
    assert repo.replace_models(infos) == 2
    assert repo.models() == {info.permaslug: info for info in infos}
    repo.replace_models(infos[:1])
    assert list(repo.models()) == ["a/x"]


def test_migrations_match_the_tables(repo: Repository) -> None:
    """The Alembic migrations build exactly the schema the SQLModel tables describe; upgrading twice is safe."""
    upgrade_database(repo.engine)
    assert current_revision(repo.engine) == "0010"
    with repo.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert diff == []


slugs = st.text(alphabet="abcdefghij0123456789-.", min_size=1, max_size=12).map(lambda s: f"lab/{s}")


@given(
    st.dictionaries(slugs, st.integers(0, 2**63 - 1), min_size=1, max_size=51),
    st.none() | st.integers(0, 2**63 - 1),
)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_round_trip_property(repo: Repository, tokens: dict[str, int], other: int | None) -> None:
    """Whatever valid day is stored (64-bit counts, any slugs), ``get_day`` returns it unchanged."""
    day = date(2026, 1, 1) + timedelta(days=len(repo.stored_days()))
    stored = snapshot(day, tokens, other)
    repo.add_day(stored)
    assert repo.get_day(day) == stored
