"""The outbox worker: claims due rows, sends them through their publishers, records what happened.

- Success → ``sent`` with the destination's id. ``RetryableError``/``RateLimitedError`` → ``failed`` with the next
  try after full-jitter backoff (never sooner than ``Retry-After``), or ``dead`` at the retry limit.
  ``InvalidPayloadError`` → ``dead`` at once. ``GoneError`` → the destination is disabled with the reason.
- Rows left in ``sending`` by a crash are reconciled through the publisher's ``was_delivered``: delivered → ``sent``;
  not delivered → due again; cannot tell → due again, and the log says it may be a duplicate.
- Stopping (SIGTERM) finishes the sends in flight and gives back claimed rows not yet started: no row is left in
  ``sending``.

Database calls run in a thread (``asyncio.to_thread``) so sends to slow destinations overlap.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from bot.metrics import Metrics
from bot.publishers.contract import (
    Delivery,
    GoneError,
    InvalidPayloadError,
    PublishError,
)
from bot.publishers.registry import Publishers
from digests.delivery import DeliveryState, RetrySchedule
from storage.delivery import DeliveryStore
from storage.outbox_rows import Claim, Result

log = logging.getLogger(__name__)


@dataclass
class WorkReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    released: int = 0
    reconciled: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.dead + self.released


class OutboxWorker:
    def __init__(
        self,
        store: DeliveryStore,
        publishers: Publishers,
        schedule: RetrySchedule,
        *,
        name: str,
        concurrency: int = 8,
        batch: int = 50,
        lease_seconds: float = 300.0,
        metrics: Metrics | None = None,
        rng: random.Random | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.publishers = publishers
        self.schedule = schedule
        self.name = name
        self.concurrency = concurrency
        self.batch = batch
        self.lease = timedelta(seconds=lease_seconds)
        self.metrics = metrics
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self.monotonic = monotonic
        self.stopping = asyncio.Event()
        self.wake = asyncio.Event()

    # -- one pass ----------------------------------------------------------------------------------------
    async def work_once(self) -> WorkReport:
        """Claim one batch of due rows, send them (up to ``concurrency`` at a time), and record the results in
        one transaction. A crash before that transaction leaves the rows in ``sending``, which ``reconcile``
        settles through each destination's delivery check."""
        report = WorkReport()
        if self.stopping.is_set():
            return report
        claims = await asyncio.to_thread(self.store.claim, self.name, self.batch)
        gate = asyncio.Semaphore(self.concurrency)
        results: list[Result] = []
        gone: dict[str, str] = {}

        async def one(claim: Claim) -> None:
            async with gate:
                if self.stopping.is_set():
                    if await asyncio.to_thread(self.store.release, claim.entry.id, self.name):
                        report.released += 1
                    return
                results.append(await self._deliver(claim, gone))

        await asyncio.gather(*(one(claim) for claim in claims))
        await asyncio.to_thread(self.store.record, self.name, results, gone)
        for result in results:
            if result.state is DeliveryState.SENT:
                report.sent += 1
            elif result.state is DeliveryState.DEAD:
                report.dead += 1
            else:
                report.failed += 1
                report.errors.append(result.last_error or "")
        return report

    async def drain(self) -> WorkReport:
        """Send until nothing is due now (rows scheduled for later stay)."""
        total = WorkReport()
        while True:
            report = await self.work_once()
            for name in ("sent", "failed", "dead", "released", "reconciled"):
                setattr(total, name, getattr(total, name) + getattr(report, name))
            total.errors += report.errors
            if report.handled == 0 or self.stopping.is_set():
                return total

    async def _deliver(self, claim: Claim, gone: dict[str, str]) -> Result:
        entry, destination = claim.entry, claim.destination
        delivery = Delivery(claim.message, destination, entry.variant)
        started = self.monotonic()
        dead = DeliveryState.DEAD
        try:
            publisher = self.publishers.for_destination(destination)
            external_id = await publisher.send(delivery)
        except GoneError as error:
            log.warning("destination %s is gone, disabling it: %s", destination.name, error)
            gone[destination.name] = str(error)
            result = Result(entry.id, dead, entry.next_attempt_at, last_error=f"destination gone: {error}")
        except InvalidPayloadError as error:
            log.warning("%s to %s: invalid payload, not retried: %s", entry.message_id, destination.name, error)
            result = Result(entry.id, dead, entry.next_attempt_at, last_error=f"invalid payload: {error}")
        except PublishError as error:
            result = self._failed(claim, str(error), getattr(error, "retry_after", None))
        except Exception as error:  # a publisher bug must not strand the row in `sending`
            log.exception("%s to %s: unexpected error", entry.message_id, destination.name)
            result = self._failed(claim, f"unexpected error: {type(error).__name__}: {error}", None)
        else:
            now = self.store.now()
            result = Result(entry.id, DeliveryState.SENT, entry.next_attempt_at, external_id, sent_at=now)
        if self.metrics is not None:
            self.metrics.delivered(result.state.value, destination.kind, self.monotonic() - started)
        return result

    def _failed(self, claim: Claim, error: str, retry_after: float | None) -> Result:
        entry = claim.entry
        if self.schedule.exhausted(entry.attempts):
            log.warning(
                "%s to %s is dead after %d tries: %s", entry.message_id, entry.destination, entry.attempts, error
            )
            return Result(
                entry.id,
                DeliveryState.DEAD,
                entry.next_attempt_at,
                last_error=f"gave up after {entry.attempts} tries: {error}",
            )
        delay = self.schedule.delay(entry.attempts, self.rng, retry_after)
        log.info(
            "%s to %s failed (try %d), next in %.1fs: %s",
            entry.message_id,
            entry.destination,
            entry.attempts,
            delay,
            error,
        )
        return Result(entry.id, DeliveryState.FAILED, self.store.now() + timedelta(seconds=delay), last_error=error)

    # -- crash recovery ----------------------------------------------------------------------------------
    async def reconcile(self, single_instance: bool) -> int:
        """Settle rows stranded in ``sending``: every such row when this is the only instance, else those whose
        claim is older than the lease. Returns how many were settled."""
        before: datetime | None = None if single_instance else self.store.now() - self.lease
        stranded = await asyncio.to_thread(self.store.stranded, self.name, before)
        for claim in stranded:
            entry = claim.entry
            delivery = Delivery(claim.message, claim.destination, entry.variant)
            try:
                arrived = await self.publishers.for_destination(claim.destination).was_delivered(delivery)
            except PublishError:
                arrived = None
            if arrived:
                log.info("%s to %s was delivered before a crash; marked sent", entry.message_id, entry.destination)
                await asyncio.to_thread(self.store.record_sent, entry.id, self.name, None)
                continue
            if arrived is None:
                log.warning(
                    "%s to %s was interrupted and %s cannot say whether it arrived: resending (it may be a duplicate)",
                    entry.message_id,
                    entry.destination,
                    claim.destination.kind,
                )
            reason = "interrupted" if arrived is False else "interrupted; delivery unknown, resending"
            await asyncio.to_thread(self.store.record_failure, entry.id, self.name, reason, self.store.now())
        return len(stranded)

    # -- the service loop --------------------------------------------------------------------------------
    async def run(self, single_instance: bool, idle_seconds: float = 5.0) -> None:
        """Work the outbox until ``stopping`` is set; sleeps until woken, the next row is due, or ``idle_seconds``."""
        await self.reconcile(single_instance)
        last_reconcile = self.monotonic()
        while not self.stopping.is_set():
            report = await self.work_once()
            if not single_instance and self.monotonic() - last_reconcile > self.lease.total_seconds() / 4:
                await self.reconcile(single_instance=False)
                last_reconcile = self.monotonic()
            if report.handled:
                continue
            due = await asyncio.to_thread(self.store.next_due)
            wait = idle_seconds
            if due is not None:
                wait = min(idle_seconds, max(0.05, (due - self.store.now()).total_seconds()))
            self.wake.clear()
            sleeper = asyncio.ensure_future(self.wake.wait())
            stopper = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait({sleeper, stopper}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for task in (sleeper, stopper):
                task.cancel()
