"""The newsletter fan-out against a real SMTP server (aiosmtpd on 127.0.0.1) and a real SQLite file: a digest
reaches each confirmed subscriber of its cadence once, with their own Message-ID and links; who left or never
confirmed gets nothing; 5xx marks the subscriber, 4xx defers the letter, a refused login or a run of deferrals
pauses the whole send with an operator notice; kill -9 mid-send of 500, then resume: nobody has two different
copies, nobody is missed."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from datetime import date
from pathlib import Path

import pytest

from bot.config import Settings
from bot.config_email import EmailConfig
from bot.demo.fake_smtp import FakeSmtp
from bot.demo.generator import generate_history
from bot.email.fanout import PAUSED_NOTICE, LetterWorker, newsletter_destinations
from bot.email.smtp import MailSender
from bot.email.tokens import Tokens
from digests.delivery import Message
from digests.render.email import message_id
from digests.render.html import Site
from digests.subscribers import SubscriberState
from storage.delivery import DeliveryStore
from storage.letters import LetterKind, Letters
from storage.service_state import ServiceState
from storage.subscribers import Subscribers
from tests.website import Published, publish

SECRET = "n" * 40
SITE = Site("rankbot", "", "https://rankings.example.com")
USER, PASSWORD = "rankbot", "right-password"


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Published:
    return publish(tmp_path_factory.mktemp("fanout") / "site.db", generate_history(end=date(2026, 11, 20), days=20))


@pytest.fixture
def parts(published: Published) -> tuple[Letters, Subscribers, DeliveryStore, ServiceState]:
    engine = published.repo.engine
    with engine.begin() as connection:
        connection.exec_driver_sql("DELETE FROM letter")
        connection.exec_driver_sql("DELETE FROM subscriber")
        connection.exec_driver_sql("DELETE FROM notice")
    return Letters(engine), Subscribers(engine), DeliveryStore(engine), ServiceState(engine)


def week_digest(store: DeliveryStore) -> Message:
    return store.messages(kind="week")[-1]


def config(server: FakeSmtp, **extra: object) -> EmailConfig:
    values: dict[str, object] = {
        "enabled": True,
        "smtp_port": server.port,
        "security": "none",
        "rate_per_second": 1000,
        "timeout_seconds": 5,
        "concurrency": 4,
        "bounce_address": "bounces@rankings.example.com",
    }
    return EmailConfig.model_validate(values | extra)


def worker(parts: tuple[Letters, Subscribers, DeliveryStore, ServiceState], email: EmailConfig) -> LetterWorker:
    environ = {"SMTP_USER": USER, "SMTP_PASSWORD": "wrong-password"}
    return LetterWorker(parts, MailSender(email, environ), email, Tokens(SECRET), SITE, "test-worker")


def test_the_newsletter_has_one_destination_per_cadence_and_none_while_off() -> None:
    on = Settings.model_validate({"email": {"enabled": True}, "service": {"weekly_cron": "0 8 * * tue"}})
    weekly, daily = newsletter_destinations(on)
    assert (weekly.name, weekly.kind, dict(weekly.target)) == ("newsletter-weekly", "email", {"cadence": "weekly"})
    assert weekly.subscription.weekly and not weekly.subscription.daily
    assert weekly.subscription.weekly_cron == "0 8 * * tue"
    assert daily.subscription.daily and daily.subscription.notable_only and not daily.subscription.weekly
    assert newsletter_destinations(Settings()) == []


async def test_a_digest_reaches_each_confirmed_subscriber_of_its_cadence_once(
    parts: tuple[Letters, Subscribers, DeliveryStore, ServiceState],
) -> None:
    letters, subscribers, store, _ = parts
    weekly = [subscribers.add(f"reader{n}@example.org", "weekly", confirmed=True).subscriber for n in range(30)]
    subscribers.add("daily@example.org", "daily", confirmed=True)
    subscribers.add("pending@example.org", "weekly")
    gone = subscribers.add("gone@example.org", "weekly", confirmed=True).subscriber
    subscribers.set_state(gone.key, SubscriberState.UNSUBSCRIBED)
    late = subscribers.add("late@example.org", "weekly", confirmed=True).subscriber
    digest = week_digest(store)
    assert letters.fan_out(digest.id, "weekly") == 31
    assert letters.fan_out(digest.id, "weekly") == 0  # a second fan-out of the same digest adds nothing
    subscribers.set_state(late.key, SubscriberState.UNSUBSCRIBED)  # leaves after the fan-out, before the send
    with FakeSmtp() as server:
        tally = await worker(parts, config(server)).drain()
    assert (tally.sent, tally.skipped, tally.refused, tally.deferred) == (30, 1, 0, 0)
    received = server.received
    assert sorted(r.recipients[0] for r in received) == sorted(s.address for s in weekly)
    by_address = {r.recipients[0]: r for r in received}
    for subscriber in weekly[:3]:
        got = by_address[subscriber.address]
        assert got.sender == f"bounces+{subscriber.key}@rankings.example.com"
        message = got.message
        assert message["To"] == subscriber.address
        assert message["Message-ID"] == message_id(digest.id, subscriber.key, "localhost")
        unsubscribe = message["List-Unsubscribe"].split(",")[0].strip("<> ")
        token = unsubscribe.rpartition("/")[2]
        assert Tokens(SECRET).read("unsubscribe", token) == subscriber.key
        html = message.get_body(("html",)).get_content()
        assert subscriber.address in html and token in html and "mark.invalid" not in html
        assert message.get_body(("plain",)).get_content().count(unsubscribe) == 1
    assert len({r.message["Message-ID"] for r in received}) == 30
    assert letters.progress(digest.id) | {} == {
        "pending": 0, "sending": 0, "sent": 30, "deferred": 0, "refused": 0, "skipped": 1, "dead": 0,
    }  # fmt: skip


async def test_an_address_the_template_cannot_carry_is_rendered_on_its_own(
    parts: tuple[Letters, Subscribers, DeliveryStore, ServiceState],
) -> None:
    letters, subscribers, store, _ = parts
    odd = subscribers.add("o'brien@example.org", "weekly", confirmed=True).subscriber
    letters.fan_out(week_digest(store).id, "weekly")
    with FakeSmtp() as server:
        assert (await worker(parts, config(server)).drain()).sent == 1
    [got] = server.received
    assert got.recipients == [odd.address] and got.message["To"] == odd.address


@pytest.mark.parametrize(
    ("reply", "state", "subscriber_state", "soft"),
    [
        ("550 5.1.1 No such user", "refused", SubscriberState.BOUNCED, 0),
        ("552 5.2.2 Mailbox full", "refused", SubscriberState.CONFIRMED, 1),
        ("451 4.7.1 Try again later", "deferred", SubscriberState.CONFIRMED, 0),
        ("421 4.3.2 Service not available", "deferred", SubscriberState.CONFIRMED, 0),
    ],
)
async def test_a_reply_for_one_address_is_about_that_address(
    parts: tuple[Letters, Subscribers, DeliveryStore, ServiceState],
    reply: str,
    state: str,
    subscriber_state: SubscriberState,
    soft: int,
) -> None:
    letters, subscribers, store, _ = parts
    fine = [subscribers.add(f"fine{n}@example.org", "weekly", confirmed=True).subscriber for n in range(4)]
    unlucky = subscribers.add("unlucky@example.org", "weekly", confirmed=True).subscriber
    digest = week_digest(store)
    letters.fan_out(digest.id, "weekly")
    with FakeSmtp() as server:
        server.script(unlucky.address, reply)
        tally = await worker(parts, config(server)).drain()
    assert sorted(r.recipients[0] for r in server.received) == sorted(s.address for s in fine)
    assert tally.pauses == 0 and letters.progress(digest.id)[state] == 1 and letters.progress(digest.id)["sent"] == 4
    after = subscribers.by_key(unlucky.key)
    assert after is not None and after.state is subscriber_state and after.soft_bounces == soft
    assert all(s.state is SubscriberState.CONFIRMED for s in map(subscribers.by_key, [f.key for f in fine]) if s)


async def test_a_refused_login_pauses_the_whole_send_with_a_notice_and_it_resumes_after(
    parts: tuple[Letters, Subscribers, DeliveryStore, ServiceState], tmp_path: Path
) -> None:
    from bot.demo.fake_smtp import self_signed

    letters, subscribers, store, state = parts
    for n in range(6):
        subscribers.add(f"reader{n}@example.org", "weekly", confirmed=True)
    digest = week_digest(store)
    letters.fan_out(digest.id, "weekly")
    certificate = self_signed(tmp_path)
    with FakeSmtp(certificate, login=(USER, PASSWORD)) as server:
        email = config(server, security="starttls", username_env="SMTP_USER", password_env="SMTP_PASSWORD",
                       pause_seconds=0.2)  # fmt: skip
        environ = {"SMTP_USER": USER, "SMTP_PASSWORD": "wrong-password"}
        paused = LetterWorker(parts, MailSender(email, environ, certificate.client_context()), email,
                              Tokens(SECRET), SITE, "w1")  # fmt: skip
        tally = await paused.drain()
        assert server.received == [] and tally.pauses == 1 and "refused the login" in tally.reasons[0]
        assert letters.progress(digest.id)["pending"] == 6  # given back, not counted as tries
        [notice] = state.open_notices()
        assert (
            notice.key == PAUSED_NOTICE and "refused the login" in notice.text and "wrong-password" not in notice.text
        )
        await asyncio.sleep(0.25)
        environ["SMTP_PASSWORD"] = PASSWORD
        fixed = LetterWorker(parts, MailSender(email, environ, certificate.client_context()), email,
                             Tokens(SECRET), SITE, "w2")  # fmt: skip
        assert (await fixed.drain()).sent == 6  # a new worker (as after a restart) clears the notice it finds
    assert len(server.received) == 6 and state.open_notices() == []


async def test_a_run_of_deferrals_pauses_the_send(
    parts: tuple[Letters, Subscribers, DeliveryStore, ServiceState],
) -> None:
    letters, subscribers, store, state = parts
    people = [subscribers.add(f"reader{n}@example.org", "weekly", confirmed=True).subscriber for n in range(12)]
    digest = week_digest(store)
    letters.fan_out(digest.id, "weekly")
    with FakeSmtp() as server:
        for person in people:
            server.script(person.address, "421 4.7.0 Too many connections, slow down")
        tally = await worker(parts, config(server, deferred_run_limit=5, concurrency=1)).drain()
    progress = letters.progress(digest.id)
    assert tally.pauses == 1 and tally.deferred == 5 and "5 emails in a row were deferred" in tally.reasons[0]
    assert progress["deferred"] == 5 and progress["pending"] == 7 and progress["sent"] == 0
    assert [n.key for n in state.open_notices()] == [PAUSED_NOTICE]


async def test_confirmations_and_welcomes_go_the_same_way_and_only_to_who_they_are_for(
    parts: tuple[Letters, Subscribers, DeliveryStore, ServiceState],
) -> None:
    letters, subscribers, _, _ = parts
    pending = subscribers.add("new@example.org", "daily").subscriber
    already = subscribers.add("old@example.org", "weekly", confirmed=True).subscriber
    assert letters.queue("confirm:1", pending.key, LetterKind.CONFIRM)
    assert not letters.queue("confirm:1", pending.key, LetterKind.CONFIRM)
    letters.queue("confirm:1", already.key, LetterKind.CONFIRM)  # confirmed meanwhile: not asked again
    letters.queue("welcome:1", already.key, LetterKind.WELCOME)
    with FakeSmtp() as server:
        tally = await worker(parts, config(server)).drain()
    assert (tally.sent, tally.skipped) == (2, 1)
    by_address = {r.recipients[0]: r.message for r in server.received}
    confirm = by_address["new@example.org"]
    assert confirm["Auto-Submitted"] == "auto-generated" and "daily alerts" in confirm.get_content()
    link = next(line for line in confirm.get_content().splitlines() if "/email/confirm/" in line)
    assert Tokens(SECRET).read("confirm", link.rpartition("/")[2]) == pending.key
    welcome = by_address["old@example.org"]
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" and "weekly digest" in welcome.get_content()


async def test_stopping_gives_back_what_was_not_started(
    parts: tuple[Letters, Subscribers, DeliveryStore, ServiceState],
) -> None:
    letters, subscribers, store, _ = parts
    for n in range(40):
        subscribers.add(f"reader{n}@example.org", "weekly", confirmed=True)
    digest = week_digest(store)
    letters.fan_out(digest.id, "weekly")
    with FakeSmtp(delay=0.05) as server:
        stopping = asyncio.Event()
        running = asyncio.create_task(worker(parts, config(server, concurrency=2)).run(stopping))
        while len(server.received) < 4:  # noqa: ASYNC110 - the server is another thread's; polling is simplest
            await asyncio.sleep(0.01)
        stopping.set()
        await asyncio.wait_for(running, 10)
        arrived = len(server.received)
    progress = letters.progress(digest.id)
    assert progress["sending"] == 0 and progress["sent"] == arrived < 40 and progress["pending"] == 40 - arrived


def test_kill_9_mid_send_of_500_then_resume_misses_nobody_and_doubles_nobody(tmp_path: Path) -> None:
    """`rankbot email send` is killed with SIGKILL at random moments while it sends one digest to 500 subscribers,
    and started again until done. Every subscriber ends with exactly one distinct Message-ID at the server; a copy
    sent twice (the letter in flight at a kill) carries the same Message-ID, and there are at most as many as there
    were sends in flight."""
    from tests.processes import finish, start

    rng = random.Random(12)
    database = tmp_path / "crash.db"
    published = publish(database, generate_history(end=date(2026, 11, 20), days=20))
    engine = published.repo.engine
    subscribers = Subscribers(engine)
    people = [subscribers.add(f"reader{n:03}@example.org", "weekly", confirmed=True).subscriber for n in range(500)]
    store = DeliveryStore(engine)
    settings = Settings.model_validate({"email": {"enabled": True}})
    store.sync_destinations(newsletter_destinations(settings), origin="email")
    from digests.delivery import Variant

    digest = week_digest(store)
    assert store.queue(digest, [("newsletter-weekly", Variant.FULL)]) == 1  # what the planner does
    with FakeSmtp(delay=0.004) as server:
        config_file = tmp_path / "config.toml"
        config_file.write_text(
            f'[storage]\ndatabase_url = "sqlite:///{database}"\n'
            '[web]\npublic_url = "https://rankings.example.com"\n'
            f'[email]\nenabled = true\nsmtp_port = {server.port}\nsecurity = "none"\nconcurrency = 4\n'
            'rate_per_second = 2000\nbounce_address = "bounces@rankings.example.com"\n'
        )
        env = {"RANKBOT_NEWSLETTER_SECRET": SECRET}
        kills = 0
        for _ in range(6):
            arrived = len(server.received)
            process = start(config_file, "email", "send", cwd=tmp_path, env=env)
            deadline = time.monotonic() + 30
            while len(server.received) <= arrived + 5 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0, 0.15))
            if process.poll() is None:
                process.kill()
                kills += 1
            process.communicate(timeout=30)
        code, said, err = finish(config_file, "email", "send", cwd=tmp_path, env=env)
        assert code == 0, err
        received = server.received
    assert kills == 6, "every kill should land mid-send"
    assert "due later: 0" in said
    ids: dict[str, set[str]] = {}
    copies: Counter[str] = Counter()
    for got in received:
        ids.setdefault(got.recipients[0], set()).add(got.message["Message-ID"])
        copies[got.recipients[0]] += 1
    assert sorted(ids) == sorted(p.address for p in people)  # nobody missed
    assert all(len(found) == 1 for found in ids.values())  # nobody got two different copies
    doubled = sum(copies.values()) - len(copies)
    assert doubled <= kills * 4, doubled  # at most what was in flight at each kill
    assert Letters(engine).progress(digest.id)["sent"] == 500
    print(f"500 letters, {kills} kills: {doubled} resent with the same Message-ID")
    engine.dispose()
