"""The OpenRouter adapters against a real fake server on 127.0.0.1, with scripted faults.

Each fault has one right outcome: a retry that succeeds, or a clear ``SourceError``; never wrong data.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.bootstrap import fetcher_for, http_client
from bot.demo.generator import SyntheticHistory
from bot.demo.server import EXPORTS_PATH, FakeOpenRouter, Fault
from bot.sources.catalogue import OpenRouterCatalogueClient
from bot.sources.dataapi import OpenRouterDataClient
from bot.sources.errors import SchemaError, SourceError, SourceRefusedError, SourceUnavailableError
from bot.sources.exports import MANIFEST, OpenRouterExportsClient
from bot.sources.marks import SourceMarks
from bot.sources.retry import RetryPolicy, retry_after_seconds
from tests.conftest import API_KEY, TODAY, RecordingSleep, settings_for

API = "/api/v1/datasets/rankings-daily"


@pytest.fixture
async def client(fake: FakeOpenRouter, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with http_client(settings_for(fake.url, tmp_path)) as client:
        yield client


def data_api(
    client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep, key: str = API_KEY
) -> OpenRouterDataClient:
    return OpenRouterDataClient(fetcher_for(client, settings_for(str(client.base_url), tmp_path), sleep), key)


def exports(client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep) -> OpenRouterExportsClient:
    base = str(client.base_url).rstrip("/")
    return OpenRouterExportsClient(fetcher_for(client, settings_for(base, tmp_path), sleep), base)


async def test_default_call_reads_completion_frontier_and_rows(
    client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep, history: SyntheticHistory
) -> None:
    """A default Data API call returns the last 30 days as validated snapshots, complete through meta.end_date."""
    batch = await data_api(client, tmp_path, sleep).fetch()
    assert batch.reported_through == TODAY - timedelta(days=1)
    assert batch.validated.rejected == ()
    assert batch.validated.days[-1].rows == history.days[-1].rows
    assert batch.validated.days[-1].other_tokens == history.days[-1].other_tokens


async def test_backfill_uses_366_day_windows(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep
) -> None:
    """Two years of history take two calls, each within the API's 366-day limit, newest first."""
    source = data_api(client, tmp_path, sleep)
    batches = [b async for b in source.history(TODAY - timedelta(days=600), TODAY)]
    windows = [(r.query.get("start_date"), r.query.get("end_date")) for r in fake.requests_to(API)]
    assert len(batches) == len(windows) == 2
    assert windows[0] == ((TODAY - timedelta(days=366)).isoformat(), None)
    assert windows[1] == ((TODAY - timedelta(days=600)).isoformat(), (TODAY - timedelta(days=367)).isoformat())
    assert all(b.reported_through == TODAY - timedelta(days=1) for b in batches)


async def test_backfill_stops_at_the_first_day_of_data(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep
) -> None:
    """The Data API starts on 2025-01-01: earlier dates are not asked for."""
    source = data_api(client, tmp_path, sleep)
    _ = [b async for b in source.history(date(2024, 6, 1), TODAY)]
    assert min(r.query["start_date"] for r in fake.requests_to(API)) == "2025-01-01"


@pytest.mark.parametrize(
    "fault",
    [
        Fault(API, "status", status=500, body="oops"),
        Fault(API, "status", status=503, body=""),
        Fault(API, "reset"),
        Fault(API, "delay", seconds=1.5),
        Fault(API, "status", status=429, body='{"error": {"code": 429, "message": "slow down"}}'),
    ],
    ids=["500", "503", "reset", "read-timeout", "429-no-retry-after"],
)
async def test_transient_faults_are_retried(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep, fault: Fault
) -> None:
    """Timeouts, resets, 5xx and 429 are retried with backoff; the retry gets the real data."""
    fake.add_fault(fault)
    batch = await data_api(client, tmp_path, sleep).fetch()
    assert len(batch.validated.days) == 31
    assert len(fake.requests_to(API)) == 2
    assert len(sleep.delays) == 1


async def test_retry_after_is_honoured(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep
) -> None:
    """A 429 with ``Retry-After: 2`` waits at least 2 s before the next try."""
    fake.add_fault(Fault(API, "status", status=429, body="{}", headers={"Retry-After": "2"}))
    await data_api(client, tmp_path, sleep).fetch()
    assert sleep.delays[0] >= 2


