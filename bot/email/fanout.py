"""The newsletter's sends: a digest's outbox row fans out into one letter per confirmed subscriber
(``storage.letters``), and the letter worker sends them at the speed of the mail server.

- ``NewsletterPublisher`` is the outbox's publisher for the ``email`` destinations (one per cadence): its send copies
  the subscribers into letters in the database — quick, and harmless to repeat after a crash.
- ``LetterWorker`` claims due letters a page at a time and keeps ``[email] concurrency`` sends going. Each digest is
  rendered once per cadence (``digests.render.email.letter_template``) and only the subscriber's address, links and
  ``Message-ID`` differ per letter. Each send is recorded the moment the server answers, so a crash resends at most
  what was in flight — with the same ``Message-ID``, which mail systems recognise.
- A 5xx for one address marks that subscriber (a hard bounce suppresses at once, soft ones count); a 4xx defers
  that letter with backoff; a refused login, a missing STARTTLS or a run of deferrals pauses the whole send with an
  operator notice, and it resumes by itself after ``pause_seconds``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.config import Settings
from bot.config_email import EmailConfig
from bot.email.letters import digest_letter, recipient_for, sender_of
from bot.email.smtp import SMTP_POLICY, DeferredError, MailSender, RecipientRefusedError, SendingStoppedError
from bot.email.tokens import Tokens
from bot.publishers.contract import Delivery
from digests.delivery import Destination, Subscription
from digests.render.email import LetterTemplate, confirmation_email, letter_template, welcome_email
from digests.render.html import Site
from digests.subscribers import CADENCES, SubscriberState
from storage.archive import Archive
from storage.delivery import DeliveryStore
from storage.letters import Claimed, LetterKind, Letters
from storage.service_state import ServiceState
from storage.subscribers import Subscribers

log = logging.getLogger(__name__)

ORIGIN = "email"
PAUSED_NOTICE = "email:paused"
TEMPLATES_KEPT = 4


def newsletter_destinations(settings: Settings) -> list[Destination]:
    """The outbox's two newsletter destinations (none while ``[email]`` is off): weekly digests to the weekly
    subscribers, the daily alerts (notable days only) to the daily ones."""
    if not settings.email.enabled:
        return []
    service = settings.service
    subscriptions = {
        "weekly": Subscription(daily=False, weekly=True, weekly_cron=service.weekly_cron, timezone=service.timezone),
        "daily": Subscription(daily=True, notable_only=True, quiet_day="skip", weekly=False),
    }
    return [
        Destination(f"newsletter-{cadence}", "email", {"cadence": cadence}, subscriptions[cadence], origin=ORIGIN)
        for cadence in CADENCES
    ]


class NewsletterPublisher:
    """Sends a digest to a cadence's subscribers by queueing their letters; the letter worker does the rest."""

    def __init__(self, letters: Letters, cadence: str, wake: asyncio.Event, timeout: float) -> None:
        self.letters = letters
        self.cadence = cadence
        self.wake = wake
        self.timeout = timeout

    async def send(self, delivery: Delivery) -> str | None:
        added = await asyncio.to_thread(self.letters.fan_out, delivery.message.id, self.cadence)
        self.wake.set()
        return f"{added} letters queued"

    async def was_delivered(self, delivery: Delivery) -> bool | None:
        return None  # queueing again adds nothing, so the outbox may simply send again


@dataclass
class Tally:
    """What the worker did since it started (the benchmark and the tests read it)."""

    sent: int = 0
    deferred: int = 0
    refused: int = 0
    skipped: int = 0
    pauses: int = 0
    reasons: list[str] = field(default_factory=list)


