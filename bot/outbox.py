"""The outbox worker: keeps up to ``concurrency`` sends in flight, records each one as soon as it ends.

- Rows are claimed only for sends that can start now (free slots), and each send's result is written when the send
  ends — together with the sends that ended while the previous write ran (a group commit) and with the claim of
  their replacements, in one transaction. A send keeps its slot until its result is committed, so a crash can
  leave at most ``concurrency`` sends delivered but unrecorded.
- A claim is a lease: no send outlives it. Before each send the worker checks the time left on its claim (and
  renews it in the database if a send might not fit, skipping the row if another worker has taken it over); the
  send itself is cut off when the lease would run out. ``claim_lease_seconds`` must exceed every destination's
  ``timeout_seconds`` by ``LEASE_MARGIN_SECONDS`` (checked at start).
- Success → ``sent`` with the destination's id. ``RetryableError``/``RateLimitedError`` → ``failed`` with the next
  try after full-jitter backoff (never sooner than ``Retry-After``), or ``dead`` at the retry limit.
  ``InvalidPayloadError`` → ``dead`` at once. ``GoneError`` → the destination is disabled with the reason.
- Rows left in ``sending`` by a crash are reconciled through the publisher's ``was_delivered``: delivered → ``sent``;
  not delivered → due again; cannot tell → due again, and the log says it may be a duplicate.
- Stopping (SIGTERM) claims nothing more and lets the sends in flight finish: no row is left in ``sending``.
- While working, the worker writes a heartbeat every ``HEARTBEAT_SECONDS``, so ``/healthz`` can tell a live claim
  from one stranded by a dead instance.

Database calls run in a thread (``asyncio.to_thread``) so sends to slow destinations overlap — except the one
transaction per group of sends on SQLite, which is short enough to run in the event loop (see ``inline``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError

from bot.metrics import Metrics
from bot.outbox_pump import Pump, Send
from bot.publishers.contract import (
    Delivery,
    GoneError,
    InvalidPayloadError,
    PublishError,
    RetryableError,
)
from bot.publishers.registry import Publishers
from digests.delivery import LEASE_MARGIN_SECONDS, DeliveryState, RetrySchedule
from storage.delivery import DeliveryStore
from storage.outbox_rows import Claim, Result

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


@dataclass
class WorkReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    skipped: int = 0
    """Claims found taken over by another worker before their send: not sent."""
    reconciled: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.dead + self.skipped

    def count(self, result: Result) -> None:
        if result.state is DeliveryState.SENT:
            self.sent += 1
        elif result.state is DeliveryState.DEAD:
            self.dead += 1
        else:
            self.failed += 1
            self.errors.append(result.last_error or "")


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
        self._current: Pump | None = None
        self.gone: dict[str, str] = {}
        """Destinations this worker found gone (name → reason): claims of theirs still waiting are not sent."""
        self.inline = store.engine.dialect.name == "sqlite"
        """Run the hot transaction in the event loop: on SQLite it is a fraction of a millisecond in-process, and
        handing it to a thread cost a third of the throughput (the thread waits for the GIL while sends run)."""

    # -- sending -----------------------------------------------------------------------------------------
    async def _pump(self, report: WorkReport) -> None:
        self._current = Pump(self, report)
        try:
            await self._current.run()
        finally:
            self._current = None

    async def drain(self) -> WorkReport:
        """Send until nothing is due now (rows scheduled for later stay), or until ``stopping`` is set."""
        report = WorkReport()
        async with self._heartbeats():
            await self._pump(report)
        return report

    def _window(self, send: Send) -> float:
        """Seconds the send may still take before its claim's lease (less the margin) runs out."""
        return self.lease.total_seconds() - LEASE_MARGIN_SECONDS - (self.monotonic() - send.since)

    async def deliver(self, send: Send) -> Result | None:
        """One send, fenced by its claim. ``None``: the claim was taken over before the send, which is skipped."""
        claim = send.claim
        entry, destination = claim.entry, claim.destination
        delivery = Delivery(claim.message, destination, entry.variant)
        started = self.monotonic()
        dead = DeliveryState.DEAD
        if destination.name in self.gone:  # disabled while this claim waited: not sent
            reason = f"destination disabled: {self.gone[destination.name]}"
            return Result(entry.id, destination.name, dead, entry.next_attempt_at, last_error=reason)
        try:
            publisher = self.publishers.for_destination(destination)
            if self._window(send) < publisher.timeout + 1:
                if not await asyncio.to_thread(self.store.renew, entry.id, self.name):
                    log.warning(
                        "%s to %s: the claim was taken over by another worker; not sent",
                        entry.message_id,
                        destination.name,
                    )
                    return None
                send.since = self.monotonic()
            try:
                async with asyncio.timeout(self._window(send)):  # no task of its own, unlike wait_for
                    external_id = await publisher.send(delivery)
            except TimeoutError:
                raise RetryableError(
                    f"the send did not end within its claim ({self.lease.total_seconds():g} s lease): "
                    "raise service.claim_lease_seconds or lower the destination's timeout_seconds"
                ) from None
        except GoneError as error:
            log.warning("destination %s is gone, disabling it: %s", destination.name, error)
            self.gone[destination.name] = str(error)
            await asyncio.to_thread(self.store.disable_destination, destination.name, str(error))
            result = Result(
                entry.id, destination.name, dead, entry.next_attempt_at, last_error=f"destination gone: {error}"
            )
        except InvalidPayloadError as error:
            log.warning("%s to %s: invalid payload, not retried: %s", entry.message_id, destination.name, error)
            result = Result(
                entry.id, destination.name, dead, entry.next_attempt_at, last_error=f"invalid payload: {error}"
            )
        except PublishError as error:
            result = self._failed(claim, str(error), getattr(error, "retry_after", None))
        except Exception as error:  # a publisher bug must not strand the row in `sending`
            log.exception("%s to %s: unexpected error", entry.message_id, destination.name)
            result = self._failed(claim, f"unexpected error: {type(error).__name__}: {error}", None)
        else:
            now = self.store.now()
            result = Result(
                entry.id, destination.name, DeliveryState.SENT, entry.next_attempt_at, external_id, sent_at=now
            )
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
                entry.destination,
                DeliveryState.DEAD,
                entry.next_attempt_at,
                last_error=f"gave up after {entry.attempts} tries: {error}",
                destination_failed=True,
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
        return Result(
            entry.id,
            entry.destination,
            DeliveryState.FAILED,
            self.store.now() + timedelta(seconds=delay),
            last_error=error,
            destination_failed=True,
        )

    # -- liveness ----------------------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _heartbeats(self) -> AsyncIterator[None]:
        """Write this worker's heartbeat now and every ``HEARTBEAT_SECONDS`` until the block ends."""

        async def beat() -> None:
            while True:
                renewed_at = self.monotonic()
                try:
                    renewed = await asyncio.to_thread(self.store.heartbeat, self.name)
                except SQLAlchemyError as error:  # claims then run out on their own clock (see `deliver`)
                    log.warning("could not write the worker heartbeat: %s", type(error).__name__)
                else:
                    for send in self._current.ready if self._current else ():
                        if send.claim.entry.id in renewed:
                            send.since = max(send.since, renewed_at)
                        else:  # taken over: `deliver` asks the database first, and skips it
                            send.since = -math.inf
                await asyncio.sleep(HEARTBEAT_SECONDS)

        task = asyncio.create_task(beat(), name="heartbeat")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):  # the block ended with nothing in flight: nothing held
                await asyncio.to_thread(self.store.forget_worker, self.name)

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
        async with self._heartbeats():
            while not self.stopping.is_set():
                report = WorkReport()
                await self._pump(report)
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
