"""Benchmark: backfill generated history through the real pipeline into a fresh SQLite file.

Runs the keyed Data API path end to end (local fake server → httpx → validation → completeness → SQLite).
Targets (issue #2): 645 days × 51 rows ≤ 2 s; 3 years with 400 models ≤ 20 s and peak RSS ≤ 300 MB.
Run: .venv/bin/python benchmarks/bench_backfill.py
"""

from __future__ import annotations

import asyncio
import resource
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bot import pipeline
from bot.config_loading import load_settings
from bot.demo.generator import generate_history
from bot.demo.server import FakeOpenRouter

TODAY = date(2026, 11, 20)

KEY_ENV = "BENCH_OPENROUTER_KEY"


def backfill(days: int, models: int, today: date = TODAY) -> None:
    history = generate_history(end=today - timedelta(days=1), days=days, models=models)
    rows = sum(len(s.rows) + 1 for s in history.days)
    with tempfile.TemporaryDirectory() as folder, FakeOpenRouter(history.days, today=today, api_key="k") as fake:
        settings = load_settings(
            None,
            {
                "RANKBOT_OPENROUTER_BASE_URL": fake.url,
                "RANKBOT_OPENROUTER_API_KEY_ENV": KEY_ENV,
                "RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{Path(folder) / 'bench.db'}",
            },
        )
        started = time.perf_counter()
        report = asyncio.run(pipeline.backfill(settings, {KEY_ENV: "k"}, history.days[0].day, today))
        elapsed = time.perf_counter() - started
    assert len(report.stored) == days, (len(report.stored), report.rejected[:3])
    calls = len(fake.requests_to("rankings-daily"))
    print(f"backfill {days} days × ≤51 rows ({rows} rows, {models} models): {elapsed:.2f} s, {calls} API call(s)")


def main() -> None:
    backfill(645, 60)
    backfill(3 * 365, 400, today=date(2028, 1, 10))  # the Data API's history starts 2025-01-01
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MB")


if __name__ == "__main__":
    main()
