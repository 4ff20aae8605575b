"""``rankbot run`` and ``rankbot outbox`` as real processes: the service publishes a new day exactly once, serves
``/healthz`` and ``/metrics``, stops cleanly on SIGTERM, refuses a second instance on SQLite, hands the scheduler
over on PostgreSQL when the leader dies, and survives ``kill -9`` during a fan-out without duplicates or losses."""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from bot.demo.generator import SyntheticHistory
from bot.demo.receiver import FakeWebhook, Scripted
from bot.demo.server import FakeOpenRouter
from digests.delivery import DeliveryState, Destination, Variant
from digests.digest import build_digest
from digests.messages import message_for
from digests.model import DaySnapshot, DigestSettings
from storage.delivery import DeliveryStore
from storage.engine import engine_for, upgrade_database
from tests.conftest import SECRET_ENV, TODAY, WEBHOOK_SECRET, fresh_postgres_url
from tests.processes import finish, free_port, health, hook_output, start, stop, wait_for, write_config


@pytest.fixture
def openrouter(history: SyntheticHistory) -> Iterator[FakeOpenRouter]:
    with FakeOpenRouter(
        history.days, history.catalogue, today=TODAY, api_key=None, first_snapshot=TODAY - timedelta(days=45)
    ) as server:
        yield server


def test_run_publishes_a_new_day_once_serves_health_and_stops_cleanly(
    tmp_path: Path, openrouter: FakeOpenRouter, history: SyntheticHistory
) -> None:
    port = free_port()
    database = tmp_path / "service.db"
    with FakeWebhook(secret=WEBHOOK_SECRET) as webhook:
        names = ["alpha", "beta", "gamma"]
        config = write_config(
            tmp_path / "config.toml",
            openrouter=openrouter.url,
            database_url=f"sqlite:///{database}",
            port=port,
            poll_minutes=0.02,
            outputs=[hook_output(webhook, name, notable_only=False) for name in names],
        )
        service = start(config, "run", cwd=tmp_path)
        try:
            first = wait_for(lambda: health(port).get("latest_day"), what="the first poll")
            assert first == history.days[-1].day.isoformat()
            second = start(config, "run", cwd=tmp_path)
            _, refused = second.communicate(timeout=60)
            assert second.returncode == 1
            assert "already running rankbot on this SQLite database" in refused
            assert "use PostgreSQL" in refused
            assert webhook.received == []  # the first run is the baseline: nothing published for past days
            # A day passes at the source: the service's next poll stores it and publishes it to every output.
            new = history.days[-1].day + timedelta(days=1)
            openrouter.days[new] = DaySnapshot.of(
                new,
                [(r.permaslug, r.tokens) for r in history.days[-1].rows[::-1]],
                datetime.combine(new + timedelta(days=1), datetime.min.time(), tzinfo=UTC),
            )
            openrouter.today = new + timedelta(days=1)
            wait_for(lambda: len(webhook.received) >= 3, what="the new day's deliveries")
            time.sleep(1.5)  # another poll or two: nothing is published twice
            assert webhook.copies() == {(name, f"day:{new.isoformat()}:r1/{name}"): 1 for name in names}
            status = health(port)
            assert status["leader"] is True and status["outbox"] == {
                "pending": 0,
                "sending": 0,
                "sent": 3,
                "failed": 0,
                "dead": 0,
            }
            assert status["last_successful_poll"]
            assert status["status"] == "degraded"  # 2026-11-21 is long overdue on the real clock
            assert any(str(n["key"]).startswith("late:") for n in status["notices"])  # type: ignore[union-attr]
            metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            assert 'rankbot_polls_total{outcome="ok"}' in metrics
            assert 'rankbot_outbox_rows{destination_kind="webhook",state="sent"} 3.0' in metrics
            assert 'rankbot_deliveries_total{destination_kind="webhook",outcome="sent"} 3.0' in metrics
            assert "rankbot_last_successful_poll_timestamp_seconds" in metrics
        finally:
            code, log = stop(service)
    assert code == 0, log
    assert "stopped cleanly" in log
    assert WEBHOOK_SECRET not in log
    engine = engine_for(f"sqlite:///{database}")
    assert DeliveryStore(engine).backlog()["sending"] == 0
    engine.dispose()


