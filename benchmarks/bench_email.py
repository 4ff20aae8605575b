"""Benchmark: email rendering and sending, against an aiosmtpd sink in its own process.

Figures (issue 12; the full fan-out through the outbox to 10,000 / 100,000 subscribers comes with the outbox
integration):
- render: one digest rendered as each subscriber's email (signed links, the chart inline), messages/s;
- send: the rendered messages (as bytes) through ``MailSender`` (16 connections, unpaced) against a raw aiosmtplib
  blast of one pre-rendered message over the same 16 connections: the sender's overhead as a ratio (target ≥ 0.8 ×
  the baseline);
- peak RSS of this process.

Run: PYTHONPATH=. .venv/bin/python benchmarks/bench_email.py [--messages 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from datetime import UTC, datetime
from multiprocessing import Event, Process
from multiprocessing.synchronize import Event as EventType

import aiosmtplib

from bot.config_email import EmailConfig
from bot.email.letters import digest_letter, recipient_for
from bot.email.smtp import SMTP_POLICY, MailSender
from bot.email.tokens import Tokens
from digests.digest import build_digest
from digests.messages import message_for
from digests.model import DigestSettings
from digests.render.html import Site
from tests.test_text import CATALOGUE
from tests.test_text import history as text_history

CONNECTIONS = 16


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


async def baseline(port: int, data: bytes, count: int) -> float:
    """One pre-rendered message (its bytes) blasted over ``CONNECTIONS`` connections: the sink's and aiosmtplib's
    own speed."""
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


async def ours(port: int, letters: list[object]) -> float:
    config = EmailConfig(smtp_port=port, security="none", concurrency=CONNECTIONS, rate_per_second=1e9)
    sender = MailSender(config, {})
    flat = [(one.message.as_bytes(policy=SMTP_POLICY), one.envelope_from, one.to) for one in letters]  # type: ignore[attr-defined]
    started = time.perf_counter()
    queue: asyncio.Queue[object] = asyncio.Queue()
    for item in flat:
        queue.put_nowait(item)

    async def work() -> None:  # as the outbox's workers call it: a few sends in flight, one after another
        while not queue.empty():
            data, envelope_from, to = queue.get_nowait()  # type: ignore[misc]
            await sender.send(data, envelope_from, to)

    await asyncio.gather(*(work() for _ in range(CONNECTIONS)))
    elapsed = time.perf_counter() - started
    await sender.close()
    return len(letters) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=4000)
    args = parser.parse_args()
    from tests.processes import free_port

    port = free_port()
    ready = Event()
    server = Process(target=sink, args=(port, ready), daemon=True)
    server.start()
    ready.wait(10)
    digest = message_for(build_digest("week", text_history(), CATALOGUE, DigestSettings()))
    config = EmailConfig(bounce_address="bounces@rankings.example.com", **{"from": "digest@rankings.example.com"})
    site, tokens, chart = (
        Site("rankbot", "", "https://rankings.example.com"),
        Tokens("s" * 40),
        (b"\x89PNG" * 4000, "alt"),
    )
    now = datetime.now(UTC)
    started = time.perf_counter()
    letters = []
    for n in range(args.messages):
        recipient = recipient_for(f"user{n}@example.org", f"key{n:020d}", "weekly", config, tokens, site)
        letters.append(digest_letter(digest, recipient, config, site, now, chart))
    rendered = args.messages / (time.perf_counter() - started)
    size = len(letters[0].message.as_bytes())
    raw = asyncio.run(baseline(port, letters[0].message.as_bytes(policy=SMTP_POLICY), args.messages))
    sent = asyncio.run(ours(port, letters))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    server.terminate()
    print(f"render: {rendered:.0f} emails/s ({size / 1024:.0f} KB each, chart inline)")
    print(f"send over {CONNECTIONS} connections: MailSender {sent:.0f} msg/s, raw aiosmtplib {raw:.0f} msg/s "
          f"({sent / raw:.2f}×); peak RSS {rss:.0f} MB with {args.messages} rendered messages held")  # fmt: skip


if __name__ == "__main__":
    main()