class LetterWorker:
    def __init__(
        self,
        engine_parts: tuple[Letters, Subscribers, DeliveryStore, ServiceState],
        sender: MailSender,
        config: EmailConfig,
        tokens: Tokens,
        site: Site,
        name: str,
    ) -> None:
        self.letters, self.subscribers, self.store, self.state = engine_parts
        self.archive = Archive(self.store.engine)
        self.sender = sender
        self.config = config
        self.tokens = tokens
        self.site = site
        self.name = name
        self.wake = asyncio.Event()
        self.tally = Tally()
        self._templates: dict[tuple[str, str], LetterTemplate] = {}
        self._building = asyncio.Lock()
        self._queue: asyncio.Queue[Claimed] = asyncio.Queue()
        self._low = asyncio.Event()
        """Set when the queue of claimed letters runs low: time to claim more."""
        self._paused_until = 0.0
        self._deferred_run = 0
        self._noticed = False

    # -- the loop ------------------------------------------------------------------------------------------
    async def drain(self, single_instance: bool = True) -> Tally:
        """Send every letter due now, then stop (``rankbot email send``); a pause ends it too."""
        stopping = asyncio.Event()
        await self.run(stopping, single_instance, until_done=True)
        return self.tally

    async def run(self, stopping: asyncio.Event, single_instance: bool = True, until_done: bool = False) -> None:
        """Send until ``stopping`` (or, ``until_done``, until nothing is due); on a single instance, letters a crash
        left ``sending`` are due again at once."""
        lease = timedelta(seconds=self.config.claim_lease_seconds)
        released = await asyncio.to_thread(self.letters.release_stale, timedelta(0) if single_instance else lease)
        if released:
            log.info("%d letters were being sent when the last run stopped: sending them again (same Message-ID)",
                     released)  # fmt: skip
        notices = await asyncio.to_thread(self.state.open_notices)
        self._noticed = any(notice.key == PAUSED_NOTICE for notice in notices)  # raised before a restart
        concurrency = self.config.concurrency
        senders = [asyncio.create_task(self._send_queued(), name=f"letters {n}") for n in range(concurrency)]
        stale_check = time.monotonic()
        pauses = self.tally.pauses
        try:
            while not stopping.is_set():
                if until_done and self.tally.pauses > pauses:
                    break
                if not self._paused() and self._queue.qsize() < concurrency:
                    page = await asyncio.to_thread(self.letters.claim, self.name, concurrency * 2)
                    for claimed in page:
                        self._queue.put_nowait(claimed)
                    if page:
                        continue
                    if until_done and not self._queue.qsize():
                        await self._queue.join()  # what is in flight may defer or free more
                        if self._paused() or not await asyncio.to_thread(self.letters.due):
                            break
                        continue
                if time.monotonic() - stale_check > lease.total_seconds() / 2:
                    stale_check = time.monotonic()
                    await asyncio.to_thread(self.letters.release_stale, lease)
                self.wake.clear()
                self._low.clear()
                pause = self._paused_until - time.monotonic()
                await _first(stopping, self.wake, self._low, seconds=min(pause, 1.0) if pause > 0 else 1.0)
        finally:
            self._give_back()
            await self._queue.join()  # the sends in flight end (each is recorded)
            for task in senders:
                task.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
            await self.sender.close()

    def _paused(self) -> bool:
        return time.monotonic() < self._paused_until

    def _give_back(self) -> None:
        """Letters claimed but not started go back to the table, due at once (or when the pause ends)."""
        ids = []
        while not self._queue.empty():
            ids.append(self._queue.get_nowait().id)
            self._queue.task_done()
        if ids:
            self.letters.release(self.name, ids, self._pause_ends())

    async def _send_queued(self) -> None:
        while True:
            claimed = await self._queue.get()
            if self._queue.qsize() < self.config.concurrency:
                self._low.set()
            try:
                if self._paused():
                    self.letters.release(self.name, [claimed.id], self._pause_ends())
                else:
                    await self._send(claimed)
            except Exception:  # one letter's bug must not stop the others; it is retried later
                log.exception("letter %s failed unexpectedly", claimed.id)
                self.letters.deferred(self.name, claimed.id, "unexpected error (see the log)", self._later(claimed))
            finally:
                self._queue.task_done()

    # -- one letter ------------------------------------------------------------------------------------------
    async def _send(self, claimed: Claimed) -> None:
        wanted = SubscriberState.PENDING if claimed.kind is LetterKind.CONFIRM else SubscriberState.CONFIRMED
        if claimed.address is None or claimed.subscriber_state is not wanted:
            self.letters.skipped(self.name, claimed.id, f"the subscriber is {claimed.subscriber_state or 'gone'}")
            self.tally.skipped += 1
            return
        data = await self._letter(claimed)
        if data is None:
            self.letters.skipped(self.name, claimed.id, "the digest is no longer stored")
            self.tally.skipped += 1
            return
        try:
            await self.sender.send(data, self.config.verp(claimed.key), claimed.address)
        except RecipientRefusedError as error:
            self.letters.refused(self.name, claimed.id, str(error))
            self.subscribers.bounced(claimed.key, error.hard, self.config.soft_bounce_limit)
            self.tally.refused += 1
            return
        except DeferredError as error:
            self._deferred_run += 1
            self.tally.deferred += 1
            dead = claimed.attempts >= self.config.attempts
            self.letters.deferred(self.name, claimed.id, str(error), self._later(claimed), dead=dead)
            if self._deferred_run >= self.config.deferred_run_limit:
                self._pause(f"{self._deferred_run} emails in a row were deferred (the last: {error})")
            return
        except SendingStoppedError as error:
            self.letters.release(self.name, [claimed.id], self._pause(str(error)))
            return
        # Recorded before anything else can run: a crash from here on cannot resend this letter.
        self.letters.sent(self.name, claimed.id)
        self.tally.sent += 1
        self._deferred_run = 0
        if self._noticed:
            self._noticed = False
            self.state.resolve_notices(PAUSED_NOTICE)

    def _later(self, claimed: Claimed) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=min(60.0 * 2 ** max(claimed.attempts - 1, 0), 3600.0))

    def _pause(self, reason: str) -> datetime:
        """Stop sending for ``pause_seconds`` and tell the operator; returns when sending resumes."""
        if not self._paused():
            self._paused_until = time.monotonic() + self.config.pause_seconds
            self.tally.pauses += 1
            self.tally.reasons.append(reason)
            log.error("email sending paused for %gs: %s", self.config.pause_seconds, reason)
            self._noticed = True
            self.state.raise_notice(
                PAUSED_NOTICE, f"Email sending is paused ({reason}); it tries again in {self.config.pause_seconds:g} s."
            )
            self._give_back()
        return self._pause_ends()

    def _pause_ends(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=max(0.0, self._paused_until - time.monotonic()))

    async def _letter(self, claimed: Claimed) -> bytes | None:
        assert claimed.address is not None
        recipient = recipient_for(claimed.address, claimed.key, claimed.cadence, self.config, self.tokens, self.site)
        now = datetime.now(UTC)
        sender = sender_of(self.config)
        if claimed.kind is LetterKind.CONFIRM:
            link = self.site.absolute(f"/email/confirm/{self.tokens.make('confirm', claimed.key)}")
            message = confirmation_email(sender, claimed.address, link, claimed.cadence, now, claimed.key)
            return message.as_bytes(policy=SMTP_POLICY)
        if claimed.kind is LetterKind.WELCOME:
            return welcome_email(sender, recipient, self.site.absolute("/archive"), now).as_bytes(policy=SMTP_POLICY)
        template = await self._template(claimed.message_id, claimed.cadence)
        if template is None:
            return None
        if template.fits(recipient):
            return template.letter(recipient)
        digest = await asyncio.to_thread(self.store.message, claimed.message_id)
        assert digest is not None
        chart = await asyncio.to_thread(self.archive.chart, digest.id, "bump")
        letter = digest_letter(
            digest, recipient, self.config, self.site, now, (chart.png, chart.alt) if chart else None
        )
        return letter.message.as_bytes(policy=SMTP_POLICY)

    async def _template(self, message_id: str, cadence: str) -> LetterTemplate | None:
        """The digest rendered once for every subscriber of ``cadence`` (the last few kept)."""
        key = (message_id, cadence)
        async with self._building:
            if key not in self._templates:
                digest = await asyncio.to_thread(self.store.message, message_id)
                if digest is None:
                    return None
                chart = await asyncio.to_thread(self.archive.chart, digest.id, "bump")
                self._templates[key] = await asyncio.to_thread(
                    letter_template,
                    json.loads(digest.full["json"]),
                    digest.full["text"],
                    sender_of(self.config),
                    self.site.absolute(self.site.archive_url(digest.id)),
                    datetime.now(UTC),
                    cadence,
                    (chart.png, chart.alt) if chart else None,
                )
                while len(self._templates) > TEMPLATES_KEPT:
                    self._templates.pop(next(iter(self._templates)))
            return self._templates[key]


