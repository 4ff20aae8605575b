"""``rankbot run``: the service in one process — the scheduler (poll, plan, weekly crons, operator checks), the
outbox worker and the web app — and ``rankbot outbox send``, the worker alone.

The scheduler runs only on the leader (always, on SQLite; the advisory-lock holder, on PostgreSQL). Every job asks
the database what is missing, so late starts, restarts and overlapping ticks publish each digest exactly once.
SIGTERM/SIGINT stop cleanly: the scheduler stops, sends in flight finish, claimed rows not started are given back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from bot import pipeline
from bot.bootstrap import request_budget
from bot.chat.connections import ChatApps
from bot.config import Settings
from bot.health import LAST_POLL, health_report
from bot.launcher import EARLY_SIGNALS, early_signal
from bot.parts import Parts, open_parts
from bot.planner import check_operations
from bot.sources.errors import SourceError
from storage.archive import Archive
from storage.engine import database_problem

log = logging.getLogger(__name__)

REQUESTS = "openrouter_requests"
"""When each OpenRouter request of the last 24 h was made: the budget survives restarts and leader changes."""
LEADER_CHECK_SECONDS = 5.0
SHUTDOWN_GRACE_SECONDS = 30.0


class ServiceError(Exception):
    """The service cannot start; the message says why and what to change."""


def listening_socket(host: str, port: int) -> socket.socket:
    """Bind the web app's socket before anything else starts, so a busy port is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise ServiceError(
            f"cannot listen on {host}:{port} ({error.strerror or error}): set [service] port (or "
            "RANKBOT_SERVICE_PORT) to a free port"
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


def utc_now() -> datetime:
    return datetime.now(UTC)


def poll_retry_delay(failures: int, poll_minutes: float) -> timedelta:
    """How soon to poll again after ``failures`` failed polls in a row: 1, 2, 4 … minutes, at most ``poll_minutes``
    (so one blip does not hold a day's digest back a whole interval)."""
    return timedelta(minutes=min(poll_minutes, 2.0 ** (failures - 1)))


def until_stopped(job: Callable[[], Awaitable[None]]) -> Callable[[], Coroutine[Any, Any, None]]:
    """A scheduled job that a shutdown may interrupt anywhere (mid database read included) with one log line, not a
    traceback from the scheduler: every job is written so that stopping halfway loses nothing."""

    async def run() -> None:
        try:
            await job()
        except asyncio.CancelledError:
            log.info("%s interrupted by shutdown", getattr(job, "__name__", "a job"))

    run.__name__ = getattr(job, "__name__", "job")
    return run


