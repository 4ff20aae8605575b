"""The outbox on SQLite and PostgreSQL against a real webhook receiver on 127.0.0.1: exactly-once queueing,
claiming, retries with backoff, Retry-After, dead rows, gone destinations, crash reconciliation, clean stops."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import given
from hypothesis import strategies as st

from bot.demo.generator import SyntheticHistory
from bot.demo.receiver import FakeWebhook, Scripted
from bot.outbox import OutboxWorker
from bot.planner import check_operations
from bot.publishers.contract import Delivery
from bot.publishers.registry import Publishers, publisher_factories
from bot.publishers.webhook import WebhookPublisher
from digests.delivery import DeliveryState, Destination, Message, RetrySchedule, Subscription, Variant
from digests.digest import build_digest
from digests.messages import message_for, notice_message
from digests.model import DigestSettings
from storage.delivery import DeliveryStore
from storage.engine import engine_for, upgrade_database
from storage.repository import Repository
from tests.conftest import (
    SECRET_ENV,
    WEBHOOK_SECRET,
    Clock,
    eventually,
    fresh_postgres_url,
    hook_destination,
    run_together,
)

ENVIRON = {SECRET_ENV: WEBHOOK_SECRET}


@asynccontextmanager
async def worker_on(
    store: DeliveryStore, name: str = "worker-1", attempts: int = 3, **options: object
) -> AsyncIterator[OutboxWorker]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield OutboxWorker(
            store,
            Publishers(publisher_factories(client), ENVIRON),
            RetrySchedule(attempts=attempts, base=1.0, cap=10.0),
            name=name,
            rng=random.Random(7),
            **options,  # type: ignore[arg-type]
        )


def day_messages(history: SyntheticHistory, count: int) -> list[Message]:
    return [
        message_for(build_digest("day", history.days, {}, DigestSettings(), end=snapshot.day))
        for snapshot in history.days[-count:]
    ]


def queue_to(store: DeliveryStore, messages: list[Message], destinations: list[Destination]) -> None:
    store.sync_destinations(destinations)
    for message in messages:
        store.queue(message, [(d.name, Variant.FULL) for d in destinations])


def states(store: DeliveryStore) -> dict[str, int]:
    return {state: count for state, count in store.backlog().items() if count}


def test_queueing_twice_adds_nothing(store: DeliveryStore, history: SyntheticHistory, webhook: FakeWebhook) -> None:
    destinations = [hook_destination(webhook, "a"), hook_destination(webhook, "b")]
    [message] = day_messages(history, 1)
    queue_to(store, [message], destinations)
    other = DeliveryStore(engine_for(str(store.engine.url.render_as_string(hide_password=False))))
    try:
        assert other.queue(message, [("a", Variant.FULL), ("b", Variant.FULL)]) == 0
    finally:
        other.engine.dispose()
    assert states(store) == {"pending": 2}
    assert [m.id for m in store.messages()] == [message.id]


def test_overlapping_queueing_threads_make_one_copy(
    store: DeliveryStore, history: SyntheticHistory, webhook: FakeWebhook
) -> None:
    """Eight threads on their own connections queue the same digest at the same moment: the unique keys, not
    timing, leave one message and one row per destination."""
    destinations = [hook_destination(webhook, f"d{i}") for i in range(3)]
    store.sync_destinations(destinations)
    [message] = day_messages(history, 1)
    url = store.engine.url.render_as_string(hide_password=False)
    added: list[int] = []

    def tick() -> None:
        engine = engine_for(url)
        try:
            added.append(DeliveryStore(engine).queue(message, [(d.name, Variant.FULL) for d in destinations]))
        finally:
            engine.dispose()

    run_together(8, tick)
    assert sorted(added) == [0] * 7 + [3]
    assert states(store) == {"pending": 3}


async def test_delivers_each_row_once_signed_with_an_idempotency_key(
    store: DeliveryStore, history: SyntheticHistory, webhook: FakeWebhook
) -> None:
    destinations = [hook_destination(webhook, name) for name in ("a", "b", "c")]
    messages = day_messages(history, 2)
    queue_to(store, messages, destinations)
    async with worker_on(store) as worker:
        report = await worker.drain()
    assert report.sent == 6 and states(store) == {"sent": 6}
    assert webhook.rejected == []
    assert set(webhook.copies().values()) == {1}
    received = next(r for r in webhook.to("a") if r.body["message_id"] == messages[0].id)
    assert received.headers["Idempotency-Key"] == received.delivery_id == f"{messages[0].id}/a"
    assert received.body["document"]["id"] == messages[0].id
    assert "Source: OpenRouter" in received.body["text"]
    assert {e.external_id for e in store.entries()} == {f"req-{n}" for n in range(1, 7)}


async def test_a_429_waits_at_least_retry_after(
    store: DeliveryStore, clock: Clock, history: SyntheticHistory, webhook: FakeWebhook
) -> None:
    queue_to(store, day_messages(history, 1), [hook_destination(webhook, "a")])
    webhook.script("a", Scripted(429, {"Retry-After": "2"}))
    async with worker_on(store) as worker:
        assert (await worker.drain()).failed == 1
        [entry] = store.entries()
        assert entry.state is DeliveryState.FAILED and entry.last_error == "HTTP 429"
        assert entry.next_attempt_at >= clock.now + timedelta(seconds=2)
        clock.advance(seconds=1.9)
        assert (await worker.drain()).handled == 0
        clock.advance(seconds=10)
        assert (await worker.drain()).sent == 1
    assert len(webhook.to("a")) == 1


async def test_retries_then_dead_then_requeue_dead_delivers(
    store: DeliveryStore, clock: Clock, history: SyntheticHistory, webhook: FakeWebhook
) -> None:
    queue_to(store, day_messages(history, 1), [hook_destination(webhook, "a")])
    webhook.script("a", *[Scripted(500, body="upstream broke")] * 3)
    async with worker_on(store, attempts=3) as worker:
        for _ in range(3):
            await worker.drain()
            clock.advance(seconds=11)
        [entry] = store.entries()
        assert entry.state is DeliveryState.DEAD and entry.attempts == 3
        assert entry.last_error == "gave up after 3 tries: HTTP 500: upstream broke"
        assert (await worker.drain()).handled == 0
        assert store.requeue_dead() == 1
        assert (await worker.drain()).sent == 1
    assert len(webhook.to("a")) == 1


async def test_a_gone_destination_is_disabled_with_the_reason(
    store: DeliveryStore, clock: Clock, repo: Repository, history: SyntheticHistory, webhook: FakeWebhook
) -> None:
    ops = Destination("ops", "file", {"directory": "/nonexistent-never-used"}, Subscription(notices=True))
    queue_to(store, day_messages(history, 2), [hook_destination(webhook, "gone"), hook_destination(webhook, "ok")])
    store.sync_destinations([*(store.destinations()), ops])
    webhook.script("gone", *[Scripted(404, body="no such channel")] * 2)
    async with worker_on(store) as worker:
        report = await worker.drain()
    assert report.sent == 2 and report.dead == 2
    gone = store.destination("gone")
    assert gone is not None and not gone.enabled
    assert gone.disabled_reason == "the webhook refused us for good (HTTP 404: no such channel); fix its URL or secret"
    assert {e.state for e in store.entries() if e.destination == "gone"} == {DeliveryState.DEAD}
    assert len(webhook.to("gone")) == 0
    repo.add_days(history.days, "api")
    notices = check_operations(repo, store, clock.now, clock.now.time(), timedelta(hours=6))
    assert "disabled:gone" in notices.raised
    assert any(m.kind == "notice" and "gone is disabled" in m.full["text"] for m in store.messages())


async def test_an_invalid_payload_fails_at_once(
    store: DeliveryStore, history: SyntheticHistory, webhook: FakeWebhook
) -> None:
    queue_to(store, day_messages(history, 1), [hook_destination(webhook, "a")])
    webhook.script("a", Scripted(413, body="too large"))
    async with worker_on(store, attempts=5) as worker:
        await worker.drain()
    [entry] = store.entries()
    assert entry.state is DeliveryState.DEAD and entry.attempts == 1
    assert entry.last_error == "invalid payload: the webhook rejected the message (HTTP 413: too large)"


async def test_a_missing_secret_is_named_and_never_leaks(store: DeliveryStore, history: SyntheticHistory) -> None:
    with FakeWebhook(secret=WEBHOOK_SECRET) as webhook:
        queue_to(store, day_messages(history, 1), [hook_destination(webhook, "a")])
        async with httpx.AsyncClient(trust_env=False) as client:
            worker = OutboxWorker(store, Publishers(publisher_factories(client), {}), RetrySchedule(), name="w")
            await worker.drain()
    [entry] = store.entries()
    assert entry.state is DeliveryState.FAILED
    assert entry.last_error == f"the environment variable {SECRET_ENV} (the webhook secret for a) is not set"


async def test_crash_leftovers_are_settled_by_the_delivery_check(
    store: DeliveryStore, history: SyntheticHistory, webhook: FakeWebhook, tmp_path: object
) -> None:
    """A worker died after claiming three rows: one had reached the receiver, one had not, and one went to a
    console, which cannot tell. The first is marked sent without a second copy; the others are sent again."""
    destinations = [hook_destination(webhook, "arrived"), hook_destination(webhook, "lost")]
    console = Destination("screen", "console", {"format": "text"})
    [message] = day_messages(history, 1)
    queue_to(store, [message], [*destinations, console])
    claims = store.claim("crashed-worker", 10)
    assert len(claims) == 3
    async with httpx.AsyncClient(trust_env=False) as client:
        arrived = next(c for c in claims if c.destination.name == "arrived")
        publisher = WebhookPublisher(client, webhook.hook_url("arrived"), WEBHOOK_SECRET)
        await publisher.send(Delivery(message, arrived.destination))
    async with worker_on(store, name="restarted") as worker:
        assert await worker.reconcile(single_instance=True) == 3
        assert {e.destination: e.state for e in store.entries()} == {
            "arrived": DeliveryState.SENT,
            "lost": DeliveryState.FAILED,
            "screen": DeliveryState.FAILED,
        }
        await worker.drain()
    assert states(store) == {"sent": 3}
    assert webhook.copies() == {("arrived", f"{message.id}/arrived"): 1, ("lost", f"{message.id}/lost"): 1}


async def test_a_stale_claim_is_only_taken_over_after_the_lease(
    store: DeliveryStore, clock: Clock, history: SyntheticHistory, webhook: FakeWebhook
) -> None:
    queue_to(store, day_messages(history, 1), [hook_destination(webhook, "a")])
    store.claim("other-instance", 10)
    async with worker_on(store, name="me", lease_seconds=60) as worker:
        assert await worker.reconcile(single_instance=False) == 0
        clock.advance(seconds=61)
        assert await worker.reconcile(single_instance=False) == 1
        await worker.drain()
    assert states(store) == {"sent": 1} and len(webhook.to("a")) == 1


async def test_results_are_recorded_only_by_the_claim_holder(store: DeliveryStore, history: SyntheticHistory) -> None:
    queue_to(store, day_messages(history, 1), [Destination("screen", "console", {})])
    [claim] = store.claim("first", 1)
    assert not store.record_sent(claim.entry.id, "impostor", None)
    assert store.record_sent(claim.entry.id, "first", None)


async def test_stopping_finishes_sends_in_flight_and_claims_nothing_more(
    store: DeliveryStore, history: SyntheticHistory
) -> None:
    with FakeWebhook(secret=WEBHOOK_SECRET, delay=(0.3, 0.3)) as slow:
        queue_to(store, day_messages(history, 5), [hook_destination(slow, "a")])
        async with worker_on(store, concurrency=1, batch=5) as worker:
            work = asyncio.create_task(worker.drain())
            await asyncio.sleep(0.15)
            worker.stopping.set()
            report = await work
        assert report.sent == 1
        assert states(store) == {"sent": 1, "pending": 4}
        assert [e.attempts for e in store.entries() if e.state is DeliveryState.PENDING] == [0, 0, 0, 0]


async def test_each_send_is_recorded_when_it_ends_so_a_crash_leaves_only_what_was_in_flight(
    store: DeliveryStore, history: SyntheticHistory
) -> None:
    """The worker is killed (its task cancelled, sends in flight included) in the middle of a 60-row fan-out to
    webhooks that cannot say what arrived: at most `concurrency` deliveries arrived without being recorded as
    sent (those are the only ones a restart can resend), and every one of them is still in `sending`."""
    with FakeWebhook(secret=WEBHOOK_SECRET, delay=(0.01, 0.04)) as hook:
        destinations = [hook_destination(hook, f"d{n}", check=False) for n in range(12)]
        queue_to(store, day_messages(history, 5), destinations)
        async with worker_on(store, concurrency=3, batch=50) as worker:
            work = asyncio.create_task(worker.drain())
            await eventually(lambda: len(hook.received) >= 20, what="20 deliveries")
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await work
        await asyncio.sleep(0.1)  # anything still on the wire lands now
        arrived = {r.delivery_id for r in hook.received}
    rows = store.entries(limit=100)
    sending = {f"{e.message_id}/{e.destination}" for e in rows if e.state is DeliveryState.SENDING}
    sent = {f"{e.message_id}/{e.destination}" for e in rows if e.state is DeliveryState.SENT}
    assert len(arrived - sent) <= 3
    assert arrived - sent <= sending
    assert len(sending) <= 50 + 3  # claims ready to start (a batch at most) and the sends in flight


async def test_a_send_is_cut_off_before_its_claim_runs_out(
    store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    """A lease of 5.5 s leaves a 0.5 s window after the 5 s margin: a receiver that takes 2 s is cut off, and the
    try fails with the reason instead of outliving the claim."""
    with FakeWebhook(secret=WEBHOOK_SECRET, delay=(2.0, 2.0)) as slow:
        queue_to(store, day_messages(history, 1), [hook_destination(slow, "a")])
        async with worker_on(store, lease_seconds=5.5) as worker:
            report = await worker.drain()
    [entry] = store.entries()
    assert report.failed == 1 and entry.state is DeliveryState.FAILED
    assert entry.last_error is not None and "did not end within its claim (5.5 s lease)" in entry.last_error
    destination = store.destination("a")
    assert destination is not None and destination.failures == 1


def test_a_claim_taken_over_after_its_lease_cannot_be_renewed_or_recorded(
    store: DeliveryStore, history: SyntheticHistory, clock: Clock
) -> None:
    queue_to(store, day_messages(history, 1), [Destination("screen", "console", {})])
    [claim] = store.claim("slow", 1)
    assert store.renew(claim.entry.id, "slow")
    assert store.heartbeat("slow") == {claim.entry.id}
    clock.advance(seconds=301)
    [taken] = store.stranded("reconciler", clock.now - timedelta(seconds=300))
    assert taken.entry.id == claim.entry.id
    assert store.heartbeat("slow") == set()  # no lease renewed: the worker must not send it
    assert not store.renew(claim.entry.id, "slow")
    assert not store.record_sent(claim.entry.id, "slow", None)


async def test_a_destination_run_of_failures_is_counted_and_ended_by_a_delivery(
    store: DeliveryStore, clock: Clock, history: SyntheticHistory, webhook: FakeWebhook
) -> None:
    queue_to(store, day_messages(history, 2), [hook_destination(webhook, "flaky"), hook_destination(webhook, "ok")])
    webhook.script("flaky", *[Scripted(503, body="maintenance")] * 3)
    async with worker_on(store, attempts=5) as worker:
        await worker.drain()
        flaky = store.destination("flaky")
        assert flaky is not None and flaky.failures == 2 and flaky.failing_since == clock.now
        assert flaky.last_error == "HTTP 503: maintenance"
        assert [d.name for d in store.failing_destinations(2)] == ["flaky"]
        ok = store.destination("ok")
        assert ok is not None and ok.failures == 0 and ok.failing_since is None
        clock.advance(seconds=11)
        await worker.drain()  # one more 503, then a delivery
        clock.advance(seconds=11)
        await worker.drain()
    flaky = store.destination("flaky")
    assert flaky is not None and (flaky.failures, flaky.failing_since, flaky.last_error) == (0, None, None)
    assert store.failing_destinations(1) == []


@given(
    attempt=st.integers(min_value=1, max_value=30),
    base=st.floats(min_value=0, max_value=100),
    cap=st.floats(min_value=0, max_value=10_000),
    retry_after=st.none() | st.floats(min_value=0, max_value=600),
    seed=st.integers(),
)
def test_backoff_stays_within_full_jitter_bounds(
    attempt: int, base: float, cap: float, retry_after: float | None, seed: int
) -> None:
    schedule = RetrySchedule(attempts=8, base=base, cap=cap)
    delay = schedule.delay(attempt, random.Random(seed), retry_after)
    ceiling = min(cap, base * 2 ** (attempt - 1))
    if retry_after is None:
        assert 0 <= delay <= ceiling
    else:
        assert retry_after <= delay <= max(ceiling, retry_after)


def test_retry_limit() -> None:
    schedule = RetrySchedule(attempts=3)
    assert [schedule.exhausted(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


async def test_four_workers_deliver_a_thousand_rows_exactly_once_on_postgres(webhook: FakeWebhook) -> None:
    database_url = fresh_postgres_url()
    engine = engine_for(database_url)
    upgrade_database(engine)
    store = DeliveryStore(engine)
    destinations = [hook_destination(webhook, f"d{i}", check=False) for i in range(10)]
    store.sync_destinations(destinations)
    for n in range(100):
        message = notice_message(f"bulk-{n}", f"message {n}", datetime(2026, 11, 20, tzinfo=UTC))
        store.queue(message, [(d.name, Variant.FULL) for d in destinations])
    assert store.backlog()["pending"] == 1000
    stores = [DeliveryStore(engine_for(database_url)) for _ in range(4)]
    try:
        async with httpx.AsyncClient(trust_env=False, limits=httpx.Limits(max_connections=64)) as client:
            workers = [
                OutboxWorker(
                    s,
                    Publishers(publisher_factories(client), ENVIRON),
                    RetrySchedule(attempts=5, base=0.0, cap=0.0),  # a transient failure is due again at once
                    name=f"w{n}",
                    batch=25,
                )
                for n, s in enumerate(stores)
            ]
            reports = await asyncio.gather(*(w.drain() for w in workers))
    finally:
        for s in stores:
            s.engine.dispose()
    assert sum(r.sent for r in reports) == 1000, [e for r in reports for e in r.errors]
    assert all(r.sent > 0 for r in reports), [r.sent for r in reports]
    copies = webhook.copies()
    assert len(copies) == 1000 and set(copies.values()) == {1}
    assert store.backlog()["sent"] == 1000
    engine.dispose()


async def test_two_workers_with_a_short_lease_never_resend_what_the_other_is_sending_on_postgres() -> None:
    """The trap of a claimed batch: a lease of 6 s, batches of 50, one send at a time and a slow receiver without
    a delivery check. Each worker claims only what it can start, so no lease runs out while its row waits, and the
    other worker's reconciler (every lease/4) never finds a row to resend: 30 deliveries, one copy each. (A worker
    that claimed all 30 at once would still be sending when their lease ran out, and the other would resend them.)"""
    database_url = fresh_postgres_url()
    engine = engine_for(database_url)
    upgrade_database(engine)
    with FakeWebhook(secret=WEBHOOK_SECRET, delay=(0.25, 0.35)) as hook:
        destinations = [hook_destination(hook, f"d{i}", check=False) for i in range(3)]
        store = DeliveryStore(engine)
        store.sync_destinations(
            Destination(d.name, d.kind, {**d.target, "timeout_seconds": 1.0}, d.subscription) for d in destinations
        )
        for n in range(10):
            message = notice_message(f"slow-{n}", f"message {n}", datetime(2026, 11, 20, tzinfo=UTC))
            store.queue(message, [(d.name, Variant.FULL) for d in destinations])
        stores = [DeliveryStore(engine_for(database_url)) for _ in range(2)]
        try:
            async with httpx.AsyncClient(trust_env=False) as client:
                workers = [
                    OutboxWorker(
                        s,
                        Publishers(publisher_factories(client), ENVIRON),
                        RetrySchedule(),
                        name=f"instance-{n}",
                        concurrency=1,
                        batch=50,
                        lease_seconds=6.0,
                    )
                    for n, s in enumerate(stores)
                ]
                runs = [asyncio.create_task(w.run(single_instance=False, idle_seconds=0.2)) for w in workers]
                await eventually(lambda: store.backlog()["sent"] >= 30, what="30 rows sent")
                await asyncio.sleep(1.6)  # one more reconcile (every lease/4): nothing is resent
                for worker in workers:
                    worker.stopping.set()
                    worker.wake.set()
                await asyncio.gather(*runs)
        finally:
            for s in stores:
                s.engine.dispose()
        copies = hook.copies()
    assert store.backlog()["sent"] == 30
    assert len(copies) == 30 and set(copies.values()) == {1}, [c for c, n in copies.items() if n > 1]
    engine.dispose()
