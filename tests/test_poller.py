"""Poll and backfill end to end: fake OpenRouter on 127.0.0.1 → adapters → poller → a real SQLite file.

Only complete, valid days are stored; a rejected day leaves nothing behind; a restated day becomes a revision.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot import pipeline
from bot.demo.generator import SyntheticHistory
from bot.demo.server import FakeOpenRouter, Fault
from bot.sources.errors import SchemaError
from digests.model import DaySnapshot, ModelInfo
from storage.repository import Repository
from tests.conftest import ENVIRON, TODAY, Clock, settings_for

API = "/api/v1/datasets/rankings-daily"


def stored(tmp_path: Path) -> Repository:
    from bot.bootstrap import open_repository

    return open_repository(settings_for("http://127.0.0.1:1", tmp_path))


@pytest.mark.parametrize("source", ["api", "exports"])
async def test_first_poll_stores_the_complete_window(
    fake: FakeOpenRouter, tmp_path: Path, history: SyntheticHistory, source: str
) -> None:
    """A first poll stores the source's default window, all complete, exactly as served."""
    report = await pipeline.poll(settings_for(fake.url, tmp_path, source), ENVIRON, TODAY)
    assert report.rejected == [] and report.incomplete == []
    repo = stored(tmp_path)
    expected_days = 31 if source == "api" else 30
    assert len(report.stored) == expected_days
    served = [s for s in history.days if s.day in set(report.stored)]
    got = repo.days()
    assert len(got) == len(served) and all(a.same_figures(b) for a, b in zip(got, served, strict=True))
    assert len(repo.models()) == len(history.catalogue)


async def test_poll_again_is_idempotent(fake: FakeOpenRouter, tmp_path: Path) -> None:
    """Polling twice with nothing new stores nothing and changes nothing."""
    settings = settings_for(fake.url, tmp_path)
    await pipeline.poll(settings, ENVIRON, TODAY)
    before = stored(tmp_path).days()
    report = await pipeline.poll(settings, ENVIRON, TODAY)
    assert report.stored == [] and report.revised == {}
    assert len(report.unchanged) == 3  # the trailing refetch window
    assert fake.requests_to(API)[-1].query["start_date"] == (TODAY - timedelta(days=3)).isoformat()
    assert stored(tmp_path).days() == before


@pytest.mark.parametrize(("source", "validators"), [("api", True), ("exports", True), ("exports", False)])
async def test_a_poll_with_nothing_new_writes_nothing(
    fake: FakeOpenRouter, tmp_path: Path, source: str, validators: bool
) -> None:
    """A second poll with nothing new leaves the SQLite file byte for byte as it was: no catalogue row rewritten,
    no export CSV downloaded again (its manifest hash is the one stored; with an ETag, the manifest is a 304)."""
    fake.validators = validators
    settings = settings_for(fake.url, tmp_path, source)
    await pipeline.poll(settings, ENVIRON, TODAY)
    database = tmp_path / "rankbot.db"
    before = database.read_bytes()
    fake.requests.clear()
    report = await pipeline.poll(settings, ENVIRON, TODAY)
    assert report.stored == [] and report.revised == {}
    assert database.read_bytes() == before
    assert not (tmp_path / "rankbot.db-wal").exists() or (tmp_path / "rankbot.db-wal").stat().st_size == 0
    if source == "exports":
        assert [r.path for r in fake.requests if r.path.endswith(".csv")] == []


async def test_source_marks_are_kept_on_sqlite_and_postgres(
    fake: FakeOpenRouter, tmp_path: Path, database_url: str
) -> None:
    """The marks a poll saves fit the schema on both databases, and the next poll uses them (a 304)."""
    settings = settings_for(fake.url, tmp_path, "exports", storage_database_url=database_url)
    await pipeline.poll(settings, ENVIRON, TODAY)
    fake.requests.clear()
    await pipeline.poll(settings, ENVIRON, TODAY)
    manifest = next(r for r in fake.requests if r.path.endswith("latest.manifest.json"))
    assert "If-None-Match" in manifest.headers
    assert [r.path for r in fake.requests if r.path.endswith(".csv")] == []