class Service:
    def __init__(self, parts: Parts, now: Any = utc_now, stopping: asyncio.Event | None = None) -> None:
        self.parts = parts
        self.now = now
        self.scheduler = AsyncIOScheduler(timezone=UTC)
        self.stopping = stopping or asyncio.Event()
        self.budget = request_budget(parts.settings, clock=time.time)
        self.polled = asyncio.Event()
        """Set once the first poll has ended (stored or failed): the planner never runs on data older than that."""
        self.poll_failures = 0
        from bot.web.site import SiteData

        self.site_data = SiteData(parts.repo, Archive(parts.store.engine), parts.settings.digest.settings())
        self.chat = ChatApps(parts.settings, parts.environ, parts.store.engine, self.site_data)

    # -- jobs --------------------------------------------------------------------------------------------
    async def poll(self) -> None:
        """One poll, inside OpenRouter's request budget as counted across restarts and instances; then plan. A
        failed poll is tried again sooner than the interval (``poll_retry_delay``)."""
        try:
            stored = await self._poll_once()
        except SQLAlchemyError as error:
            self._poll_failed(database_problem(error, self.parts.settings.storage.database_url))
            stored = False
        finally:
            self.polled.set()
        if stored:
            await self.plan()
            await self.check()

    def _database_failed(self, job: str, error: SQLAlchemyError) -> None:
        log.warning("%s: %s", job, database_problem(error, self.parts.settings.storage.database_url))

    def _poll_failed(self, reason: str) -> None:
        """Count a failed poll and bring the next one forward (``poll_retry_delay``)."""
        self.poll_failures += 1
        delay = poll_retry_delay(self.poll_failures, self.parts.settings.service.poll_minutes)
        log.warning("poll failed (%d in a row), trying again in %s: %s", self.poll_failures, delay, reason)
        job = self.scheduler.get_job("poll")
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC) + delay)

    async def _poll_once(self) -> bool:
        parts = self.parts
        started = time.monotonic()
        self.budget.restore(await asyncio.to_thread(parts.state.state, REQUESTS) or [])
        try:
            report = await pipeline.poll_into(parts.repo, parts.settings, parts.environ, self.now().date(), self.budget)
        except asyncio.CancelledError:
            log.info("poll interrupted by shutdown; nothing half-stored (each window is one transaction)")
            parts.state.set_state(REQUESTS, self.budget.spent())
            return False
        except SourceError as error:
            parts.metrics.polls.labels("error").inc()
            self._poll_failed(str(error))
            await asyncio.to_thread(parts.state.set_state, REQUESTS, self.budget.spent())
            await asyncio.to_thread(parts.state.set_state, "last_poll_error", str(error))
            return False
        self.poll_failures = 0
        await asyncio.to_thread(parts.state.set_state, REQUESTS, self.budget.spent())
        await asyncio.to_thread(parts.state.set_state, "last_poll_error", None)
        parts.metrics.poll_seconds.observe(time.monotonic() - started)
        parts.metrics.polls.labels("rejected" if report.rejected else "ok").inc()
        parts.metrics.rejected_days.inc(len(report.rejected))
        stored = [*report.stored, *report.revised]
        if stored:
            log.info("poll stored %s", ", ".join(day.isoformat() for day in sorted(stored)))
            changed = set(stored)
            window = await asyncio.to_thread(parts.repo.days, min(changed), max(changed))
            rows = sum(len(snapshot.rows) for snapshot in window if snapshot.day in changed)
            parts.metrics.rows_stored.inc(rows)
        await asyncio.to_thread(parts.state.set_state, LAST_POLL, self.now().isoformat())
        return True

    async def plan(self) -> None:
        """Queue what is due. Waits for the first poll, so a restart never plans on what was stored before it was
        down (a weekly digest of a stale week, then another once the poll brings the missed days)."""
        await self.polled.wait()
        try:
            report = await asyncio.to_thread(self.parts.planner.plan, self.now())
        except SQLAlchemyError as error:
            self._database_failed("plan", error)
            return
        if report.queued:
            log.info("queued %s", ", ".join(report.queued))
            self.parts.worker.wake.set()

    async def check(self) -> None:
        service = self.parts.settings.service
        try:
            report = await asyncio.to_thread(
                check_operations,
                self.parts.repo,
                self.parts.store,
                self.now(),
                service.day_expected_at,
                timedelta(hours=service.late_grace_hours),
            )
        except SQLAlchemyError as error:
            self._database_failed("operator checks", error)
            return
        if report.raised:
            self.parts.worker.wake.set()

    def add_jobs(self) -> None:
        service = self.parts.settings.service
        common: dict[str, Any] = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600}
        self.scheduler.add_job(
            until_stopped(self.poll),
            IntervalTrigger(minutes=service.poll_minutes, jitter=service.poll_jitter_seconds or None),
            id="poll",
            next_run_time=datetime.now(UTC),
            **common,
        )
        self.sync_crons()
        self.scheduler.add_job(
            until_stopped(self.check),
            IntervalTrigger(minutes=1),
            id="operations",
            next_run_time=datetime.now(UTC),
            **common,
        )
        self.scheduler.add_job(until_stopped(self._sync_crons), IntervalTrigger(minutes=1), id="crons", **common)

    def sync_crons(self) -> None:
        """One job per weekly schedule in use (a channel subscribed from chat brings its own): added when a
        destination needs it, removed when none does any more."""
        wanted = {
            f"weekly {d.subscription.weekly_cron} {d.subscription.timezone}": d.subscription
            for d in self.parts.store.destinations(enabled_only=True)
            if d.subscription.weekly
        }
        for job in self.scheduler.get_jobs():
            if job.id.startswith("weekly ") and job.id not in wanted:
                job.remove()
        for job_id, subscription in sorted(wanted.items()):
            if self.scheduler.get_job(job_id) is None:
                trigger = CronTrigger.from_crontab(subscription.weekly_cron, timezone=subscription.timezone)
                self.scheduler.add_job(
                    until_stopped(self.plan),
                    trigger,
                    id=job_id,
                    coalesce=True,
                    max_instances=1,
                    misfire_grace_time=3600,
                )

    async def _sync_crons(self) -> None:
        try:
            await asyncio.to_thread(self.sync_crons)
        except SQLAlchemyError as error:
            self._database_failed("weekly schedules", error)

    # -- health ------------------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """What ``/healthz`` says (``bot.health``), and whether this instance holds the Discord gateway."""
        parts = self.parts
        report = health_report(
            parts.repo, parts.store, parts.state, parts.worker.name, parts.worker.lease, parts.leadership.is_leader
        )
        return {**report, **self.chat.health()}

    def last_poll_timestamp(self) -> float | None:
        value = self.parts.state.state(LAST_POLL)
        return datetime.fromisoformat(value).timestamp() if value else None

    # -- running -----------------------------------------------------------------------------------------
    async def _lead(self) -> None:
        """Hold (or try for) the scheduler lock; run the scheduler only while leading."""
        leadership = self.parts.leadership
        while not self.stopping.is_set():
            leading = await asyncio.to_thread(leadership.check)
            if leading and self.scheduler.state != STATE_RUNNING:
                log.info("leading: scheduler running (it polls first, then plans)")
                self.scheduler.resume()
            elif not leading and self.scheduler.state == STATE_RUNNING:
                log.info("not leading: scheduler paused; this instance works the outbox")
                self.scheduler.pause()
            await self.chat.lead(leading)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), LEADER_CHECK_SECONDS)

    async def run(self) -> None:
        parts = self.parts
        service = parts.settings.service
        sock = listening_socket(service.host, service.port)
        parts.metrics.watch(parts.store, self.last_poll_timestamp, lambda: parts.leadership.is_leader)
        self.add_jobs()
        self.scheduler.start(paused=True)
        server = _QuietServer(
            uvicorn.Config(
                _app(self),
                host=service.host,
                port=service.port,
                log_level="warning",
                lifespan="off",
                access_log=False,
                proxy_headers=False,  # X-Forwarded-* are believed only from [web] trusted_proxies (bot.web.security)
            )
        )
        web = asyncio.create_task(server.serve(sockets=[sock]), name="web")
        worker = asyncio.create_task(parts.worker.run(single_instance=not parts.leadership.postgres), name="worker")
        lead = asyncio.create_task(self._lead(), name="leadership")
        tasks = {web, worker, lead, *self.chat.tasks(self.stopping)}
        if parts.letters is not None:
            single = not parts.leadership.postgres
            tasks.add(asyncio.create_task(parts.letters.run(self.stopping, single), name="newsletter"))
        log.info("rankbot running on http://%s:%d (instance %s)", service.host, service.port, parts.worker.name)
        stopper = asyncio.create_task(self.stopping.wait())
        done, _ = await asyncio.wait({*tasks, stopper}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task is not stopper and task.exception() is not None:
                log.error("%s stopped: %s", task.get_name(), task.exception())
        log.info("stopping: finishing sends in flight")
        self.stopping.set()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        parts.worker.stopping.set()
        parts.worker.wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(tasks - {web}), return_exceptions=True), SHUTDOWN_GRACE_SECONDS)
        await self.chat.close()
        server.should_exit = True
        await asyncio.gather(web, return_exceptions=True)
        sock.close()
        await asyncio.to_thread(parts.leadership.release)
        log.info("stopped cleanly")


