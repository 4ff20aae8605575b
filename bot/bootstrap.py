"""The composition root: the one place that builds adapters from settings.

Tests call the same functions with settings that point at loopback servers, which is what lets every test run
against real peers on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from bot.config import Settings
from bot.poller import RankingsSource
from bot.sources.catalogue import OpenRouterCatalogueClient
from bot.sources.dataapi import OpenRouterDataClient
from bot.sources.exports import OpenRouterExportsClient
from bot.sources.marks import SourceMarks
from bot.sources.retry import Fetcher, RequestBudget, RetryPolicy, Sleep
from storage.engine import open_database
from storage.repository import Repository

USER_AGENT = "rankbot/0.1 (+https://github.com/rankbot)"


def open_repository(settings: Settings) -> Repository:
    """The repository on the configured database, checked and migrated to the latest schema (a ``DatabaseError``
    names what is wrong)."""
    return Repository(open_database(settings.storage.database_url))


@dataclass
class Sources:
    rankings: RankingsSource
    catalogue: OpenRouterCatalogueClient
    kind: str
    marks: SourceMarks


def http_client(settings: Settings) -> httpx.AsyncClient:
    config = settings.openrouter
    return httpx.AsyncClient(
        base_url=config.base_url,
        timeout=httpx.Timeout(config.timeout_seconds, connect=config.connect_timeout_seconds),
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": USER_AGENT},
    )


def request_budget(
    settings: Settings, sleep: Sleep = asyncio.sleep, clock: Callable[[], float] = time.monotonic
) -> RequestBudget:
    """OpenRouter's published request limits; the service keeps one across its polls (on the wall clock, so it
    can be saved and restored across restarts)."""
    config = settings.openrouter
    return RequestBudget(config.requests_per_minute, config.requests_per_day, clock=clock, sleep=sleep)


def fetcher_for(
    client: httpx.AsyncClient, settings: Settings, sleep: Sleep = asyncio.sleep, budget: RequestBudget | None = None
) -> Fetcher:
    config = settings.openrouter
    return Fetcher(
        client,
        RetryPolicy(config.retry_attempts, config.retry_base_seconds, config.retry_cap_seconds),
        budget or request_budget(settings, sleep),
        sleep=sleep,
    )


@asynccontextmanager
async def open_sources(
    settings: Settings,
    environ: Mapping[str, str],
    sleep: Sleep = asyncio.sleep,
    budget: RequestBudget | None = None,
    marks: SourceMarks | None = None,
) -> AsyncIterator[Sources]:
    """The keyed Data API when a key is configured, else the keyless exports; plus the model catalogue. ``marks``
    (what the sources answered last time) lets unchanged answers be skipped."""
    kind = settings.source_kind(environ)
    marks = marks or SourceMarks()
    async with http_client(settings) as client:
        fetcher = fetcher_for(client, settings, sleep, budget)
        rankings: RankingsSource
        if kind == "api":
            key = settings.api_key(environ)
            assert key is not None  # source_kind checked it
            rankings = OpenRouterDataClient(fetcher, key)
        else:
            rankings = OpenRouterExportsClient(fetcher, settings.openrouter.base_url, marks)
        yield Sources(rankings, OpenRouterCatalogueClient(fetcher, marks), kind, marks)
