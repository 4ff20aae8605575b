"""Trial: ``kill -9`` during a fan-out to webhooks that cannot say whether a send arrived (no ``status_url``).

Queues ``--messages`` digests × ``--destinations`` webhooks (default 25 × 40 = 1,000 deliveries), then starts
``rankbot outbox send`` and kills it with SIGKILL at a random moment after its first delivery arrives, ``--kills``
times, and finishes the rest with clean runs. Prints what the receiver got: deliveries lost (must be 0), extra copies,
and extra copies per kill next to ``worker_concurrency`` (a crash may resend at most what was in flight).

Run: .venv/bin/python benchmarks/bench_crash.py [--kills 25] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.demo.receiver import FakeWebhook
from digests.delivery import Variant
from digests.messages import notice_message
from storage.delivery import DeliveryStore
from storage.engine import engine_for, upgrade_database


def write_config(path: Path, database: str, hook: FakeWebhook, destinations: int, concurrency: int) -> None:
    lines = [
        "[openrouter]",
        'base_url = "http://127.0.0.1:9"',
        "[storage]",
        f"database_url = {json.dumps(database)}",
        "[service]",
        f"worker_concurrency = {concurrency}",
        "delivery_base_seconds = 0",
        "delivery_cap_seconds = 0",
    ]
    for n in range(destinations):
        lines += [
            "[[outputs]]",
            f'name = "d{n:02}"',
            'kind = "webhook"',
            f"url = {json.dumps(hook.hook_url(f'd{n:02}'))}",
        ]
    path.write_text("\n".join(lines) + "\n")


def rankbot(config: Path, *args: str) -> subprocess.Popen[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("RANKBOT_")}
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args, "--config", str(config)],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=25)
    parser.add_argument("--messages", type=int, default=25)
    parser.add_argument("--destinations", type=int, default=40)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as folder, FakeWebhook(delay=(0.01, 0.05)) as hook:
        database = f"sqlite:///{Path(folder) / 'crash.db'}"
        config = Path(folder) / "config.toml"
        write_config(config, database, hook, args.destinations, args.concurrency)
        rankbot(config, "outbox", "send").wait()  # creates the schema and the destinations
        engine = engine_for(database)
        upgrade_database(engine)
        store = DeliveryStore(engine)
        names = [f"d{n:02}" for n in range(args.destinations)]
        now = datetime(2026, 11, 20, tzinfo=UTC)
        for n in range(args.messages):
            store.queue(notice_message(f"crash-{n}", f"message {n}", now), [(name, Variant.FULL) for name in names])
        kills = 0
        marks = []  # where each run's deliveries start in hook.received
        for _ in range(args.kills):
            arrived = len(hook.received)
            marks.append(arrived)
            process = rankbot(config, "outbox", "send")
            deadline = time.monotonic() + 20
            while len(hook.received) == arrived and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.3))
            if process.poll() is None:
                process.kill()
                kills += 1
            process.wait()
        for _ in range(3):
            marks.append(len(hook.received))
            rankbot(config, "outbox", "send").wait()
        backlog = store.backlog()
        engine.dispose()
        copies = hook.copies()
        received = [(r.name, r.delivery_id) for r in hook.received]
    # A copy that arrives in run n+1 of something already received was resent after the kill of run n.
    # A copy received again later was delivered-but-unrecorded when the run that first delivered it was killed.
    marks.append(len(received))
    first_run: dict[tuple[str, str], int] = {}
    per_kill = [0] * len(marks)
    for run, (start, end) in enumerate(itertools.pairwise(marks)):
        for item in received[start:end]:
            if item in first_run:
                per_kill[first_run[item]] += 1
            else:
                first_run[item] = run
    wanted = args.messages * args.destinations
    lost = wanted - len(copies)
    extra = sum(copies.values()) - len(copies)
    print(
        f"{wanted} deliveries to {args.destinations} webhooks without status_url, {kills} kill -9 during the fan-out "
        f"(worker_concurrency {args.concurrency}): {sum(copies.values())} copies received, lost {lost}, "
        f"duplicates {extra} ({extra / max(kills, 1):.1f} per kill on average, at most {max(per_kill, default=0)} "
        f"after one kill; at most {max(copies.values(), default=0)} copies of any); backlog {backlog}"
    )


if __name__ == "__main__":
    main()
