"""The newsletter's pages on the web app: the confirm link (one click confirms, no second page) and the unsubscribe
link, which is also the RFC 8058 one-click endpoint (``List-Unsubscribe-Post``): a ``POST`` suppresses the address
before the answer, 200 and no redirect, no cookie needed, harmless when repeated; a ``GET`` shows a button and
changes nothing (a link scanner that follows it unsubscribes no one). A token that does not read is a 404 that
says nothing about why."""

from __future__ import annotations

import asyncio
import hmac
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import timedelta
from urllib.parse import parse_qs

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.config import Settings
from bot.config_email import EmailConfig
from bot.email.addresses import AddressError, checked_address
from bot.email.tokens import Tokens
from bot.web.security import Origin
from digests.render.html import Site, render_email_page, render_email_preferences, render_email_subscribe
from digests.subscribers import CADENCES, LEFT, SubscriberState
from storage.letters import LetterKind, Letters
from storage.subscribers import Subscribers

NOT_A_LINK = "This link does not work."
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


def email_pages(
    settings: Settings, environ: Mapping[str, str], engine: Engine, wake: Callable[[], None] | None = None
) -> EmailPages | None:
    """The newsletter's pages when ``[email] enabled`` (its secrets were checked at start); ``wake`` tells the
    letter worker a confirmation is waiting."""
    email = settings.email
    if not email.enabled:
        return None
    secret = email.secret(environ)
    assert secret is not None  # checked at start (Settings.start_problems)
    hook = email.bounce_webhook_secret_env
    bounce_secret = environ.get(hook) if hook else None
    origin = Origin(settings.web.public_url, settings.web.trusted_proxies)
    return EmailPages(Subscribers(engine), Tokens(secret), email, bounce_secret, Letters(engine), wake, origin)


FORM_LIMIT = 4096
"""The largest subscribe form read (an address is at most 254 characters)."""


class RateLimit:
    """At most ``limit`` events per key in any ``seconds`` (a sliding window), in this process's memory."""

    def __init__(self, limit: int, seconds: float) -> None:
        self.limit = limit
        self.seconds = seconds
        self._seen: dict[str, deque[float]] = {}

    def allow(self, key: str, now: float) -> bool:
        if len(self._seen) > 10_000:  # forget idle keys now and then, not on every request
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.seconds}
        times = self._seen.setdefault(key, deque())
        while times and times[0] <= now - self.seconds:
            times.popleft()
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


BOUNCE_LIMIT = 1024 * 1024
"""The largest bounce the webhook reads (a DSN with the original message attached is far smaller)."""