def test_a_second_instance_takes_over_the_scheduler_on_postgres(tmp_path: Path, openrouter: FakeOpenRouter) -> None:
    url = fresh_postgres_url()
    ports = [free_port(), free_port()]
    configs = [
        write_config(tmp_path / f"config-{n}.toml", openrouter=openrouter.url, database_url=url, port=port, outputs=[])
        for n, port in enumerate(ports)
    ]
    processes = [start(config, "run", cwd=tmp_path) for config in configs]
    try:
        for port in ports:
            wait_for(lambda port=port: health(port), what=f"instance on port {port}")
        leaders = wait_for(
            lambda: [health(port)["leader"] for port in ports] if sum(health(p)["leader"] for p in ports) else None,
            what="a leader",
        )
        assert sorted(leaders) == [False, True]  # type: ignore[arg-type]
        leader = leaders.index(True)  # type: ignore[attr-defined]
        processes[leader].kill()  # kill -9: the advisory lock goes with its connection
        processes[leader].communicate(timeout=10)
        survivor = ports[1 - leader]
        wait_for(lambda: health(survivor)["leader"], timeout=30, what="the survivor to lead")
    finally:
        for process in processes:
            if process.poll() is None:
                stop(process)


def test_kill_9_during_a_fan_out_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, history: SyntheticHistory
) -> None:
    """`rankbot outbox send` is killed with SIGKILL at a random moment after its first deliveries arrive, while it
    fans 10 digests out to 20 webhooks, then restarted, 20 times. Destinations with a delivery check end with
    exactly one copy of each digest; the two without one end with at least one (never zero)."""
    rng = random.Random(2026)
    database = f"sqlite:///{tmp_path / 'crash.db'}"
    with FakeWebhook(secret=WEBHOOK_SECRET, delay=(0.03, 0.08)) as webhook:
        outputs = [hook_output(webhook, f"d{n:02}", check=n >= 2) for n in range(20)]
        config = write_config(
            tmp_path / "config.toml",
            openrouter="http://127.0.0.1:9",
            database_url=database,
            port=0,
            outputs=outputs,
            worker_concurrency=3,
            worker_batch=6,
            delivery_base_seconds=0,
            delivery_cap_seconds=0,
        )
        assert finish(config, "outbox", "send", cwd=tmp_path)[0] == 0  # creates the destinations
        engine = engine_for(database)
        upgrade_database(engine)
        store = DeliveryStore(engine)
        messages = [
            message_for(build_digest("day", history.days, {}, DigestSettings(), end=s.day)) for s in history.days[-10:]
        ]
        for message in messages:
            store.queue(message, [(str(o["name"]), Variant.FULL) for o in outputs])
        kills = 0
        for _ in range(20):
            arrived = len(webhook.received)
            process = start(config, "outbox", "send", cwd=tmp_path)
            deadline = time.monotonic() + 20
            while len(webhook.received) == arrived and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, 0.3))
            if process.poll() is None:
                process.kill()
                kills += 1
            process.communicate(timeout=30)
        for _ in range(3):
            code, _, err = finish(config, "outbox", "send", cwd=tmp_path)
            assert code == 0, err
        backlog = store.backlog()
        engine.dispose()
    assert kills == 20, "every kill should land while deliveries are in flight"
    assert backlog == {"pending": 0, "sending": 0, "sent": 200, "failed": 0, "dead": 0}
    copies = webhook.copies()
    for output in outputs:
        name = str(output["name"])
        for message in messages:
            count = copies[(name, f"{message.id}/{name}")]
            assert count == 1 if output.get("status_url") else count >= 1, (name, message.id, count)
    assert sum(copies.values()) - len(copies) <= kills * 3  # a kill resends at most what was in flight


