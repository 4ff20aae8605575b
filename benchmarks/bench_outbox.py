"""Benchmark: outbox throughput, and time from a newly complete day to every destination posted.

Targets (issues #3 and #8): ≥ 1,000 deliveries/s on SQLite with 1 worker and on PostgreSQL with 4 workers, with each
send recorded as it ends; ≤ 2 s from a new complete day to all destinations posted (fakes, no pacing).

- Throughput: queue 10,000 deliveries (100 messages × 100 webhook destinations) to a fake webhook in its own
  process and drain with 1 and 4 worker processes (4 sends in flight each, claims of up to 100), on SQLite and
  (when RANKBOT_TEST_POSTGRES_URL or --postgres is given) on PostgreSQL; each delivery must arrive exactly once.
  Each figure is the median of 3 runs.
- Latency: a poll against a fake OpenRouter that has one new complete day, then plan and drain to 20 destinations.

Run: .venv/bin/python benchmarks/bench_outbox.py [--postgres postgresql://...]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from multiprocessing import Pipe, Process, Queue
from multiprocessing.connection import Connection
from pathlib import Path

import httpx
from sqlalchemy import text

from bot import pipeline
from bot.config_loading import load_settings
from bot.demo.generator import generate_history
from bot.demo.receiver import FakeWebhook
from bot.demo.server import FakeOpenRouter
from bot.outbox import OutboxWorker
from bot.planner import Planner
from bot.publishers.registry import Publishers, publisher_factories
from digests.delivery import Destination, RetrySchedule, Subscription, Variant
from digests.messages import notice_message
from digests.model import DigestSettings
from storage.delivery import DeliveryStore
from storage.engine import engine_for, upgrade_database
from storage.repository import Repository

TODAY = date(2026, 11, 20)


def fresh(url: str) -> None:
    """An empty database: the SQLite file removed, or the PostgreSQL schema dropped."""
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    if url.startswith("postgresql"):
        engine = engine_for(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()


def queue_bulk(url: str, hook: FakeWebhook, messages: int, destinations: int) -> None:
    engine = engine_for(url)
    upgrade_database(engine)
    store = DeliveryStore(engine)
    targets = [
        Destination(f"d{i}", "webhook", {"url": hook.hook_url(f"d{i}")}, Subscription()) for i in range(destinations)
    ]
    store.sync_destinations(targets)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    for n in range(messages):
        store.queue(notice_message(f"bench-{n}", f"message {n}", now), [(d.name, Variant.FULL) for d in targets])
    engine.dispose()


async def drain(url: str) -> int:
    store = DeliveryStore(engine_for(url))
    async with httpx.AsyncClient(trust_env=False) as client:
        worker = OutboxWorker(
            store,
            Publishers(publisher_factories(client), {}),
            RetrySchedule(),
            name=f"w{os.getpid()}",
            batch=100,
            concurrency=4,
        )
        report = await worker.drain()
    store.engine.dispose()
    return report.sent


def _worker_process(url: str, results: Queue[int]) -> None:
    results.put(asyncio.run(drain(url)))


def _receiver_process(connection: Connection) -> None:
    with FakeWebhook() as hook:
        connection.send(hook.url)
        connection.recv()  # wait until asked for the count
        copies = hook.copies()
        connection.send((len(copies), max(copies.values(), default=0)))


class _Hook:
    def __init__(self, url: str) -> None:
        self.url = url

    def hook_url(self, name: str) -> str:
        return f"{self.url}/hook/{name}"


def throughput(label: str, url: str, workers: int, runs: int = 3) -> None:
    """The median of ``runs`` runs (this machine's figures vary by a third from run to run)."""
    rates = sorted(one_throughput(url, workers) for _ in range(runs))
    print(
        f"{label:<12} {workers} worker(s): median {rates[len(rates) // 2]:6.0f} deliveries/s "
        f"(runs: {', '.join(f'{rate:.0f}' for rate in rates)})"
    )


def one_throughput(url: str, workers: int, messages: int = 100, destinations: int = 100) -> float:
    """Worker processes (as `rankbot run` instances would be) against a receiver in its own process: deliveries
    per second, after checking every delivery arrived exactly once."""
    fresh(url)
    ours, theirs = Pipe()
    receiver = Process(target=_receiver_process, args=(theirs,))
    receiver.start()
    hook = _Hook(ours.recv())
    queue_bulk(url, hook, messages, destinations)  # type: ignore[arg-type]
    results: Queue[int] = Queue()
    started = time.perf_counter()
    processes = [Process(target=_worker_process, args=(url, results)) for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - started
    sent = sum(results.get() for _ in processes)
    ours.send("count")
    distinct, most = ours.recv()
    receiver.join()
    if (sent, distinct, most) != (messages * destinations, messages * destinations, 1):
        raise SystemExit(f"sent {sent}, received {distinct} distinct, at most {most} copies of one: not exactly once")
    return sent / elapsed


def new_day_latency(url: str, destinations: int = 20) -> None:
    fresh(url)
    history = generate_history(end=TODAY - timedelta(days=1), days=60)
    with (
        FakeOpenRouter(history.days[:-1], history.catalogue, today=TODAY, api_key=None) as server,
        FakeWebhook() as hook,
    ):
        settings = load_settings(
            None,
            {
                "RANKBOT_OPENROUTER_BASE_URL": server.url,
                "RANKBOT_OPENROUTER_SOURCE": "exports",
                "RANKBOT_STORAGE_DATABASE_URL": url,
            },
        )
        engine = engine_for(url)
        upgrade_database(engine)
        repo, store = Repository(engine), DeliveryStore(engine)
        store.sync_destinations(
            Destination(f"d{i}", "webhook", {"url": hook.hook_url(f"d{i}")}, Subscription(notable_only=False))
            for i in range(destinations)
        )
        asyncio.run(pipeline.poll_into(repo, settings, {}, TODAY))
        planner = Planner(repo, store, DigestSettings())
        planner.plan(datetime.now(UTC))  # the baseline
        server.days[history.days[-1].day] = history.days[-1]

        async def new_day() -> int:
            await pipeline.poll_into(repo, settings, {}, TODAY)
            await asyncio.to_thread(planner.plan, datetime.now(UTC))
            async with httpx.AsyncClient(trust_env=False) as client:
                worker = OutboxWorker(store, Publishers(publisher_factories(client), {}), RetrySchedule(), name="w")
                return (await worker.drain()).sent

        started = time.perf_counter()
        sent = asyncio.run(new_day())
        elapsed = time.perf_counter() - started
        engine.dispose()
    print(f"new complete day → {sent} destinations posted: {elapsed:.2f} s (poll, store, diff, render, deliver)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres", default=os.environ.get("RANKBOT_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        sqlite = f"sqlite:///{Path(folder) / 'bench.db'}"
        throughput("SQLite", sqlite, 1)
        new_day_latency(f"sqlite:///{Path(folder) / 'latency.db'}")
    if args.postgres:
        throughput("PostgreSQL", args.postgres, 1)
        throughput("PostgreSQL", args.postgres, 4)
        new_day_latency(args.postgres)
    else:
        print("PostgreSQL: skipped (pass --postgres URL or set RANKBOT_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