class EmailPages:
    def __init__(
        self,
        subscribers: Subscribers,
        tokens: Tokens,
        config: EmailConfig,
        bounce_secret: str | None = None,
        letters: Letters | None = None,
        wake: Callable[[], None] | None = None,
        origin: Origin | None = None,
    ) -> None:
        self.subscribers = subscribers
        self.tokens = tokens
        self.config = config
        self.bounce_secret = bounce_secret
        """``POST /email/bounce`` is served only with this secret (``[email] bounce_webhook_secret_env``)."""
        self.letters = letters or Letters(subscribers.engine, subscribers.now)
        self.wake = wake or (lambda: None)
        self.origin = origin or Origin("", [])
        self.per_ip = RateLimit(config.subscribe_per_ip_per_hour, 3600.0)

    def routes(self, site: Callable[[Request], Site]) -> list[Route]:
        self.site = site
        return [
            Route("/email/subscribe", self.subscribe, methods=["GET", "POST"]),
            Route("/email/confirm/{token}", self.confirm, methods=["GET"]),
            Route("/email/unsubscribe/{token}", self.unsubscribe, methods=["GET", "POST"]),
            Route("/email/preferences/{token}", self.preferences, methods=["GET", "POST"]),
            *([Route("/email/bounce", self.bounce, methods=["POST"])] if self.bounce_secret else []),
        ]

    def _page(self, request: Request, status: int, title: str, *lines: str, action: str | None = None,
              button: str = "") -> Response:  # fmt: skip
        html = render_email_page(self.site(request), title, lines, action, button)
        return HTMLResponse(html, status_code=status, headers=NO_STORE)

    async def subscribe(self, request: Request) -> Response:
        """The form, and what it posts: a confirmation email to a new (or returning) address. The answer is the
        same whether the address was new, pending or already subscribed, and only a new or returning address is
        emailed, at most ``confirmations_per_address_per_day``; a filled-in honeypot gets the same answer and
        nothing else."""
        action = request.url.path
        site = self.site(request)
        if request.method == "GET":
            return HTMLResponse(render_email_subscribe(site, action), headers=NO_STORE)
        declared = request.headers.get("content-length", "")
        if not declared.isdigit() or int(declared) > FORM_LIMIT:
            return self._page(request, 413, "Not sent", "The form was too large.")
        if not self.per_ip.allow(self.origin.client_ip(request), time.monotonic()):
            wait = "Too many subscriptions from your network in the last hour: try again later."
            return self._page(request, 429, "Too many tries", wait)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        given = (form.get("address") or [""])[0]
        cadence = (form.get("cadence") or ["weekly"])[0]
        if cadence not in CADENCES:
            cadence = "weekly"
        try:
            address = checked_address(given, self.config.check_mx)
        except AddressError as error:
            html = render_email_subscribe(site, action, given[:254], cadence, f"That address does not work: {error}")
            return HTMLResponse(html, status_code=400, headers=NO_STORE)
        robot = bool((form.get("website") or [""])[0])  # robots fill in the field people cannot see
        if not robot and await asyncio.to_thread(self._asked, address, cadence, self.origin.client_ip(request)):
            self.wake()
        return self._page(request, 200, "Check your inbox",
                          f"If {address} can subscribe, an email with a confirmation link is on its way to it.",
                          "Nothing is sent until the link is followed; it works for "
                          f"{self.config.confirm_hours:g} hours.")  # fmt: skip

    def _asked(self, address: str, cadence: str, ip: str) -> bool:
        """Store the request; email a confirmation only to an address that is new, returning after it left, or
        whose last confirmation link has expired — and to none more than ``confirmations_per_address_per_day``.
        Whether one was queued."""
        added = self.subscribers.add(address, cadence, ip=ip)
        subscriber = added.subscriber
        if subscriber.state is not SubscriberState.PENDING:
            return False  # subscribed already: nothing new is sent (and the page says the same)
        now = self.letters.now()
        confirm = LetterKind.CONFIRM
        alive = self.letters.recent(subscriber.key, confirm, now - timedelta(hours=self.config.confirm_hours))
        today = self.letters.recent(subscriber.key, confirm, now - timedelta(days=1))
        if (alive and not added.returned) or today >= self.config.confirmations_per_address_per_day:
            return False
        return self.letters.queue_confirmation(subscriber.key)

    async def confirm(self, request: Request) -> Response:
        token = request.path_params["token"]
        key = self.tokens.read("confirm", token, self.config.confirm_hours * 3600)
        if key is None:
            if self.tokens.expired("confirm", token, self.config.confirm_hours * 3600):
                return self._page(request, 410, "This link has expired",
                                  f"Confirmation links work for {self.config.confirm_hours:g} hours. Subscribe again "
                                  "from the site and confirm with the new link.")  # fmt: skip
            return self._page(request, 404, "Not found", NOT_A_LINK)
        subscriber = await asyncio.to_thread(self.subscribers.confirm, key, self.origin.client_ip(request) or None)
        if subscriber is None:
            return self._page(request, 404, "Not found", NOT_A_LINK)
        if subscriber.state is not SubscriberState.CONFIRMED:
            return self._page(request, 200, "Not subscribed",
                              f"{subscriber.address} left the list since this link was sent: subscribe again to "
                              "come back.")  # fmt: skip
        if subscriber.confirmed_at is not None:  # a replayed link finds it queued already: nothing more
            stamp = subscriber.confirmed_at.isoformat(timespec="microseconds")
            if await asyncio.to_thread(self.letters.queue, f"welcome:{stamp}", key, LetterKind.WELCOME):
                self.wake()
        what = "the weekly digest" if subscriber.cadence == "weekly" else "the daily alerts"
        return self._page(request, 200, "Subscribed", f"{subscriber.address} gets {what} from now on.",
                          "Every email has a link to change that or to leave.")  # fmt: skip

    async def unsubscribe(self, request: Request) -> Response:
        key = self.tokens.read("unsubscribe", request.path_params["token"])
        subscriber = await asyncio.to_thread(self.subscribers.by_key, key) if key is not None else None
        if key is None or subscriber is None:
            return self._page(request, 404, "Not found", NOT_A_LINK)
        if request.method == "GET":
            if subscriber.state in LEFT:
                return self._page(request, 200, "Unsubscribed", f"{subscriber.address} gets nothing more.")
            return self._page(request, 200, "Unsubscribe?", f"Stop every email to {subscriber.address}?",
                              action=request.url.path, button="Unsubscribe")  # fmt: skip
        await request.body()  # "List-Unsubscribe=One-Click", urlencoded or multipart: any POST here is the click
        if subscriber.state not in LEFT:
            await asyncio.to_thread(self.subscribers.set_state, key, SubscriberState.UNSUBSCRIBED)
        return self._page(request, 200, "Unsubscribed", f"{subscriber.address} gets nothing more.",
                          "Changed your mind? Subscribe again from the site (and confirm again).")  # fmt: skip

    async def preferences(self, request: Request) -> Response:
        """The cadence (weekly or daily) and a link to unsubscribe; a POST saves the cadence chosen."""
        key = self.tokens.read("preferences", request.path_params["token"])
        subscriber = await asyncio.to_thread(self.subscribers.by_key, key) if key is not None else None
        if key is None or subscriber is None or subscriber.state in LEFT:
            return self._page(request, 404, "Not found", NOT_A_LINK)
        saved = ""
        cadence = subscriber.cadence
        if request.method == "POST":
            form = parse_qs((await request.body()).decode("utf-8", "replace"))  # the page's form is urlencoded
            chosen = (form.get("cadence") or [""])[0]
            if chosen not in CADENCES:
                return self._page(request, 400, "Not saved", "Choose the weekly digest or the daily alerts.",
                                  action=None)  # fmt: skip
            await asyncio.to_thread(self.subscribers.set_cadence, key, chosen)
            cadence, saved = chosen, "Saved."
        unsubscribe = self.site(request).url(f"/email/unsubscribe/{self.tokens.make('unsubscribe', key)}")
        html = render_email_preferences(self.site(request), subscriber.address, cadence, request.url.path,
                                        unsubscribe, saved)  # fmt: skip
        return HTMLResponse(html, headers=NO_STORE)

    async def bounce(self, request: Request) -> Response:
        """A provider's bounce or complaint, the raw message as the body: 401 without the right bearer secret,
        413 over ``BOUNCE_LIMIT``; otherwise 200 with what was done, one line per subscriber."""
        from bot.email.bounces import applied, read_bounce

        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        wanted = self.bounce_secret or ""
        if scheme.lower() != "bearer" or not wanted or not hmac.compare_digest(given.strip().encode(), wanted.encode()):
            return PlainTextResponse("Bearer secret missing or wrong.\n", status_code=401)
        declared = request.headers.get("content-length", "0")
        if not declared.isdigit() or int(declared) > BOUNCE_LIMIT:
            return PlainTextResponse("Send the message with its Content-Length, at most 1 MB.\n", status_code=413)
        found = read_bounce(await request.body(), self.config.bounce_local)
        if found is None:
            return PlainTextResponse("not a bounce or a complaint: nothing done\n")
        said = await asyncio.to_thread(applied, found, self.subscribers, self.config.soft_bounce_limit)
        return PlainTextResponse("\n".join(said) + "\n")
