"""Benchmark: build and render a week digest over 2 years of stored history.

Target (issue #2): ≤ 100 ms. Measures the whole path a `rankbot digest week` takes after start-up: load every stored
day from SQLite, build the digest, render text, Markdown and JSON — and the pure build + render alone.
Run: .venv/bin/python benchmarks/bench_digest.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bot.demo.generator import generate_history
from bot.outputs import rendered
from digests.digest import build_digest
from digests.model import DigestSettings
from storage.engine import engine_for, upgrade_database
from storage.repository import Repository

TODAY = date(2026, 11, 20)

RUNS = 20


def timed(work: object) -> float:
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def main() -> None:
    history = generate_history(end=TODAY - timedelta(days=1), days=730, models=200)
    catalogue = {m.permaslug: m for m in history.catalogue}
    settings = DigestSettings()
    with tempfile.TemporaryDirectory() as folder:
        engine = engine_for(f"sqlite:///{Path(folder) / 'bench.db'}")
        upgrade_database(engine)
        repo = Repository(engine)
        repo.add_days(history.days, "api")
        repo.replace_models(history.catalogue)

        def from_database() -> None:
            digest = build_digest("week", repo.days(), repo.models(), settings)
            for fmt in ("text", "markdown", "json"):
                rendered(digest, fmt)

        def pure() -> None:
            digest = build_digest("week", history.days, catalogue, settings)
            for fmt in ("text", "markdown", "json"):
                rendered(digest, fmt)

        print(f"week digest over 730 stored days, load + build + render ×3: {timed(from_database):.1f} ms (median)")
        print(f"week digest over 730 days, build + render ×3 (pure core): {timed(pure):.1f} ms (median)")


if __name__ == "__main__":
    main()
