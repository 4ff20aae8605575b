"""What the service is made of, built from settings: ``open_parts`` locks (SQLite), migrates, syncs the configured
destinations and builds the outbox worker, the planner and (with ``[email] enabled``) the newsletter's letter
worker; ``send_due`` is ``rankbot outbox send`` on top of it."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import httpx
from sqlalchemy.exc import SQLAlchemyError

from bot.chat.connections import channel_factories
from bot.config import Settings
from bot.config_outputs import Output
from bot.leadership import Leadership, SqliteInstanceLock
from bot.metrics import Metrics
from bot.outbox import OutboxWorker, WorkReport
from bot.planner import Planner
from bot.publishers.registry import Publishers, publisher_factories
from digests.delivery import Destination, RetrySchedule
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.engine import DatabaseError, checked_engine, database_problem, upgrade_database
from storage.repository import Repository
from storage.service_state import ServiceState

if TYPE_CHECKING:
    from bot.email.fanout import LetterWorker


def destination_of(output: Output, settings: Settings) -> Destination:
    return Destination(output.name, output.kind, output.target(), output.subscription(settings.service))


def instance_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class Parts:
    """What the service is made of, built from settings by ``open_parts``."""

    settings: Settings
    environ: Mapping[str, str]
    repo: Repository
    store: DeliveryStore
    state: ServiceState
    leadership: Leadership
    metrics: Metrics
    worker: OutboxWorker
    planner: Planner
    letters: LetterWorker | None = None
    """The newsletter's letter worker when ``[email] enabled``."""


@contextlib.asynccontextmanager
async def open_parts(settings: Settings, environ: Mapping[str, str], name: str | None = None) -> AsyncIterator[Parts]:
    """Lock (SQLite), migrate, sync the configured destinations, and build the worker and planner."""
    url = settings.storage.database_url
    engine = checked_engine(url)
    lock = SqliteInstanceLock(engine) if engine.dialect.name == "sqlite" else None
    try:
        if lock is not None:
            lock.acquire()
        try:
            upgrade_database(engine)
        except SQLAlchemyError as error:
            raise DatabaseError(database_problem(error, url)) from None
        repo = Repository(engine)
        store = DeliveryStore(engine)
        store.sync_destinations(destination_of(output, settings) for output in settings.destinations())
        metrics = Metrics()
        service = settings.service
        async with (
            httpx.AsyncClient(follow_redirects=False, trust_env=False) as client,
            contextlib.AsyncExitStack() as closing,
        ):
            channels = channel_factories(settings, environ, engine, closing)
            letters = None
            if settings.email.enabled:
                from bot.email.fanout import newsletter_parts

                letters, mail = newsletter_parts(settings, environ, store, name or instance_name())
                channels |= mail
            else:
                store.sync_destinations([], origin="email")
            worker = OutboxWorker(
                store,
                Publishers(publisher_factories(client, channels), environ),
                RetrySchedule(service.delivery_attempts, service.delivery_base_seconds, service.delivery_cap_seconds),
                name=name or instance_name(),
                concurrency=service.worker_concurrency,
                batch=service.worker_batch,
                lease_seconds=service.claim_lease_seconds,
                metrics=metrics,
            )
            charts = Archive(engine) if settings.web.enabled else None
            planner = Planner(
                repo, store, settings.digest.settings(), timedelta(hours=service.late_grace_hours), charts
            )
            state, leadership = ServiceState(engine), Leadership(engine)
            yield Parts(settings, environ, repo, store, state, leadership, metrics, worker, planner, letters)
    finally:
        if lock is not None:
            lock.release()
        engine.dispose()


async def send_due(settings: Settings, environ: Mapping[str, str]) -> WorkReport:
    """``rankbot outbox send``: settle stranded rows, deliver everything due now, exit."""
    async with open_parts(settings, environ) as parts:
        single = parts.leadership.postgres is False
        reconciled = await parts.worker.reconcile(single_instance=single)
        report = await parts.worker.drain()
        report.reconciled = reconciled
        return report
