"""Benchmark: the newsletter fan-out of one digest to 10,000 and 100,000 confirmed subscribers, against an aiosmtpd
sink in its own process.

For each size, in the same run:
- fan-out: the outbox's newsletter row copied into one letter per subscriber (``Letters.fan_out``), rows/s;
- send: ``LetterWorker.drain`` over 16 connections, unpaced — the digest rendered once, each letter addressed from
  it, each send recorded in SQLite as it ends — messages/s and the peak RSS of the sending process (its own, fresh
  process: nothing else in it);
- baseline: a raw aiosmtplib blast of one pre-rendered message (the same size) to the same sink over the same 16
  connections. Targets: ≥ 0.8 × the baseline, peak RSS ≤ 150 MB at 100,000.
And once: rendering one subscriber's email from scratch (Jinja2 + css-inline + the email package), emails/s, which
is why the worker renders each digest once.

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_email.py [--subscribers 10000 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import secrets
import tempfile
import time
from datetime import UTC, date, datetime
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

CONNECTIONS = 16
SECRET = "s" * 40


def sink(port: int, ready: EventType) -> None:
    """An SMTP server that accepts everything and keeps nothing."""
    from aiosmtpd.controller import Controller

    class Accept:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
            return "250 OK"

    controller = Controller(Accept(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


def prepare(database: Path, subscribers: int) -> tuple[str, float]:
    """A published site, ``subscribers`` confirmed weekly subscribers, and the week digest queued to the newsletter
    (as the planner does); returns the digest's id and the fan-out's rows/s."""
    from bot.config import Settings
    from bot.demo.generator import generate_history
    from bot.email.fanout import newsletter_destinations
    from digests.delivery import Variant
    from storage.letters import Letters
    from storage.subscribers import SUBSCRIBER
    from tests.website import publish

    published = publish(database, generate_history(end=date(2026, 11, 20), days=20))
    engine = published.repo.engine
    now = datetime.now(UTC)
    with engine.begin() as connection:
        for start in range(0, subscribers, 5000):
            rows = [
                {
                    "address": f"reader{n}@example.org",
                    "address_key": f"reader{n}@example.org",
                    "key": secrets.token_urlsafe(24),
                    "state": "confirmed",
                    "cadence": "weekly",
                    "created_at": now,
                    "confirmed_at": now,
                    "state_changed_at": now,
                    "soft_bounces": 0,
                }
                for n in range(start, min(start + 5000, subscribers))
            ]
            connection.execute(SUBSCRIBER.insert(), rows)
    store = published.store
    store.sync_destinations(newsletter_destinations(Settings.model_validate({"email": {"enabled": True}})), "email")
    digest = store.messages(kind="week")[-1]
    store.queue(digest, [("newsletter-weekly", Variant.FULL)])
    started = time.perf_counter()
    added = Letters(engine).fan_out(digest.id, "weekly")
    rate = added / (time.perf_counter() - started)
    engine.dispose()
    return digest.id, rate


def send(database: Path, port: int, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    """In its own process: every letter through the worker; messages/s and this process's peak RSS."""
    from bot.config_email import EmailConfig
    from bot.email.fanout import LetterWorker
    from bot.email.smtp import MailSender
    from bot.email.tokens import Tokens
    from digests.render.html import Site
    from storage.delivery import DeliveryStore
    from storage.engine import open_database
    from storage.letters import Letters
    from storage.service_state import ServiceState
    from storage.subscribers import Subscribers

    engine = open_database(f"sqlite:///{database}")
    config = EmailConfig(enabled=True, smtp_port=port, security="none", concurrency=CONNECTIONS, rate_per_second=1e9,
                         bounce_address="bounces@rankings.example.com")  # fmt: skip
    parts = (Letters(engine), Subscribers(engine), DeliveryStore(engine), ServiceState(engine))
    site = Site("rankbot", "", "https://rankings.example.com")
    worker = LetterWorker(parts, MailSender(config, {}), config, Tokens(SECRET), site, "bench")
    started = time.perf_counter()
    tally = asyncio.run(worker.drain())
    elapsed = time.perf_counter() - started
    results.put((tally.sent, tally.sent / elapsed, peak_rss_mb()))


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (``VmHWM``: unlike ``ru_maxrss``, not inherited from the parent
    that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_letter(database: Path, digest_id: str) -> bytes:
    """What one subscriber receives (for the baseline's message)."""
    from bot.config_email import EmailConfig
    from bot.email.letters import recipient_for, sender_of
    from bot.email.tokens import Tokens
    from digests.render.email import letter_template
    from digests.render.html import Site
    from storage.archive import Archive
    from storage.delivery import DeliveryStore
    from storage.engine import open_database

    engine = open_database(f"sqlite:///{database}")
    digest = DeliveryStore(engine).message(digest_id)
    assert digest is not None
    chart = Archive(engine).chart(digest_id, "bump")
    config = EmailConfig(bounce_address="bounces@rankings.example.com")
    site = Site("rankbot", "", "https://rankings.example.com")
    import json

    template = letter_template(json.loads(digest.full["json"]), digest.full["text"], sender_of(config),
                               site.absolute(site.archive_url(digest_id)), datetime.now(UTC), "weekly",
                               (chart.png, chart.alt) if chart else None)  # fmt: skip
    engine.dispose()
    recipient = recipient_for("reader1@example.org", "k" * 32, "weekly", config, Tokens(SECRET), site)
    return template.letter(recipient)


async def baseline(port: int, data: bytes, count: int) -> float:
    """One pre-rendered message blasted over ``CONNECTIONS`` connections: the sink's and aiosmtplib's own speed."""
    import aiosmtplib

    clients = [aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False) for _ in range(CONNECTIONS)]
    for client in clients:
        await client.connect()
    started = time.perf_counter()

    async def blast(client: aiosmtplib.SMTP, n: int) -> None:
        for i in range(n):
            await client.sendmail("b@x.example", [f"u{i}@example.org"], data)

    await asyncio.gather(*(blast(c, count // CONNECTIONS) for c in clients))
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.quit()
    return (count // CONNECTIONS * CONNECTIONS) / elapsed


def render_rate(database: Path, digest_id: str, count: int = 300) -> float:
    """Each subscriber's email rendered from scratch, emails/s."""
    from bot.config_email import EmailConfig
    from bot.email.letters import digest_letter, recipient_for
    from bot.email.tokens import Tokens
    from digests.render.html import Site
    from storage.delivery import DeliveryStore
    from storage.engine import open_database

    engine = open_database(f"sqlite:///{database}")
    digest = DeliveryStore(engine).message(digest_id)
    engine.dispose()
    assert digest is not None
    config = EmailConfig(bounce_address="bounces@rankings.example.com")
    site, tokens = Site("rankbot", "", "https://rankings.example.com"), Tokens(SECRET)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for n in range(count):
        recipient = recipient_for(f"user{n}@example.org", f"key{n:020d}", "weekly", config, tokens, site)
        digest_letter(digest, recipient, config, site, now, (b"\x89PNG" * 4000, "alt")).message.as_bytes()
    return count / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    from tests.processes import free_port

    spawn = multiprocessing.get_context("spawn")
    port = free_port()
    ready = spawn.Event()
    server = spawn.Process(target=sink, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    try:
        for count in args.subscribers:
            with tempfile.TemporaryDirectory() as folder:
                database = Path(folder) / "bench.db"
                digest_id, fanned = prepare(database, count)
                results: multiprocessing.Queue = spawn.Queue()  # type: ignore[type-arg]
                sender = spawn.Process(target=send, args=(database, port, results))
                sender.start()
                sent, rate, rss = results.get(timeout=3600)
                sender.join()
                data = one_letter(database, digest_id)
                raw = asyncio.run(baseline(port, data, count))
                if count == args.subscribers[0]:
                    print(f"render from scratch: {render_rate(database, digest_id):.0f} emails/s")
            print(
                f"{count:,} subscribers: fan-out {fanned:,.0f} letters/s; sent {sent:,} at {rate:.0f} msg/s vs raw "
                f"aiosmtplib {raw:.0f} msg/s ({rate / raw:.2f}×), {len(data) / 1024:.0f} KB each, "
                f"{CONNECTIONS} connections; sender peak RSS {rss:.0f} MB"
            )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()