async def test_retries_are_bounded(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep
) -> None:
    """A source that keeps failing gives a clear error after the configured number of tries."""
    fake.add_fault(Fault(API, "status", status=500, times=10))
    with pytest.raises(SourceUnavailableError, match=r"after 3 tries \(HTTP 500\)"):
        await data_api(client, tmp_path, sleep).fetch()
    assert len(fake.requests_to(API)) == 3


def test_full_jitter_stays_within_bounds() -> None:
    """Every delay lies in ``[0, min(cap, base·2^n)]``."""
    import random

    policy, rng = RetryPolicy(attempts=10, base=0.5, cap=8.0), random.Random(1)
    for attempt in range(10):
        delays = [policy.delay(attempt, rng) for _ in range(200)]
        assert min(delays) >= 0 and max(delays) <= min(8.0, 0.5 * 2**attempt)


@pytest.mark.parametrize(("value", "expected"), [("2", 2.0), ("0", 0.0), ("soon", None), (None, None)])
def test_retry_after_parsing(value: str | None, expected: float | None) -> None:
    assert retry_after_seconds(value) == expected


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault(API, "html"), "got an HTML page"),
        (Fault(API, "truncate"), "not valid JSON"),
        (Fault(API, "edit", edit=lambda p: {**p, "meta": {**p["meta"], "version": "v2"}}), "meta.version 'v2'"),
        (Fault(API, "edit", edit=lambda p: {"meta": p["meta"]}), "no 'data' list"),
        (Fault(API, "edit", edit=lambda p: {"data": p["data"]}), "no 'meta' object"),
        (Fault(API, "status", status=400, body='{"error": {"code": 400, "message": "bad range"}}'), "bad range"),
        (Fault(API, "status", status=302, headers={"Location": "http://127.0.0.1:9/"}), "does not follow redirects"),
    ],
    ids=["html-200", "truncated", "version-v2", "no-data", "no-meta", "400", "redirect"],
)
async def test_unusable_answers_are_errors_not_data(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep, fault: Fault, message: str
) -> None:
    """HTML with 200, truncated JSON, schema drift, a new version, refusals and redirects raise clear errors."""
    fake.add_fault(fault)
    with pytest.raises(SourceError, match=message):
        await data_api(client, tmp_path, sleep).fetch()


async def test_bad_key_is_refused_without_leaking_it(
    client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep
) -> None:
    """A 401 says to check the key's environment variable, and never prints the key."""
    with pytest.raises(SourceRefusedError, match="rejected the API key") as caught:
        await data_api(client, tmp_path, sleep, key="wrong-secret-123").fetch()
    assert "wrong-secret-123" not in str(caught.value)


async def test_connect_timeout_is_retried_then_reported(tmp_path: Path, sleep: RecordingSleep) -> None:
    """A server whose accept queue is full never completes the handshake: connect timeouts, bounded."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(8):  # fill the accept backlog so later SYNs are dropped
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        settings = settings_for(f"http://127.0.0.1:{port}", tmp_path, RANKBOT_OPENROUTER_CONNECT_TIMEOUT_SECONDS="0.2")
        async with http_client(settings) as client:
            source = OpenRouterDataClient(fetcher_for(client, settings, sleep), API_KEY)
            with pytest.raises(SourceUnavailableError, match="after 3 tries"):
                await source.fetch()
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# -- keyless exports -------------------------------------------------------------------------------------------
async def test_exports_manifest_csv_with_checksum(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep, history: SyntheticHistory
) -> None:
    """The manifest names today's CSV; its sha256 is checked; days are complete before the snapshot date."""
    batch, snapshot = await exports(client, tmp_path, sleep).latest()
    assert snapshot == TODAY
    assert batch is not None and batch.reported_through == TODAY - timedelta(days=1)
    assert len(batch.validated.days) == 30
    assert batch.validated.days[-1].rows == history.days[-1].rows


