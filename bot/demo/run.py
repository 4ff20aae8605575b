"""``rankbot demo``: the real pipeline, offline, against a local OpenRouter-compatible server.

Steps: generate 90 days of history (about 60 permaslugs with ``:free`` variants, entrants, re-entries, drop-outs and
a change of #1); serve all but the last day; backfill through the keyed Data API; then a day passes — the server
publishes the last day and restates an earlier one — and a keyless poll (daily exports) stores the new day and
the restatement as a new revision. Day and week digests are printed and written to ``./out/``.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
from rich.console import Console

from bot import pipeline
from bot.config import Settings
from bot.demo.generator import generate_history
from bot.demo.receiver import FakeWebhook
from bot.demo.server import FakeOpenRouter
from bot.outbox import OutboxWorker
from bot.outputs import rendered, write_charts, write_digest_files
from bot.planner import Planner
from bot.publishers.registry import Publishers, publisher_factories
from digests.delivery import Destination, RetrySchedule, Subscription
from digests.model import OTHER
from storage.delivery import DeliveryStore
from storage.engine import engine_for
from storage.repository import Repository

DEMO_KEY_ENV = "RANKBOT_DEMO_OPENROUTER_KEY"
DEMO_KEY = "demo-key-not-a-secret"
DAYS = 90


def demo_settings(base: Settings, base_url: str, data_dir: Path, out_dir: Path, source: str) -> Settings:
    """The user's settings (digest knobs, output formats) pointed at the local server and a demo database."""
    openrouter = base.openrouter.model_copy(
        update={"base_url": base_url, "source": source, "api_key_env": DEMO_KEY_ENV, "retry_base_seconds": 0.05}
    )
    storage = base.storage.model_copy(update={"database_url": f"sqlite:///{data_dir / 'demo.db'}"})
    output = base.output.model_copy(update={"directory": out_dir})
    return base.model_copy(update={"openrouter": openrouter, "storage": storage, "output": output})


class DemoOutbox:
    """The service's delivery path, offline: plan what the new day needs, then deliver it through the outbox to
    a signed webhook on 127.0.0.1."""

    def __init__(self, settings: Settings) -> None:
        self.engine = engine_for(settings.storage.database_url)
        self.repo = Repository(self.engine)
        self.store = DeliveryStore(self.engine)
        self.planner = Planner(self.repo, self.store, settings.digest.settings())
        self.receiver = FakeWebhook(secret=DEMO_KEY).__enter__()
        target = {"url": self.receiver.hook_url("demo"), "secret_env": DEMO_KEY_ENV}
        target["status_url"] = self.receiver.status_url("demo")
        self.store.sync_destinations(
            [Destination("demo-webhook", "webhook", target, Subscription(notable_only=False, quiet_day="line"))],
            origin="demo",
        )

    def plan(self) -> list[str]:
        return self.planner.plan(datetime.now(UTC)).queued

    def deliver(self) -> str:
        queued = self.plan()

        async def send() -> int:
            async with httpx.AsyncClient(trust_env=False) as client:
                publishers = Publishers(publisher_factories(client), {DEMO_KEY_ENV: DEMO_KEY})
                worker = OutboxWorker(self.store, publishers, RetrySchedule(), name="demo")
                return (await worker.drain()).sent

        try:
            sent = asyncio.run(send())
            copies = sorted(self.receiver.copies().items())
        finally:
            self.receiver.__exit__()
            self.engine.dispose()
        arrived = ", ".join(f"{key[1]} ×{count}" for key, count in copies) or "nothing"
        return (
            f"demo: outbox queued {', '.join(queued) or 'nothing'}; sent {sent} to a signed local webhook, "
            f"which received {arrived}"
        )


def run_demo(base: Settings, out_dir: Path, data_dir: Path, out: Console, err: Console) -> None:
    today = datetime.now(UTC).date()
    history = generate_history(end=today - timedelta(days=1), days=DAYS)
    for stale in data_dir.glob("demo.db*"):
        stale.unlink()
    environ = {**os.environ, DEMO_KEY_ENV: DEMO_KEY}
    with FakeOpenRouter(history.days[:-1], history.catalogue, today=today, api_key=DEMO_KEY) as server:
        err.print(
            f"demo: local OpenRouter-compatible server on {server.url} ({DAYS} generated days)",
            highlight=False,
        )
        api = demo_settings(base, server.url, data_dir, out_dir, "api")
        since = history.days[0].day
        report = asyncio.run(pipeline.backfill(api, environ, since, today))
        outbox = DemoOutbox(api)
        outbox.plan()  # the first run is the baseline: nothing is published for past days
        err.print(
            f"demo: backfill via the keyed Data API stored {len(report.stored)} complete days "
            f"({len(server.requests_to('rankings-daily'))} request(s))",
            highlight=False,
        )
        # A day passes: the last day is published, and an earlier day is restated slightly.
        last = history.days[-1]
        server.days[last.day] = last
        restated = history.days[-3]
        top = restated.rows[0]
        as_of = datetime.combine(today, time(1, 46), tzinfo=UTC)
        server.restate(
            restated.day,
            {top.permaslug: top.tokens + top.tokens // 6000, OTHER: 1 + (restated.other_tokens or 0)},
            as_of,
        )
        exports = demo_settings(base, server.url, data_dir, out_dir, "exports")
        report = asyncio.run(pipeline.poll(exports, environ, today))
        stored = ", ".join(d.isoformat() for d in report.stored) or "nothing"
        revised = ", ".join(d.isoformat() for d in report.revised) or "nothing"
        err.print(f"demo: poll via the keyless exports stored {stored}; restated: {revised}", highlight=False)
        err.print(outbox.deliver(), highlight=False)
    written: list[Path] = []
    for kind in ("day", "week"):
        built = pipeline.digest_for(exports, kind)
        written += write_digest_files(built.digest, out_dir, exports.output.formats)
        if exports.output.charts:
            written += write_charts(built.digest, built.history, built.catalogue, out_dir)
    out.print(rendered(built.digest, "text"), highlight=False, markup=False, soft_wrap=True)
    err.print("demo: wrote " + ", ".join(str(path) for path in written), highlight=False)