def test_outbox_commands_list_retry_and_requeue_dead(tmp_path: Path, history: SyntheticHistory) -> None:
    database = f"sqlite:///{tmp_path / 'ops.db'}"
    with FakeWebhook(secret=WEBHOOK_SECRET) as webhook:
        config = write_config(
            tmp_path / "config.toml",
            openrouter="http://127.0.0.1:9",
            database_url=database,
            port=0,
            outputs=[hook_output(webhook, "hook")],
            delivery_attempts=1,
        )
        assert finish(config, "outbox", "send", cwd=tmp_path)[0] == 0
        engine = engine_for(database)
        store = DeliveryStore(engine)
        message = message_for(build_digest("day", history.days, {}, DigestSettings()))
        store.queue(message, [("hook", Variant.FULL)])
        webhook.script("hook", Scripted(503, body="maintenance"))
        assert "dead 1" in finish(config, "outbox", "send", cwd=tmp_path)[1]
        _, out, _ = finish(config, "outbox", "list", "--state", "dead", cwd=tmp_path)
        assert "dead 1" in out and "gave up after 1 tries: HTTP 503: maintenance" in out
        _, out, _ = finish(config, "outbox", "requeue-dead", "--destination", "hook", cwd=tmp_path)
        assert "requeued 1 dead row(s)" in out
        assert finish(config, "outbox", "send", cwd=tmp_path)[0] == 0
        [entry] = store.entries()
        assert entry.state is DeliveryState.SENT
        code, _, err = finish(config, "outbox", "retry", "999", cwd=tmp_path)
        assert code == 1 and "no failed or dead outbox row 999" in err
        engine.dispose()
        assert len(webhook.to("hook")) == 1