def test_the_catalogue_is_written_only_where_it_changed(repo: Repository, clock: Clock) -> None:
    """Each catalogue row's `updated_at` says when that model last changed, not when the last poll ran."""
    catalogue = Repository(repo.engine, now=clock)
    infos = [ModelInfo("a/x", "X", "A", in_catalogue=True), ModelInfo("b/y", "Y", "B", in_catalogue=True)]
    catalogue.replace_models(infos)
    first = clock.now
    clock.advance(days=1)
    catalogue.replace_models([infos[0], ModelInfo("b/y", "Y 2", "B", in_catalogue=True)])
    with repo.engine.connect() as connection:
        updated = dict(connection.execute(text("SELECT permaslug, updated_at FROM model")).all())
    assert {slug: str(at)[:10] for slug, at in updated.items()} == {
        "a/x": first.date().isoformat(),
        "b/y": clock.now.date().isoformat(),
    }
    assert catalogue.models()["b/y"].name == "Y 2"


async def test_backfill_on_the_keyless_exports_stores_only_the_days_asked_for(
    fake: FakeOpenRouter, tmp_path: Path
) -> None:
    """The export windows reach 30 days back from each snapshot; days before --since are not stored."""
    since = TODAY - timedelta(days=12)
    report = await pipeline.backfill(settings_for(fake.url, tmp_path, "exports"), ENVIRON, since, TODAY)
    assert min(report.stored) == since
    assert min(stored(tmp_path).stored_days()) == since


async def test_partial_current_day_is_never_stored(
    fake: FakeOpenRouter, tmp_path: Path, history: SyntheticHistory
) -> None:
    """Today's partial rows, even when the source sends them, are reported incomplete and not stored."""
    fake.partial_today = DaySnapshot.of(TODAY, [("lab/early-bird", 5), ("other", 1)], history.days[-1].as_of)
    report = await pipeline.poll(settings_for(fake.url, tmp_path), ENVIRON, TODAY)
    assert TODAY not in report.stored
    assert [d.day for d in report.incomplete] == [TODAY]
    assert stored(tmp_path).get_day(TODAY) is None


async def test_day_with_too_few_rows_is_held_back(fake: FakeOpenRouter, tmp_path: Path) -> None:
    """A past day with fewer than ``min_rows`` ranked rows is not complete yet."""
    thin_day = (TODAY - timedelta(days=2)).isoformat()

    def thin(payload: dict[str, Any]) -> dict[str, Any]:
        rows = [r for r in payload["data"] if r["date"] != thin_day]
        rows += [r for r in payload["data"] if r["date"] == thin_day][:20]
        return {**payload, "data": rows}

    fake.add_fault(Fault(API, "edit", edit=thin))
    report = await pipeline.poll(settings_for(fake.url, tmp_path), ENVIRON, TODAY)
    assert [d.day.isoformat() for d in report.incomplete] == [thin_day]
    assert stored(tmp_path).get_day(date.fromisoformat(thin_day)) is None


@pytest.mark.parametrize("value", ["-5", "1e9", "12.5", "", None, 12, "99999999999999999999"], ids=lambda v: repr(v))
async def test_day_with_a_bad_row_is_rejected_and_nothing_of_it_stored(
    fake: FakeOpenRouter, tmp_path: Path, value: object
) -> None:
    """A bad ``total_tokens`` rejects that day only: its other rows are not stored, other days are."""
    bad_day = (TODAY - timedelta(days=5)).isoformat()

    def corrupt(payload: dict[str, Any]) -> dict[str, Any]:
        row = next(r for r in payload["data"] if r["date"] == bad_day)
        row["total_tokens"] = value
        return payload

    fake.add_fault(Fault(API, "edit", edit=corrupt))
    report = await pipeline.poll(settings_for(fake.url, tmp_path), ENVIRON, TODAY)
    assert [r.day.isoformat() for r in report.rejected] == [bad_day]
    assert len(report.stored) == 30
    assert stored(tmp_path).get_day(date.fromisoformat(bad_day)) is None


@pytest.mark.parametrize(
    "edit",
    [
        lambda p: {**p, "data": p["data"] + [p["data"][0]]},
        lambda p: {**p, "data": p["data"] + [{**p["data"][50], "model_permaslug": "other"}]},
        lambda p: {**p, "data": p["data"] + [{**p["data"][0], "model_permaslug": f"x/m{i}"} for i in range(9)]},
        lambda p: {**p, "data": [{"date": p["data"][0]["date"], "model_permaslug": "x/y"}, *p["data"][1:]]},
    ],
    ids=["duplicate-row", "two-other-rows", "60-rows", "missing-field"],
)
async def test_structurally_bad_days_are_rejected(fake: FakeOpenRouter, tmp_path: Path, edit: Any) -> None:
    """Duplicates, two ``other`` rows, 60 rows or a row missing a field reject that day; nothing of it is stored."""
    fake.add_fault(Fault(API, "edit", edit=edit))
    report = await pipeline.poll(settings_for(fake.url, tmp_path), ENVIRON, TODAY)
    first = TODAY - timedelta(days=31)
    assert [r.day for r in report.rejected] == [first]
    assert stored(tmp_path).get_day(first) is None