@pytest.mark.parametrize("validators", [True, False])
async def test_an_unchanged_export_is_not_downloaded_again(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep, validators: bool
) -> None:
    """With what the manifest said last time, an unchanged export costs one request: a 304 to If-None-Match
    where the source gives an ETag, else the manifest, whose CSV sha256 is the one already stored."""
    fake.validators = validators
    marks = SourceMarks()
    first = exports(client, tmp_path, sleep)
    first.marks = marks
    batch, _ = await first.latest()
    assert batch is not None and ("etag:manifest" in marks.changed) is validators
    fake.requests.clear()
    again = exports(client, tmp_path, sleep)
    again.marks = SourceMarks(marks.changed)
    assert await again.latest() == (None, TODAY)
    assert [r.path for r in fake.requests] == [MANIFEST]
    assert ("If-None-Match" in fake.requests[0].headers) is validators
    assert again.marks.changed == {}
    fake.today += timedelta(days=1)  # a new snapshot: a new hash, downloaded
    batch, snapshot = await again.latest()
    assert batch is not None and snapshot == fake.today


async def test_exports_checksum_mismatch_is_refused(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep
) -> None:
    """A CSV that does not match the manifest's sha256 is not stored."""
    fake.add_fault(Fault(f"{EXPORTS_PATH}{TODAY.isoformat()}.csv", "truncate"))
    with pytest.raises(SchemaError, match="sha256"):
        await exports(client, tmp_path, sleep).latest()


async def test_manifest_pointing_elsewhere_is_not_followed(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep
) -> None:
    """File URLs outside the configured base URL are refused, and no request goes there."""

    def elsewhere(manifest: dict[str, Any]) -> dict[str, Any]:
        manifest["files"]["csv"]["url"] = "http://127.0.0.2:1/steal.csv"
        return manifest

    fake.add_fault(Fault("latest.manifest.json", "edit", edit=elsewhere))
    with pytest.raises(SchemaError, match="points outside"):
        await exports(client, tmp_path, sleep).latest()
    assert len(fake.requests) == 1


async def test_exports_history_walks_dated_snapshots_until_404(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep
) -> None:
    """Backfill without a key: latest export, then dated snapshots 30 days apart until the source has none."""
    batches = [b async for b in exports(client, tmp_path, sleep).history(TODAY - timedelta(days=200), TODAY)]
    assert [b.window[0] for b in batches] == [TODAY - timedelta(days=30), TODAY - timedelta(days=60)]
    asked = [r.path.rsplit("/", 1)[1] for r in fake.requests_to(EXPORTS_PATH)]
    assert asked[-1] == f"{(TODAY - timedelta(days=60)).isoformat()}.csv"  # before first_snapshot: 404 ends it


# -- catalogue -------------------------------------------------------------------------------------------------
async def test_catalogue_reads_names_prices_and_open_weights(
    fake: FakeOpenRouter, client: httpx.AsyncClient, tmp_path: Path, sleep: RecordingSleep, history: SyntheticHistory
) -> None:
    """Catalogue entries become ``ModelInfo``; malformed entries are skipped, not fatal."""
    fake.add_fault(Fault("/api/v1/models", "edit", edit=lambda p: {"data": [*p["data"], {"id": 5}, "junk"]}))
    models = await OpenRouterCatalogueClient(fetcher_for(client, settings_for(fake.url, tmp_path), sleep)).fetch()
    assert len(models) == len(history.catalogue)
    expected = history.catalogue[0]
    got = next(m for m in models if m.permaslug == expected.permaslug)
    assert (got.name, got.author, got.open_weights) == (expected.name, expected.author, expected.open_weights)
    assert got.prompt_price == pytest.approx(expected.prompt_price)


async def test_budget_waits_when_the_minute_is_used_up(tmp_path: Path, sleep: RecordingSleep) -> None:
    """More than ``per_minute`` requests in a minute wait for the window instead of risking a 429."""
    from bot.sources.retry import RequestBudget

    now = [0.0]
    budget = RequestBudget(per_minute=3, per_day=5, clock=lambda: now[0], sleep=sleep)
    for _ in range(4):
        await budget.spend()
    assert sleep.delays == [60.0]
    await budget.spend()
    with pytest.raises(SourceError, match="daily limit of 5"):
        await budget.spend()


def test_dates_in_windows_are_iso(history: SyntheticHistory) -> None:
    """Sanity of the generated history used above: consecutive days ending before TODAY."""
    days = [s.day for s in history.days]
    assert days == [days[0] + timedelta(days=i) for i in range(len(days))]
    assert days[-1] == TODAY - timedelta(days=1) and isinstance(days[0], date)
