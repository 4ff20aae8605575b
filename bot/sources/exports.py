"""The keyless daily exports: ``latest.manifest.json`` → the CSV it names (sha256 checked), and dated snapshots.

Each export is a trailing 30-day window; a day D is complete once a snapshot dated after D holds it. Dated snapshots
(``<YYYY-MM-DD>.csv``) are immutable and exist only from 2026-09-19, so without a key history reaches back about
30 days plus those snapshots. The manifest's file URLs are followed only when they stay under the configured base.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import httpx

from bot.sources.batch import SourceBatch, json_of, parse_as_of, validated
from bot.sources.errors import SchemaError
from bot.sources.marks import SourceMarks
from bot.sources.retry import Fetcher
from digests.days import parse_day

PREFIX = "/api/v1/datasets/exports/rankings-daily/"
MANIFEST = PREFIX + "latest.manifest.json"
HEADER = ["date", "model_permaslug", "rank", "total_tokens", "share_of_daily_tokens"]
WINDOW_DAYS = 30
FIRST_DATED_SNAPSHOT = date(2026, 9, 19)
"""The earliest dated snapshot OpenRouter publishes; older dates answer 404."""
SHA_MARK = "exports:csv_sha256"
SNAPSHOT_MARK = "exports:snapshot_date"


def parse_export_csv(text: str) -> list[dict[str, str]]:
    """Rows of an export CSV (CRLF or LF). The header must be exactly the documented one."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != HEADER:
        raise SchemaError(f"the export CSV's header is {header!r}, expected {','.join(HEADER)}; nothing was stored")
    rows = []
    for line, cells in enumerate(reader, start=2):
        if not cells:
            continue
        if len(cells) != len(HEADER):
            raise SchemaError(f"export CSV line {line} has {len(cells)} fields, expected {len(HEADER)} (truncated?)")
        rows.append(dict(zip(HEADER, cells, strict=True)))
    return rows


@dataclass
class OpenRouterExportsClient:
    """Reads the keyless daily exports under ``base_url``. With ``marks``, an unchanged manifest (``304``, or the
    same CSV sha256 as the last one stored) downloads nothing more."""

    fetcher: Fetcher
    base_url: str
    marks: SourceMarks = field(default_factory=SourceMarks)

    def _own_path(self, url: object) -> str:
        """The path of a manifest URL, refusing any URL outside the configured base."""
        if not isinstance(url, str):
            raise SchemaError("the export manifest names no file URL")
        target, base = httpx.URL(url), httpx.URL(self.base_url)
        inside = (target.scheme, target.host, target.port) == (base.scheme, base.host, base.port)
        if not inside or not target.path.startswith(PREFIX):
            raise SchemaError(f"the export manifest points outside {self.base_url}: {url!r}; not followed")
        return target.path

    async def _csv(self, path: str, sha256: str | None) -> str | None:
        response = await self.fetcher.get(path, not_found_ok=sha256 is None)
        if response is None:
            return None
        if sha256 is not None and hashlib.sha256(response.content).hexdigest() != sha256.lower():
            raise SchemaError(
                f"{path} does not match the manifest's sha256 (truncated or replaced?); nothing was stored"
            )
        text = response.text
        if text.lstrip()[:1] == "<":
            raise SchemaError(f"expected CSV from {path} but got an HTML page; nothing was stored")
        return text

    def _batch(self, text: str, snapshot: date, as_of: datetime) -> SourceBatch:
        rows = parse_export_csv(text)
        for row in rows:
            rank = row.pop("rank")
            row.pop("share_of_daily_tokens")
            if (row["model_permaslug"] == "other") != (rank == ""):
                raise SchemaError(f"export row {row['date']} {row['model_permaslug']} has rank {rank!r}")
        days = validated(rows, as_of)
        window = (snapshot - timedelta(days=WINDOW_DAYS), snapshot - timedelta(days=1))
        return SourceBatch("exports", days, snapshot - timedelta(days=1), as_of, window)

    async def latest(self) -> tuple[SourceBatch | None, date]:
        """The latest export and its snapshot date; no batch when it is the one stored last time."""
        response = await self.fetcher.get(MANIFEST, headers=self.marks.conditional("manifest"))
        assert response is not None
        if response.status_code == 304 and (known := self.marks.get(SNAPSHOT_MARK)):
            return None, date.fromisoformat(known)
        manifest = json_of(response)
        if not isinstance(manifest, dict):
            raise SchemaError("the export manifest is not a JSON object")
        try:
            snapshot = parse_day(manifest.get("snapshot_date"))
            described = manifest["files"]["csv"]
            path, sha256 = self._own_path(described["url"]), str(described["sha256"]).lower()
        except (ValueError, KeyError, TypeError) as error:
            raise SchemaError(f"the export manifest is missing or has a bad field ({error})") from None
        as_of = parse_as_of(manifest.get("retrieved_at"), "export manifest retrieved_at")
        batch = None
        if self.marks.get(SHA_MARK) != sha256:
            text = await self._csv(path, sha256)
            assert text is not None
            batch = self._batch(text, snapshot, as_of)
        self.marks.remember("manifest", response)
        self.marks.set(SHA_MARK, sha256)
        self.marks.set(SNAPSHOT_MARK, snapshot.isoformat())
        return batch, snapshot

    async def snapshot(self, snapshot: date, as_of: datetime) -> SourceBatch | None:
        """The immutable snapshot dated ``snapshot``, or ``None`` when the source has none (404).

        Its ``as_of`` is the snapshot's date at 00:00 UTC: the figures are at least that old.
        """
        text = await self._csv(f"{PREFIX}{snapshot.isoformat()}.csv", None)
        return None if text is None else self._batch(text, snapshot, as_of)

    async def history(self, since: date | None, today: date) -> AsyncIterator[SourceBatch]:
        """The latest export (unless it is the one already stored), then dated snapshots 30 days apart back to
        ``since`` (until the source has none)."""
        latest, snapshot = await self.latest()
        if latest is not None:
            yield latest
        start = snapshot - timedelta(days=WINDOW_DAYS)
        while since is not None and since < start:
            older = await self.snapshot(start, datetime.combine(start, time(0), tzinfo=UTC))
            if older is None:
                return
            yield older
            start = older.window[0]
