"""Polling and backfill: fetch windows from a rankings source, keep the complete days, store them.

A day is stored only when complete (DESIGN §3) and valid; a rejected or incomplete day is reported with its reason
and nothing of it is stored. Each poll re-fetches the trailing ``refetch_days`` stored days, so restatements become
new revisions (the old figures are kept).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Protocol

from bot.sources.batch import SourceBatch
from digests.days import IncompleteDay, RejectedDay, restatements, split_complete
from digests.model import Restatement
from storage.repository import Outcome, Repository

log = logging.getLogger(__name__)


class RankingsSource(Protocol):
    def history(self, since: date | None, today: date) -> AsyncIterator[SourceBatch]:
        """Windows of days, newest first, reaching back to ``since`` (``None``: the source's default window)."""
        ...  # pragma: no cover


@dataclass
class PollReport:
    """What one poll or backfill did, for the CLI and the logs."""

    source: str = ""
    stored: list[date] = field(default_factory=list)
    revised: dict[date, tuple[Restatement, ...]] = field(default_factory=dict)
    unchanged: list[date] = field(default_factory=list)
    rejected: list[RejectedDay] = field(default_factory=list)
    incomplete: list[IncompleteDay] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    earliest_fetched: date | None = None


def store_batch(
    batch: SourceBatch,
    repo: Repository,
    today: date,
    min_rows: int,
    report: PollReport,
    keep_from: date | None = None,
) -> None:
    """Store the complete days of one batch (from ``keep_from`` on, if given) in one transaction, and add what
    happened to ``report``."""
    report.source = batch.source
    first = batch.window[0]
    report.earliest_fetched = min(report.earliest_fetched or first, first)
    for rejected in batch.validated.rejected:
        log.warning("rejected %s from OpenRouter %s: %s", rejected.day, batch.source, rejected.reason)
    report.rejected.extend(batch.validated.rejected)
    if batch.validated.unknown_fields:
        note = f"rows carry fields rankbot does not know: {', '.join(sorted(batch.validated.unknown_fields))}"
        if note not in report.notes:
            log.warning("schema drift: %s", note)
            report.notes.append(note)
    complete, incomplete = split_complete(
        batch.validated.days, reported_through=batch.reported_through, today=today, min_rows=min_rows
    )
    report.incomplete.extend(incomplete)
    if keep_from is not None:
        complete = tuple(snapshot for snapshot in complete if snapshot.day >= keep_from)
    for result in repo.add_days(complete, batch.source):
        if result.outcome is Outcome.STORED:
            report.stored.append(result.day)
        elif result.outcome is Outcome.UNCHANGED:
            report.unchanged.append(result.day)
        else:
            old, new = repo.revisions(result.day)[-2:]
            report.revised[result.day] = restatements(old, new)
            log.info("restated %s: revision %d", result.day, result.revision)


async def collect(
    source: RankingsSource,
    repo: Repository,
    *,
    since: date | None,
    today: date,
    min_rows: int,
    on_batch: Callable[[SourceBatch], None] | None = None,
    keep_from: date | None = None,
) -> PollReport:
    """Fetch every window back to ``since`` and store what is complete (only days from ``keep_from`` on, if given:
    a window can reach further back than was asked for). Batches already stored stay stored if a later window
    fails (each batch is its own transaction)."""
    report = PollReport()
    async for batch in source.history(since, today):
        store_batch(batch, repo, today, min_rows, report, keep_from)
        if on_batch is not None:
            on_batch(batch)
    return report


async def poll_once(
    source: RankingsSource, repo: Repository, *, today: date, min_rows: int, refetch_days: int
) -> PollReport:
    """One poll: the source's latest window, reaching back over the trailing ``refetch_days`` stored days."""
    latest = repo.latest_day()
    since = latest - timedelta(days=refetch_days - 1) if latest else None
    return await collect(source, repo, since=since, today=today, min_rows=min_rows)