async def test_schema_drift_stores_nothing(fake: FakeOpenRouter, tmp_path: Path) -> None:
    """A ``meta.version`` other than v1 is a hard stop: the poll fails and the database stays empty."""
    fake.add_fault(Fault(API, "edit", edit=lambda p: {**p, "meta": {**p["meta"], "version": "v2"}}))
    with pytest.raises(SchemaError, match="v2"):
        await pipeline.poll(settings_for(fake.url, tmp_path), ENVIRON, TODAY)
    assert stored(tmp_path).days() == ()


async def test_restated_day_becomes_a_new_revision(
    fake: FakeOpenRouter, tmp_path: Path, history: SyntheticHistory
) -> None:
    """A restatement within the trailing window is stored as revision 2; revision 1 is kept unchanged."""
    settings = settings_for(fake.url, tmp_path)
    await pipeline.poll(settings, ENVIRON, TODAY)
    day = history.days[-2]
    top = day.rows[0]
    later = day.as_of + timedelta(days=1)
    fake.restate(day.day, {top.permaslug: top.tokens + 1000}, later)
    report = await pipeline.poll(settings, ENVIRON, TODAY)
    changes = report.revised[day.day]
    assert [(c.permaslug, c.old_tokens, c.new_tokens) for c in changes] == [
        (top.permaslug, top.tokens, top.tokens + 1000)
    ]
    first, second = stored(tmp_path).revisions(day.day)
    assert first.same_figures(day) and first.revision == 1
    assert (second.revision, second.rows[0].tokens, second.as_of) == (2, top.tokens + 1000, later)
    assert stored(tmp_path).get_day(day.day) == second


async def test_keyless_backfill_says_how_far_it_reached(fake: FakeOpenRouter, tmp_path: Path) -> None:
    """Without a key, a backfill past the dated snapshots says so and names the key variable to set."""
    settings = settings_for(fake.url, tmp_path, "exports")
    report = await pipeline.backfill(settings, {}, TODAY - timedelta(days=120), TODAY)
    assert len(report.stored) == 60  # the latest export plus one dated snapshot; the next one is a 404
    assert any("RANKBOT_TEST_OPENROUTER_KEY" in note and "keyed Data API" in note for note in report.notes)


async def test_keyed_backfill_stores_everything_in_few_calls(
    fake: FakeOpenRouter, tmp_path: Path, history: SyntheticHistory
) -> None:
    """With a key, 60 days of history arrive in one Data API call and all are stored."""
    report = await pipeline.backfill(settings_for(fake.url, tmp_path), ENVIRON, TODAY - timedelta(days=60), TODAY)
    assert len(report.stored) == len(history.days)
    assert len(fake.requests_to(API)) == 1


async def test_catalogue_failure_is_a_note_not_a_failure(fake: FakeOpenRouter, tmp_path: Path) -> None:
    """If the catalogue cannot be read, days are still stored and the report says why names are derived."""
    fake.add_fault(Fault("/api/v1/models", "html"))
    report = await pipeline.poll(settings_for(fake.url, tmp_path), ENVIRON, TODAY)
    assert len(report.stored) == 31
    assert any("catalogue not refreshed" in note for note in report.notes)


async def test_poll_into_postgresql(fake: FakeOpenRouter, tmp_path: Path, history: SyntheticHistory) -> None:
    """The same poll stores the same figures in PostgreSQL, with 64-bit counts and UTC times intact."""
    from bot.bootstrap import open_repository
    from tests.conftest import fresh_postgres_url

    settings = settings_for(fake.url, tmp_path, STORAGE_DATABASE_URL=fresh_postgres_url())
    report = await pipeline.poll(settings, ENVIRON, TODAY)
    repo = open_repository(settings)
    got = repo.get_day(history.days[-1].day)
    assert got is not None and got.same_figures(history.days[-1])
    assert got.as_of == max(s.as_of for s in history.days)
    assert len(repo.days()) == len(report.stored) == 31
    repo.engine.dispose()
