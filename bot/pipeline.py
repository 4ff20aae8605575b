"""The pipeline's use cases, shared by the CLI and the demo: poll, backfill, build a digest.

Each opens what it needs through ``bootstrap`` and takes ``today`` as a parameter (the clock lives in the caller).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from datetime import date

from bot.bootstrap import Sources, open_repository, open_sources
from bot.config import Settings
from bot.poller import PollReport, collect, poll_once
from bot.sources.batch import SourceBatch
from bot.sources.errors import SourceError
from bot.sources.exports import FIRST_DATED_SNAPSHOT
from bot.sources.marks import SourceMarks
from bot.sources.retry import RequestBudget
from digests.digest import Digest, build_digest
from digests.model import DaySnapshot, ModelInfo
from storage.repository import Repository

log = logging.getLogger(__name__)


async def refresh_catalogue(sources: Sources, repo: Repository, report: PollReport) -> None:
    """Store the model catalogue (only the entries that changed); a failure is a note, never a failed poll (names
    fall back to permaslugs)."""
    try:
        models = await sources.catalogue.fetch()
    except SourceError as error:
        report.notes.append(f"model catalogue not refreshed: {error}")
        log.warning("model catalogue not refreshed: %s", error)
        return
    if models:
        repo.replace_models(models)


@asynccontextmanager
async def _sources_remembered(
    repo: Repository, settings: Settings, environ: Mapping[str, str], budget: RequestBudget | None = None
) -> AsyncIterator[Sources]:
    """The sources, with what they answered last time; the marks that changed are saved once the work is done."""
    marks = SourceMarks(repo.source_marks())
    async with open_sources(settings, environ, budget=budget, marks=marks) as sources:
        yield sources
    repo.save_source_marks(marks.changed)


async def poll_into(
    repo: Repository,
    settings: Settings,
    environ: Mapping[str, str],
    today: date,
    budget: RequestBudget | None = None,
) -> PollReport:
    """One poll into an open repository. The service keeps the repository and the request ``budget`` open
    across polls, so OpenRouter's limits hold however often it polls."""
    config = settings.openrouter
    async with _sources_remembered(repo, settings, environ, budget) as sources:
        report = await poll_once(
            sources.rankings, repo, today=today, min_rows=config.min_rows, refetch_days=config.refetch_days
        )
        await refresh_catalogue(sources, repo, report)
    return report


async def poll(settings: Settings, environ: Mapping[str, str], today: date) -> PollReport:
    with closing(open_repository(settings)) as repo:
        return await poll_into(repo, settings, environ, today)


async def backfill(
    settings: Settings,
    environ: Mapping[str, str],
    since: date,
    today: date,
    on_batch: Callable[[SourceBatch], None] | None = None,
) -> PollReport:
    with closing(open_repository(settings)) as repo:
        async with _sources_remembered(repo, settings, environ) as sources:
            report = await collect(
                sources.rankings,
                repo,
                since=since,
                today=today,
                min_rows=settings.openrouter.min_rows,
                on_batch=on_batch,
                keep_from=since,
            )
            await refresh_catalogue(sources, repo, report)
            kind = sources.kind
    reached = report.earliest_fetched
    if kind == "exports" and reached is not None and reached > since:
        report.notes.append(
            f"the keyless exports reach back only to {reached.isoformat()} (30 days plus dated snapshots from "
            f"{FIRST_DATED_SNAPSHOT.isoformat()}); for history since {since.isoformat()} set "
            f"{settings.openrouter.api_key_env} to use the keyed Data API, which reaches back to 2025-01-01"
        )
    return report


@dataclass(frozen=True)
class Built:
    """A digest with the history and catalogue it was built from (the charts need them)."""

    digest: Digest
    history: tuple[DaySnapshot, ...]
    catalogue: dict[str, ModelInfo]


def digest_for(settings: Settings, kind: str, day: date | None = None) -> Built:
    """The ``day`` or ``week`` digest ending at ``day`` (default: the latest stored complete day)."""
    with closing(open_repository(settings)) as repo:
        history, catalogue = repo.history(end=day), repo.models()
    return Built(build_digest(kind, history, catalogue, settings.digest.settings(), end=day), history, catalogue)
