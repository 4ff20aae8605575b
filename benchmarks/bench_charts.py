"""Benchmark: render the bump chart and the share chart (target ≤ 300 ms each, after import), and the cost of
importing matplotlib, which only commands that draw pay.

Run: .venv/bin/python benchmarks/bench_charts.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from datetime import date, timedelta

from bot.demo.generator import generate_history
from digests.digest import build_digest
from digests.model import DigestSettings
from digests.series import bump_series, share_series, sparkline

TODAY = date(2026, 11, 20)
RUNS = 10


def import_cost() -> float:
    """Seconds to import matplotlib's figure and Agg backend in a fresh interpreter."""
    code = "import time; t = time.perf_counter(); import {}; print(time.perf_counter() - t)"
    with_mpl = subprocess.run(
        [sys.executable, "-c", code.format("matplotlib.figure, matplotlib.backends.backend_agg")],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(with_mpl.stdout)


def main() -> None:
    history = generate_history(end=TODAY - timedelta(days=1), days=60)
    catalogue = {m.permaslug: m for m in history.catalogue}
    digest = build_digest("week", history.days, catalogue, DigestSettings())
    bump, share = bump_series(digest, history.days), share_series(digest, history.days)
    spark = sparkline(digest.rows[0].permaslug, history.days, catalogue)
    print(f"import matplotlib (fresh interpreter): {import_cost() * 1000:.0f} ms")
    started = time.perf_counter()
    from digests.render.charts import bump_chart, share_chart, sparkline_chart

    bump_chart(bump)  # the first drawing loads fonts and the Agg backend
    print(f"first chart, including import and font loading: {(time.perf_counter() - started) * 1000:.0f} ms")
    for label, draw, series in (
        ("bump chart (1200×675)", bump_chart, bump),
        ("share chart (1200×675)", share_chart, share),
        ("sparkline (600×160)", sparkline_chart, spark),
    ):
        samples = []
        for _ in range(RUNS):
            begun = time.perf_counter()
            draw(series)  # type: ignore[operator]
            samples.append((time.perf_counter() - begun) * 1000)
        print(f"{label:<24} median {statistics.median(samples):6.1f} ms, worst {max(samples):6.1f} ms")


if __name__ == "__main__":
    main()
