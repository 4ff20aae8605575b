"""Benchmark: signed ``/rankings`` commands under load, beside a hello-world route in the same process and run; and
the fan-out of one digest to 200 Slack channels.

1. Two years of generated history in a SQLite file; the web app with the Slack endpoint as ``rankbot run`` builds
   it (``bot.slack.parts.slack_chat`` mounted by ``bot.web.app.web_app``: uvicorn, one process), bolt's
   ``auth.test`` answered by a fake Slack Web API on 127.0.0.1. wrk (Debian's) at 50 connections, 10 s per URL, with
   a Lua script that sends signed ``POST /slack/events`` bodies: wrk's LuaJIT has no HMAC, so the script carries
   1,000 bodies signed here (distinct trigger ids, a timestamp of now, valid for the 5 minutes the run takes) and
   sends them in turn. Targets (issue #10): p99 ≤ 3 × hello-world's, throughput ≥ 1/3 of hello-world's, none over 3 s.
2. One day digest queued to 200 channels subscribed from chat; the outbox worker (concurrency 8) posts it to a fake
   Slack that answers 429 to a second post in a channel within 1 s. Figures: time, posts, 429s (target: zero).

Run: .venv/bin/python benchmarks/bench_slack.py [--seconds 10] [--connections 50]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import random
import shutil
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from multiprocessing import Process
from pathlib import Path
from urllib.parse import urlencode

import httpx
from bench_web import wait_until_up, wrk  # benchmarks run as scripts: their folder is on the path

from bot.chat.channels import ChatChannels
from bot.config import Settings
from bot.config_chat import SlackConfig
from bot.demo.fake_slack import FakeSlack
from bot.demo.generator import generate_history
from digests.commands import Subscribe
from digests.delivery import RetrySchedule
from digests.digest import build_digest
from digests.messages import message_for
from digests.model import DigestSettings
from storage.delivery import DeliveryStore
from storage.engine import open_database
from storage.repository import Repository

TODAY = date(2026, 11, 20)
SECRET = "bench-signing-secret"  # noqa: S105 - the benchmark's own, on 127.0.0.1
SIGNED_BODIES = 1000


def fill(database: Path) -> None:
    history = generate_history(end=TODAY - timedelta(days=1), days=730, models=200)
    engine = open_database(f"sqlite:///{database}")
    repo = Repository(engine)
    repo.add_days(history.days, "api")
    repo.replace_models(history.catalogue)
    engine.dispose()


def settings_for(api_url: str) -> Settings:
    return Settings(slack=SlackConfig(api_url=api_url, hooks_url="http://127.0.0.1:9/"))


def serve(database: Path, port: int, api_url: str) -> None:
    import uvicorn
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from bot.metrics import Metrics
    from bot.slack.parts import slack_chat
    from bot.web.app import WebParts, web_app
    from bot.web.site import SiteData
    from storage.archive import Archive

    engine = open_database(f"sqlite:///{database}")
    settings = settings_for(api_url)
    environ = {"SLACK_BOT_TOKEN": "xoxb-test", "SLACK_SIGNING_SECRET": SECRET}
    data = SiteData(Repository(engine), Archive(engine), DigestSettings())
    chat = slack_chat(settings, environ, engine, data)
    app = web_app(WebParts(lambda: {"status": "ok"}, Metrics(), settings.web, data, chat.routes()))

    async def hello(_: object) -> PlainTextResponse:
        return PlainTextResponse("hello, world\n")

    app.router.routes.insert(0, Route("/hello", hello))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, proxy_headers=False)


def command_body(text: str) -> bytes:
    form = {
        "team_id": "T0TEAM",
        "channel_id": "C0BENCH",
        "user_id": "UREADER",
        "user_name": "reader",
        "command": "/rankings",
        "text": text,
        "response_url": "https://hooks.slack.com/commands/T0TEAM/1/x",
        "trigger_id": uuid.uuid4().hex,
    }
    return urlencode(form).encode()


def signing_script(text: str, folder: Path) -> Path:
    """A wrk script that POSTs ``SIGNED_BODIES`` distinct commands, each signed (now) with the signing secret."""
    stamp = str(int(time.time()))
    rows = []
    for _ in range(SIGNED_BODIES):
        body = command_body(text)
        signature = hmac.new(SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
        rows.append(f'{{[==[{body.decode()}]==], "v0={signature}"}}')
    script = folder / f"signed-{abs(hash(text))}.lua"
    script.write_text(
        "local requests = {\n  " + ",\n  ".join(rows) + "\n}\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n % #requests + 1\n"
        "  local headers = {\n"
        '    ["Content-Type"] = "application/x-www-form-urlencoded",\n'
        f'    ["X-Slack-Request-Timestamp"] = "{stamp}",\n'
        '    ["X-Slack-Signature"] = requests[n][2],\n'
        "  }\n"
        '  return wrk.format("POST", "/slack/events", headers, requests[n][1])\n'
        "end\n"
        "local failed = 0\n"
        "response = function(status, headers, body)\n"
        "  if status ~= 200 then failed = failed + 1 end\n"
        "end\n"
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non-200: %d\\n", failed))\n'
        "end\n"
    )
    return script


def wrk_signed(base: str, script: Path, seconds: int, connections: int) -> tuple[float, float, float, float, str]:
    output = subprocess.run(
        ["wrk", "--latency", "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(script), base],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    import re

    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def millis(pattern: str) -> float:
        value, unit = re.search(pattern, output).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]

    p50 = millis(r"\s50%\s+([\d.]+)(us|ms|s|m)")
    p99 = millis(r"\s99%\s+([\d.]+)(us|ms|s|m)")
    worst = millis(r"Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s|m)")
    failed = re.search(r"non-200: (\d+)", output).group(1)  # type: ignore[union-attr]
    return rate, p50, p99, worst, failed


def load(args: argparse.Namespace, folder: Path) -> None:
    database = folder / "slack.db"
    started = time.perf_counter()
    fill(database)
    print(f"2 years of history (200 models): {time.perf_counter() - started:.1f} s to build")
    with FakeSlack() as fake:
        port = 18732
        server = Process(target=serve, args=(database, port, fake.api_url), daemon=True)
        server.start()
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base}/hello")
            scripts = {text: signing_script(text, folder) for text in ("", "week")}
            for text in scripts:  # the first answer builds the digest; wrk measures what people then get
                body = command_body(text)
                stamp = str(int(time.time()))
                mac = hmac.new(SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256).hexdigest()
                first = time.perf_counter()
                response = httpx.post(
                    f"{base}/slack/events",
                    content=body,
                    headers={
                        "X-Slack-Request-Timestamp": stamp,
                        "X-Slack-Signature": f"v0={mac}",
                        "Content-Type": "application/x-www-form-urlencoded",
                    },
                    timeout=60,
                )
                response.raise_for_status()
                took = (time.perf_counter() - first) * 1000
                print(f"first /rankings {text or '(top 10)'}: {took:.0f} ms (builds the digest, caches the answer)")
            hello = wrk(f"{base}/hello", args.seconds, args.connections)
            figures = {
                text: wrk_signed(base, script, args.seconds, args.connections) for text, script in scripts.items()
            }
        finally:
            server.terminate()
            server.join()
    hello_rate, hello_p50, hello_p99 = hello
    print(f"wrk, {args.connections} connections, {args.seconds} s each (one server process):")
    print(f"  GET  /hello                {hello_rate:8.0f} req/s   p50 {hello_p50:6.2f} ms   p99 {hello_p99:7.2f} ms")
    for text, (rate, p50, p99, worst, failed) in figures.items():
        ok = p99 <= 3 * hello_p99 and rate >= hello_rate / 3 and worst <= 3000 and failed == "0"
        print(
            f"  POST /rankings {text or '(top 10)':<10} {rate:8.0f} req/s   p50 {p50:6.2f} ms   p99 {p99:7.2f} ms   "
            f"max {worst:7.1f} ms   non-200 {failed}   p99 {p99 / hello_p99:.1f}× hello, throughput "
            f"{rate / hello_rate:.2f}× hello: {'ok' if ok else 'MISSED'}"
        )


async def fan_out(folder: Path, channels: int = 200) -> None:
    from bot.outbox import OutboxWorker
    from bot.publishers.registry import Publishers, publisher_factories
    from bot.slack.parts import publisher_factory

    database = folder / "fanout.db"
    history = generate_history(end=TODAY - timedelta(days=1), days=30)
    engine = open_database(f"sqlite:///{database}")
    repo, store = Repository(engine), DeliveryStore(engine)
    repo.add_days(history.days, "api")
    repo.replace_models(history.catalogue)
    chat = ChatChannels("slack", store, repo)
    names = []
    for n in range(channels):
        names.append(chat.subscribe("T0TEAM", f"C{n:08d}", Subscribe("daily")).name)
    message = message_for(build_digest("day", history.days, {}, DigestSettings()))
    from digests.delivery import Variant

    store.queue(message, [(name, Variant.FULL) for name in names])
    with FakeSlack(per_channel_interval=1.0) as fake:
        settings = settings_for(fake.api_url)
        factory = publisher_factory(settings, {"SLACK_BOT_TOKEN": fake.token}, engine)
        async with httpx.AsyncClient(trust_env=False) as http:
            worker = OutboxWorker(
                store,
                Publishers(publisher_factories(http, {"slack": factory}), {}),
                RetrySchedule(attempts=3, base=1.0, cap=5.0),
                name="bench",
                concurrency=8,
                rng=random.Random(1),
            )
            started = time.perf_counter()
            report = await worker.drain()
            took = time.perf_counter() - started
        posts = len(fake.posted)
        print(
            f"fan-out of one day digest to {channels} channels: {took:.1f} s ({channels / took:.0f} channels/s), "
            f"{report.sent} sent, {posts} posts in the fake, {fake.rate_limited} answered 429 (target: 0)"
        )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--skip-load", action="store_true", help="only the fan-out")
    args = parser.parse_args()
    if shutil.which("wrk") is None and not args.skip_load:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    print(f"run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        if not args.skip_load:
            load(args, folder)
        asyncio.run(fan_out(folder))


if __name__ == "__main__":
    main()
