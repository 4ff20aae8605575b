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
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from bot.metrics import Metrics
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


@dataclass
class _Send:
    """A claim being worked: when it was claimed (or last renewed), on the worker's monotonic clock."""

    claim: Claim
    since: float


class _Pump:
    """One run of the send loop, until nothing is due and nothing is in flight (or ``stopping`` is set and the
    sends in flight have ended and been recorded).

    Claims wait in ``ready``: when fewer than ``concurrency`` are ready, up to ``batch`` more are claimed (their
    lease is extended by every heartbeat while they wait). A slot is held from a send's start
    until its result is committed, so at most ``concurrency`` sends can be delivered and unrecorded at any moment.
    One database transaction runs at a time: it records the sends that ended since the last one, gives back
    unstarted claims when stopping, and claims more while ``ready`` runs low, so sends never wait on it."""

    def __init__(self, worker: OutboxWorker, report: WorkReport) -> None:
        self.worker = worker
        self.report = report
        self.ready: deque[_Send] = deque()
        self.sending: set[asyncio.Task[Result | None]] = set()
        self.ended: list[Result] = []
        self.writing: list[Result] = []
        self.releasing: list[int] = []
        self.writer: asyncio.Task[list[Claim]] | None = None
        self.wanted = 0
        self.exhausted = False
        """The last claim found fewer due rows than it asked for."""
        self.done: deque[asyncio.Task[Any]] = deque()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        try:
            while True:
                self._start_sends()
                if self.writer is None:
                    self._start_write()
                if self.writer is None and not self.sending:
                    return
                await self.changed.wait()
                self.changed.clear()
                while self.done:
                    task = self.done.popleft()
                    if task is self.writer:
                        self._written(task)
                    else:
                        self.sending.discard(task)
                        outcome = task.result()
                        if outcome is None:
                            self.report.skipped += 1
                        else:
                            self.ended.append(outcome)
        except asyncio.CancelledError:  # killed: the sends in flight die with the worker, unrecorded
            for task in self.sending:
                task.cancel()
            raise

    def _watch(self, task: asyncio.Task[Any]) -> None:
        """Wake the loop when ``task`` ends (cheaper than ``asyncio.wait`` over every task on every turn)."""

        def ended(finished: asyncio.Task[Any]) -> None:
            self.done.append(finished)
            self.changed.set()

        task.add_done_callback(ended)

    def _held(self) -> int:
        return len(self.sending) + len(self.ended) + len(self.writing)

    def _start_sends(self) -> None:
        worker = self.worker
        while self.ready and self._held() < worker.concurrency and not worker.stopping.is_set():
            task = asyncio.create_task(worker._deliver(self.ready.popleft()))
            self.sending.add(task)
            self._watch(task)

    def _wanted(self) -> int:
        """How many rows to claim now: none while stopping or while ``concurrency`` claims are ready."""
        worker = self.worker
        if worker.stopping.is_set() or len(self.ready) >= worker.concurrency:
            return 0
        return max(worker.concurrency, worker.batch) - len(self.ready)

    def _start_write(self) -> None:
        worker = self.worker
        if worker.stopping.is_set():
            self.releasing += [send.claim.entry.id for send in self.ready]
            self.ready.clear()
        wanted = self._wanted()
        if not self.ended and not self.releasing and (wanted == 0 or self.exhausted):
            return
        self.writer = asyncio.create_task(self._write())
        self._watch(self.writer)

    async def _write(self) -> list[Claim]:
        """The transaction, retried with backoff while the database is unreachable (the results are kept). It
        records every send that has ended by the time it starts; those that end while it runs go in the next."""
        self.writing, self.ended = self.ended, []
        self.wanted = self._wanted()
        results, want, release = self.writing, self.wanted, list(self.releasing)
        worker = self.worker
        for attempt in range(1_000_000):
            try:
                if worker.inline:
                    return worker.store.exchange(worker.name, results, want, release)
                return await asyncio.to_thread(worker.store.exchange, worker.name, results, want, release)
            except SQLAlchemyError as error:
                if worker.stopping.is_set() and attempt >= 3:
                    raise
                pause = min(10.0, 0.5 * 2**attempt)
                log.warning(
                    "outbox: cannot write to the database (%s); %d result(s) kept, retrying in %.1f s",
                    type(error).__name__,
                    len(results),
                    pause,
                )
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    def _written(self, task: asyncio.Task[list[Claim]]) -> None:
        claims = task.result()
        for result in self.writing:
            self.report.count(result)
        self.writing, self.releasing, self.writer = [], [], None
        self.exhausted = self.wanted > 0 and len(claims) < self.wanted
        started = self.worker.monotonic()
        self.ready.extend(_Send(claim, started) for claim in claims)


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
        self._current: _Pump | None = None
        self.inline = store.engine.dialect.name == "sqlite"
        """Run the hot transaction in the event loop: on SQLite it is a fraction of a millisecond in-process, and
        handing it to a thread cost a third of the throughput (the thread waits for the GIL while sends run)."""

    # -- sending -----------------------------------------------------------------------------------------
    async def _pump(self, report: WorkReport) -> None:
        self._current = _Pump(self, report)
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

    def _window(self, send: _Send) -> float:
        """Seconds the send may still take before its claim's lease (less the margin) runs out."""
        return self.lease.total_seconds() - LEASE_MARGIN_SECONDS - (self.monotonic() - send.since)

    async def _deliver(self, send: _Send) -> Result | None:
        """One send, fenced by its claim. ``None``: the claim was taken over before the send, which is skipped."""
        claim = send.claim
        entry, destination = claim.entry, claim.destination
        delivery = Delivery(claim.message, destination, entry.variant)
        started = self.monotonic()
        dead = DeliveryState.DEAD
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
                    await asyncio.to_thread(self.store.heartbeat, self.name)
                except SQLAlchemyError as error:  # claims then run out on their own clock (see `_deliver`)
                    log.warning("could not write the worker heartbeat: %s", type(error).__name__)
                else:
                    for send in self._current.ready if self._current else ():
                        send.since = max(send.since, renewed_at)
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
