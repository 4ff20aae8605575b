"""A published site for the web tests: a real SQLite file filled with generated history, digests published by the
real planner (with their charts), one of them later restated and corrected, and the web app served by uvicorn on
127.0.0.1 in a thread."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any

import uvicorn

from bot.config import WebConfig
from bot.demo.generator import SyntheticHistory
from bot.metrics import Metrics
from bot.planner import Planner
from bot.web.app import WebParts, web_app
from bot.web.site import SiteData
from digests.delivery import Destination, Subscription
from digests.model import DaySnapshot, DigestSettings, ModelInfo
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.engine import open_database
from storage.repository import Repository
from tests.processes import free_port


@dataclass
class Published:
    repo: Repository
    store: DeliveryStore
    archive: Archive
    history: tuple[DaySnapshot, ...]
    corrected: str
    """A day digest whose day was restated: its r1 is revised, its r2 the correction."""
    correction: str


def redated(snapshot: DaySnapshot, day: Any, as_of: datetime) -> DaySnapshot:
    rows = [(row.permaslug, row.tokens) for row in snapshot.rows]
    return DaySnapshot.of(day, [*rows, ("other", snapshot.other_tokens or 0)], as_of)


def publish(database: Path, history: SyntheticHistory, catalogue: Sequence[ModelInfo] | None = None) -> Published:
    """Store ``history`` but its last 3 days as the baseline, then publish each of those days and a week through the
    planner (charts drawn), then restate one published day so that its ranking changes: a correction."""
    engine = open_database(f"sqlite:///{database}")
    clock = _Clock(datetime.combine(history.days[-4].day + timedelta(days=1), clock_time(12), tzinfo=UTC))
    repo, store, archive = Repository(engine, now=clock), DeliveryStore(engine, now=clock), Archive(engine, now=clock)
    repo.add_days(history.days[:-3], "api")
    repo.replace_models(history.catalogue if catalogue is None else catalogue)
    every_day = Subscription(notable_only=False, weekly_cron="30 3 * * *")  # a week digest every morning
    store.sync_destinations([Destination("everything", "console", {}, every_day)])
    planner = Planner(repo, store, DigestSettings(), charts=archive)
    planner.plan(clock.now)  # the baseline
    for snapshot in history.days[-3:]:
        clock.now = datetime.combine(snapshot.day + timedelta(days=1), clock_time(4), tzinfo=UTC)
        repo.add_day(snapshot)
        planner.plan(clock.now)
    last = history.days[-2]
    swapped = [(row.permaslug, row.tokens) for row in last.rows]
    swapped[0], swapped[1] = (swapped[0][0], swapped[1][1]), (swapped[1][0], swapped[0][1])
    clock.now += timedelta(hours=2)
    repo.add_day(DaySnapshot.of(last.day, [*swapped, ("other", last.other_tokens or 0)], clock.now))
    report = planner.plan(clock.now)
    corrected = f"day:{last.day.isoformat()}:r1"
    correction = next(m for m in report.corrections if m.startswith(f"day:{last.day.isoformat()}"))
    return Published(repo, store, archive, repo.history(), corrected, correction)


class _Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


@contextlib.contextmanager
def serving(published: Published, web: WebConfig | None = None, **health: Any) -> Iterator[str]:
    """The web app over ``published`` on 127.0.0.1 (uvicorn in a thread); yields its base URL."""
    data = SiteData(published.repo, published.archive, DigestSettings())
    with serving_app(web_app(WebParts(lambda: {"status": "ok", **health}, Metrics(), web or WebConfig(), data))) as url:
        yield url


@contextlib.contextmanager
def serving_app(app: Any) -> Iterator[str]:
    """An ASGI app on 127.0.0.1 (uvicorn in a thread, on its own event loop); yields its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", proxy_headers=False)
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the web app did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def hostile_catalogue(catalogue: Sequence[ModelInfo], names: Mapping[int, str]) -> list[ModelInfo]:
    """The catalogue with the models at the given positions renamed (and their author too)."""
    renamed = list(catalogue)
    for index, name in names.items():
        renamed[index] = replace(renamed[index], name=name, author=name[:60])
    return renamed


def slow_once(engine: Any, seconds: float) -> None:
    """The next query waits ``seconds`` (a database under load), then the database is quick again."""
    from sqlalchemy import event

    pending = [seconds]

    def before(*_: Any) -> None:
        if pending:
            time.sleep(pending.pop())

    event.listen(engine, "before_cursor_execute", before)