def test_run_refuses_to_start_without_a_named_secret(tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "config.toml",
        openrouter="http://127.0.0.1:9",
        database_url=f"sqlite:///{tmp_path / 'x.db'}",
        port=0,
        outputs=[{"name": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/h", "secret_env": "NOT_SET_ANYWHERE"}],
    )
    code, _, err = finish(config, "run", cwd=tmp_path)
    assert code == 1
    assert "outputs 'hook' needs the environment variable NOT_SET_ANYWHERE" in err


def test_sigterm_during_a_fan_out_leaves_no_row_in_sending(tmp_path: Path, history: SyntheticHistory) -> None:
    database = f"sqlite:///{tmp_path / 'term.db'}"
    with FakeWebhook(secret=WEBHOOK_SECRET, delay=(0.15, 0.25)) as webhook:
        outputs = [hook_output(webhook, f"d{n}") for n in range(10)]
        config = write_config(
            tmp_path / "config.toml",
            openrouter="http://127.0.0.1:9",
            database_url=database,
            port=free_port(),
            outputs=outputs,
            worker_concurrency=2,
            worker_batch=10,
        )
        assert finish(config, "outbox", "send", cwd=tmp_path)[0] == 0
        engine = engine_for(database)
        store = DeliveryStore(engine)
        for snapshot in history.days[-3:]:
            message = message_for(build_digest("day", history.days, {}, DigestSettings(), end=snapshot.day))
            store.queue(message, [(str(o["name"]), Variant.FULL) for o in outputs])
        service = start(config, "run", cwd=tmp_path)
        wait_for(lambda: webhook.received, what="the first delivery")
        code, log = stop(service)
        backlog = store.backlog()
        assert code == 0, log
        assert backlog["sending"] == 0 and 0 < backlog["sent"] < 30, backlog
        assert finish(config, "outbox", "send", cwd=tmp_path)[0] == 0
        assert store.backlog()["sent"] == 30
        engine.dispose()
        assert set(webhook.copies().values()) == {1} and len(webhook.copies()) == 30


def test_a_busy_port_is_one_clear_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = write_config(
            tmp_path / "config.toml",
            openrouter="http://127.0.0.1:9",
            database_url=f"sqlite:///{tmp_path / 'busy.db'}",
            port=port,
            outputs=[],
        )
        code, _, err = finish(config, "run", cwd=tmp_path)
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err and "set [service] port" in err
    assert "Traceback" not in err


async def test_the_request_budget_survives_a_restart(tmp_path: Path, openrouter: FakeOpenRouter) -> None:
    """The day's OpenRouter requests are counted across restarts: a restarted service cannot overspend."""
    from bot.config_loading import load_settings
    from bot.parts import open_parts
    from bot.service import REQUESTS, Service

    settings = load_settings(
        None,
        {
            "RANKBOT_OPENROUTER_BASE_URL": openrouter.url,
            "RANKBOT_OPENROUTER_SOURCE": "exports",
            "RANKBOT_OPENROUTER_REQUESTS_PER_DAY": "5",
            "RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'budget.db'}",
        },
    )
    async with open_parts(settings, {}) as parts:
        await Service(parts).poll()
        first = len(parts.state.state(REQUESTS))
        assert first == len(openrouter.requests) and 0 < first < 5
        assert parts.state.state("last_poll_error") is None
    async with open_parts(settings, {}) as parts:  # a restart
        service = Service(parts)
        await service.poll()
        await service.poll()
        assert len(openrouter.requests) == 5  # the limit, not 2 × first + more
        assert "daily limit of 5 requests is used up" in parts.state.state("last_poll_error")


async def test_health_reports_stale_claims_failing_destinations_and_a_service_that_never_polled(
    tmp_path: Path, history: SyntheticHistory
) -> None:
    """`/healthz` is `degraded`, one line per problem, until the first successful poll; while rows are held by an
    instance that stopped sending heartbeats; and while a destination's last tries all failed."""
    from bot.config_loading import load_settings
    from bot.parts import open_parts
    from bot.service import Service

    with FakeWebhook(secret=WEBHOOK_SECRET) as webhook:
        settings = load_settings(
            None,
            {
                "RANKBOT_OPENROUTER_BASE_URL": "http://127.0.0.1:9",
                "RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'health.db'}",
            },
        )
        async with open_parts(settings, {SECRET_ENV: WEBHOOK_SECRET}) as parts:
            service = Service(parts)
            parts.state.set_state("last_poll_error", "OpenRouter did not answer after 5 tries (HTTP 500)")
            status = service.health()
            assert status["status"] == "degraded"
            assert status["problems"] == ["no successful poll yet: OpenRouter did not answer after 5 tries (HTTP 500)"]
            parts.metrics.watch(parts.store, service.last_poll_timestamp, lambda: parts.leadership.is_leader)
            metrics = parts.metrics.exposition().decode()
            assert "rankbot_last_successful_poll_timestamp_seconds 0.0" in metrics  # 0 until a poll succeeds
            assert "rankbot_leader 1.0" in metrics
            parts.state.set_state("last_successful_poll", "2026-11-20T12:00:00+00:00")
            assert service.health()["status"] == "ok"
            assert "rankbot_last_successful_poll_timestamp_seconds 1.795176e+09" in parts.metrics.exposition().decode()

            hook = {"url": webhook.hook_url("hook"), "secret_env": SECRET_ENV, "timeout_seconds": 2.0}
            parts.store.sync_destinations([Destination("hook", "webhook", hook)], origin="test")
            message = message_for(build_digest("day", history.days, {}, DigestSettings()))
            parts.store.queue(message, [("hook", Variant.FULL)])
            [claim] = parts.store.claim("gone-host:4242", 1)  # an instance that died holding it
            status = service.health()
            assert status["status"] == "degraded"
            [stale] = status["stale_claims"]  # type: ignore[misc]
            assert stale["holder"] == "gone-host:4242" and stale["rows"] == 1 and stale["last_heartbeat"] is None
            assert "1 row(s) in sending are held by gone-host:4242, silent since it started" in status["problems"][0]
            parts.store.record_failure(claim.entry.id, "gone-host:4242", "interrupted", parts.store.now())
            assert service.health()["status"] == "ok"

            webhook.script("hook", Scripted(500, body="down"), Scripted(500, body="down"))
            for _ in range(2):
                await parts.worker.drain()
                parts.store.retry(claim.entry.id)
            status = service.health()
            assert status["failing_destinations"] == [{"name": "hook", "failures": 2, "last_error": "HTTP 500: down"}]
            assert any("destination hook: the last 2 tries failed" in p for p in status["problems"])  # type: ignore[union-attr]
            await parts.worker.drain()
            assert service.health()["status"] == "ok"
            assert len(webhook.to("hook")) == 1


@pytest.mark.parametrize("after", [0.15, 0.4, 0.9])
def test_sigterm_in_the_first_second_stops_cleanly(tmp_path: Path, after: float) -> None:
    """A stop while Python is still importing, migrating or binding is a clean stop (exit 0), not death by
    signal (-15)."""
    config = write_config(
        tmp_path / "config.toml",
        openrouter="http://127.0.0.1:9",
        database_url=f"sqlite:///{tmp_path / 'early.db'}",
        port=free_port(),
        outputs=[],
    )
    service = start(config, "run", cwd=tmp_path)
    time.sleep(after)
    code, log = stop(service)
    assert code == 0, log
    assert "Traceback" not in log


def test_other_commands_still_die_by_sigterm(tmp_path: Path) -> None:
    """The early handler only defers a signal: `poll` gets it back and ends as an interrupted command does."""
    with socket.socket() as silent:  # accepts connections and never answers: the poll hangs
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        config = write_config(
            tmp_path / "config.toml",
            openrouter=f"http://127.0.0.1:{silent.getsockname()[1]}",
            database_url=f"sqlite:///{tmp_path / 'poll.db'}",
            port=0,
            outputs=[],
        )
        process = start(config, "poll", cwd=tmp_path)
        time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGTERM


async def test_a_failed_poll_is_retried_sooner_with_backoff_and_the_first_plan_waits_for_a_poll(
    tmp_path: Path, openrouter: FakeOpenRouter
) -> None:
    from bot.config_loading import load_settings
    from bot.demo.server import Fault
    from bot.parts import open_parts
    from bot.service import Service, poll_retry_delay

    assert [poll_retry_delay(n, 15).total_seconds() / 60 for n in range(1, 7)] == [1, 2, 4, 8, 15, 15]
    settings = load_settings(
        None,
        {
            "RANKBOT_OPENROUTER_BASE_URL": openrouter.url,
            "RANKBOT_OPENROUTER_SOURCE": "exports",
            "RANKBOT_OPENROUTER_RETRY_ATTEMPTS": "2",
            "RANKBOT_OPENROUTER_RETRY_BASE_SECONDS": "0.01",
            "RANKBOT_STORAGE_DATABASE_URL": f"sqlite:///{tmp_path / 'retry.db'}",
        },
    )
    async with open_parts(settings, {}) as parts:
        service = Service(parts)
        service.add_jobs()
        service.scheduler.start(paused=True)
        try:
            planning = asyncio.create_task(service.plan())
            await asyncio.sleep(0.2)
            assert not planning.done()  # no plan before the first poll
            openrouter.add_fault(Fault("latest.manifest.json", "status", status=500, times=2))
            await service.poll()
            await planning
            job = service.scheduler.get_job("poll")
            assert job is not None
            for minutes in (1, 2):
                wait = (job.next_run_time - datetime.now(UTC)).total_seconds()
                assert minutes * 60 - 5 < wait <= minutes * 60, (minutes, wait)
                if minutes == 1:
                    openrouter.add_fault(Fault("latest.manifest.json", "html"))  # not retried within a poll
                    await service.poll()
                    job = service.scheduler.get_job("poll")
                    assert job is not None
            assert service.poll_failures == 2
            await service.poll()
            assert service.poll_failures == 0
            assert parts.repo.latest_day() == openrouter.last_complete()
        finally:
            service.scheduler.shutdown(wait=False)