async def _first(*events: asyncio.Event, seconds: float) -> None:
    """Until one of ``events`` is set, or ``seconds``."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, timeout=max(seconds, 0.01), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()


def site_of(settings: Settings) -> Site:
    return Site(settings.web.title, settings.web.description, settings.web.public_url.rstrip("/"))


def newsletter_parts(
    settings: Settings, environ: Mapping[str, str], store: DeliveryStore, name: str
) -> tuple[LetterWorker, dict[str, Any]]:
    """What ``rankbot run`` adds when ``[email] enabled`` (its secret checked at start): the newsletter's
    destinations synced, the letter worker, and the outbox's publisher for them."""
    engine = store.engine
    config = settings.email
    secret = config.secret(environ)
    assert secret is not None, "checked by Settings.start_problems"
    store.sync_destinations(newsletter_destinations(settings), origin=ORIGIN)
    letters = Letters(engine)
    parts = (letters, Subscribers(engine), store, ServiceState(engine))
    worker = LetterWorker(parts, MailSender(config, environ), config, Tokens(secret), site_of(settings), name)

    def publisher(destination: Destination, environ: Mapping[str, str]) -> NewsletterPublisher:
        return NewsletterPublisher(letters, str(destination.target["cadence"]), worker.wake, config.timeout_seconds)

    return worker, {"email": publisher}
