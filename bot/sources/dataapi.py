"""The keyed Data API: ``GET /api/v1/datasets/rankings-daily`` (DESIGN §2).

A default call (no ``end_date``) tells how far days are complete (``meta.end_date``); older history comes in windows
of at most 366 days, the most the API serves per call, so a backfill makes as few calls as possible.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from bot.sources.batch import SourceBatch, json_of, parse_as_of, validated
from bot.sources.errors import SchemaError
from bot.sources.retry import Fetcher
from digests.days import parse_day

PATH = "/api/v1/datasets/rankings-daily"
MAX_WINDOW_DAYS = 366
DATA_START = date(2025, 1, 1)
VERSION = "v1"


def _meta(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise SchemaError("the rankings-daily answer has no 'data' list; nothing was stored")
    meta = payload.get("meta")
    if not isinstance(meta, dict):
        raise SchemaError("the rankings-daily answer has no 'meta' object; nothing was stored")
    if meta.get("version") != VERSION:
        raise SchemaError(
            f"OpenRouter's rankings-daily API answered with meta.version {meta.get('version')!r}; this rankbot "
            f"understands only {VERSION!r}. Nothing was stored: upgrade rankbot."
        )
    return meta


@dataclass
class OpenRouterDataClient:
    """Reads the Data API with a key sent as ``Authorization: Bearer``."""

    fetcher: Fetcher
    api_key: str

    async def fetch(self, start: date | None = None, end: date | None = None) -> SourceBatch:
        """One call. Without ``end`` the API answers through the latest completed UTC day."""
        params = {}
        if start is not None:
            params["start_date"] = start.isoformat()
        if end is not None:
            params["end_date"] = end.isoformat()
        response = await self.fetcher.get(PATH, params=params, headers={"Authorization": f"Bearer {self.api_key}"})
        assert response is not None  # not_found_ok is off
        payload = json_of(response)
        meta = _meta(payload)
        try:
            first, last = parse_day(meta.get("start_date")), parse_day(meta.get("end_date"))
        except ValueError as error:
            raise SchemaError(f"rankings-daily meta: {error}") from None
        as_of = parse_as_of(meta.get("as_of"), "rankings-daily meta.as_of")
        rows = [row for row in payload["data"] if isinstance(row, dict)]
        if len(rows) != len(payload["data"]):
            raise SchemaError("rankings-daily 'data' holds something other than row objects; nothing was stored")
        return SourceBatch("api", validated(rows, as_of), last, as_of, (first, last))

    async def history(self, since: date | None, today: date) -> AsyncIterator[SourceBatch]:
        """The latest window first (a default call), then older windows back to ``since``, newest first."""
        # The latest completed day is at most yesterday, so [today - 366, yesterday] is within the 366-day limit.
        start = None if since is None else max(since, DATA_START, today - timedelta(days=MAX_WINDOW_DAYS))
        latest = await self.fetch(start)
        yield latest
        if since is None:
            return
        frontier = latest.reported_through
        end = latest.window[0] - timedelta(days=1)
        while end >= max(since, DATA_START):
            begin = max(since, DATA_START, end - timedelta(days=MAX_WINDOW_DAYS - 1))
            batch = await self.fetch(begin, end)
            # Completeness comes from the default call: older windows are complete up to its frontier.
            yield SourceBatch(batch.source, batch.validated, frontier, batch.as_of, batch.window, batch.notes)
            end = begin - timedelta(days=1)
