"""The worker's send loop (``Pump``): the claims ready to start, the sends in flight, and the one transaction at a
time that records what ended and claims more. ``bot.outbox.OutboxWorker`` runs it and does each send.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from storage.outbox_rows import Claim, Result

if TYPE_CHECKING:
    from bot.outbox import OutboxWorker, WorkReport

log = logging.getLogger(__name__)


@dataclass
class Send:
    """A claim being worked: when it was claimed (or last renewed), on the worker's monotonic clock."""

    claim: Claim
    since: float


class Pump:
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
        self.ready: deque[Send] = deque()
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
            task = asyncio.create_task(worker.deliver(self.ready.popleft()))
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
        for attempt in itertools.count():
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
        raise AssertionError("unreachable")  # pragma: no cover - itertools.count() never ends

    def _written(self, task: asyncio.Task[list[Claim]]) -> None:
        claims = task.result()
        for result in self.writing:
            self.report.count(result)
        self.writing, self.releasing, self.writer = [], [], None
        self.exhausted = self.wanted > 0 and len(claims) < self.wanted
        started = self.worker.monotonic()
        self.ready.extend(Send(claim, started) for claim in claims)