class _QuietServer(uvicorn.Server):
    """uvicorn without its own signal handling: the service handles SIGTERM/SIGINT and stops it."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _app(service: Service) -> Any:
    from bot.web.app import WebParts, web_app

    parts = service.parts
    from bot.email.web import email_pages

    wake = parts.letters.wake.set if parts.letters is not None else None
    email = email_pages(parts.settings, parts.environ, parts.store.engine, wake)
    web = WebParts(service.health, parts.metrics, parts.settings.web, service.site_data, service.chat.routes(), email)
    return web_app(web)


async def run_service(settings: Settings, environ: Mapping[str, str]) -> None:
    """The service until SIGTERM or Ctrl-C. The handlers are the first thing installed (a signal during the
    imports was remembered by ``bot.launcher``): a stop during start-up (migrations, the instance lock) is clean."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in EARLY_SIGNALS:
        loop.add_signal_handler(signum, stopping.set)
    if early_signal() is not None:
        stopping.set()
    try:
        async with open_parts(settings, environ) as parts:
            await asyncio.sleep(0)  # handle a signal that arrived while migrating
            if stopping.is_set():
                log.info("stopped before it started (signal during start-up)")
                return
            await Service(parts, stopping=stopping).run()
    finally:
        for signum in EARLY_SIGNALS:
            loop.remove_signal_handler(signum)
