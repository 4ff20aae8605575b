"""Benchmark: the public pages under load, beside a hello-world route served by the same process in the same run.

Two years of generated history in a SQLite file, the latest 100 day digests published; the web app (as `rankbot
run` serves it: uvicorn, one process) in its own process; wrk (Debian's `wrk`) at 50 connections for 10 s per URL.
Targets (issue #9): for `/` and `/feed.atom`, p99 ≤ 3 × the hello-world p99 and throughput ≥ 1/3 of hello-world's.

Run: .venv/bin/python benchmarks/bench_web.py [--seconds 10] [--connections 50]
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import tempfile
import time
from datetime import date, timedelta
from multiprocessing import Process
from pathlib import Path

import httpx

from bot.config import WebConfig
from bot.demo.generator import generate_history
from bot.metrics import Metrics
from bot.web.app import WebParts, web_app
from bot.web.site import SiteData
from digests.digest import build_digest
from digests.messages import message_for
from digests.model import DigestSettings
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.engine import open_database
from storage.repository import Repository

TODAY = date(2026, 11, 20)


def fill(database: Path) -> None:
    history = generate_history(end=TODAY - timedelta(days=1), days=730, models=200)
    engine = open_database(f"sqlite:///{database}")
    repo, store = Repository(engine), DeliveryStore(engine)
    repo.add_days(history.days, "api")
    repo.replace_models(history.catalogue)
    for snapshot in history.days[-100:]:
        message = message_for(build_digest("day", history.days, {}, DigestSettings(), end=snapshot.day))
        store.queue(message, [])
    engine.dispose()


def serve(database: Path, port: int) -> None:
    import uvicorn
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    engine = open_database(f"sqlite:///{database}")
    data = SiteData(Repository(engine), Archive(engine), DigestSettings())
    app = web_app(WebParts(lambda: {"status": "ok"}, Metrics(), WebConfig(), data))

    async def hello(_: object) -> PlainTextResponse:
        return PlainTextResponse("hello, world\n")

    app.router.routes.insert(0, Route("/hello", hello))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, proxy_headers=False)


def wait_until_up(url: str, seconds: float = 60.0) -> None:
    """Until ``url`` answers 200 (the server process has started)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the server did not start: {url} did not answer")
        time.sleep(0.2)


def wrk(url: str, seconds: int, connections: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from wrk's latency distribution."""
    output = subprocess.run(
        ["wrk", "--latency", "-t2", f"-c{connections}", f"-d{seconds}s", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def percentile(name: str) -> float:
        value, unit = re.search(rf"\s{name}%\s+([\d.]+)(us|ms|s)", output).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rate, percentile("50"), percentile("99")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as folder:
        database = Path(folder) / "web.db"
        started = time.perf_counter()
        fill(database)
        print(f"2 years of history, 100 published digests: {time.perf_counter() - started:.1f} s to build")
        port = 18731
        server = Process(target=serve, args=(database, port), daemon=True)
        server.start()
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/hello")
            for path in ("/", "/feed.atom"):  # the first request renders; wrk measures what readers then get
                first = time.perf_counter()
                httpx.get(base + path, timeout=60).raise_for_status()
                print(f"first GET {path}: {(time.perf_counter() - first) * 1000:.0f} ms (renders and caches it)")
            figures = {path: wrk(base + path, args.seconds, args.connections) for path in ("/hello", "/", "/feed.atom")}
        finally:
            server.terminate()
            server.join()
    hello_rate, _, hello_p99 = figures["/hello"]
    print(f"wrk, {args.connections} connections, {args.seconds} s each (one server process):")
    for path, (rate, p50, p99) in figures.items():
        verdict = ""
        if path != "/hello":
            ok = p99 <= 3 * hello_p99 and rate >= hello_rate / 3
            verdict = f"  p99 {p99 / hello_p99:.1f}× hello, throughput {rate / hello_rate:.2f}× hello: " + (
                "ok" if ok else "MISSED"
            )
        print(f"  GET {path:<11} {rate:8.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:7.2f} ms{verdict}")


if __name__ == "__main__":
    main()
