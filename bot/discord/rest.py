"""Discord's REST API through discord.py: where it is (``discord.http.Route.BASE``, from ``[discord] api_url``; the
webhooks use it too), one logged-in client per process for the publishers, and what a Discord failure means for
the outbox.

- discord.py keeps per-route rate-limit buckets for the bot and waits out a short 429 itself; one longer than
  ``HOLD_SECONDS`` is raised out of its loop (``long_waits``) and the row is rescheduled instead of holding a worker.
- 401: the token is refused. Every Discord send in this process stops (``TokenRefused``) until the service is
  restarted with a new token, and an operator notice is raised (``bot.planner.DISCORD_REFUSED``, which the
  operator checks read).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
import yarl

from bot.publishers.contract import GoneError, InvalidPayloadError, PublishError, RateLimitedError, RetryableError

log = logging.getLogger(__name__)

HOLD_SECONDS = 5.0
"""The longest rate-limit wait a worker sits through; a longer ``retry_after`` reschedules the row."""
GONE_CODES = {
    10003: "the channel does not exist (deleted?)",
    10015: "the webhook was deleted",
    50001: "the bot cannot see the channel (Missing Access): invite it or give it View Channel",
    50013: "the bot lacks a permission there (Send Messages, Embed Links, Attach Files)",
}


def point_at(api_url: str, gateway_url: str | None = None) -> None:
    """Send every REST call, the bot's and the webhooks', to ``api_url``, and the gateway connection to
    ``gateway_url`` (Discord's own unless a test says)."""
    discord.http.Route.BASE = api_url.rstrip("/")
    if gateway_url is not None:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(gateway_url)


class TokenRefused:
    """Whether Discord refused the token in this process (then nothing more is sent to it), and how to say so."""

    def __init__(self, save: Callable[[str | None], object] = lambda reason: None) -> None:
        self.reason: str | None = None
        self._save = save

    def refuse(self, reason: str) -> None:
        if self.reason is None:
            log.error("Discord refused the token: %s; every Discord send stops until a restart", reason)
        self.reason = reason
        self._save(reason)

    def check(self) -> None:
        if self.reason is not None:
            raise RetryableError(f"Discord sends are stopped: {self.reason}")


def discord_error(error: Exception, refused: TokenRefused | None = None) -> PublishError:
    """The outbox's error for what discord.py raised."""
    if isinstance(error, LongRateLimitError):
        return RateLimitedError(f"Discord rate limit ({error.retry_after:.1f} s)", error.retry_after)
    if isinstance(error, discord.LoginFailure) or (isinstance(error, discord.HTTPException) and error.status == 401):
        reason = "the bot token (or webhook token) was refused (HTTP 401): set a valid one and restart"
        if refused is not None:
            refused.refuse(reason)
        return RetryableError(f"Discord refused the token: {reason}")
    if isinstance(error, discord.HTTPException):
        code = error.code
        if code in GONE_CODES or error.status in (403, 404):
            return GoneError(f"Discord answered {error.status} (code {code}): {GONE_CODES.get(code, error.text)}")
        if error.status >= 500 or error.status == 429:
            return RetryableError(f"Discord did not take it (HTTP {error.status})")
        return InvalidPayloadError(f"Discord refused the message (HTTP {error.status}, code {code}): {error.text}")
    if isinstance(error, aiohttp.ClientError | TimeoutError | OSError):
        return RetryableError(f"Discord unreachable: {type(error).__name__}: {error}")
    return RetryableError(f"Discord send failed: {type(error).__name__}: {error}")


class LongRateLimitError(Exception):
    """A webhook 429 asking for longer than ``HOLD_SECONDS``: raised out of discord.py's own waiting loop."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.1f} s")
        self.retry_after = retry_after


async def _long_waits(session: aiohttp.ClientSession, context: Any, params: aiohttp.TraceRequestEndParams) -> None:
    response = params.response
    if response.status == 429:
        header = response.headers.get("Retry-After") or response.headers.get("X-RateLimit-Reset-After") or "0"
        try:
            wait = float(header)
        except ValueError:
            wait = 0.0
        if wait > HOLD_SECONDS:
            raise LongRateLimitError(wait)


def long_waits() -> aiohttp.TraceConfig:
    """A trace on every Discord request: a 429 asking for longer than ``HOLD_SECONDS`` leaves discord.py's retry
    loop (which would sleep it out in the worker; its own ``max_ratelimit_timeout`` cannot go below 30 s) as
    ``LongRateLimitError``, and the outbox reschedules the row."""
    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(_long_waits)
    return trace


def webhook_session() -> aiohttp.ClientSession:
    """The session the webhooks post through (with ``long_waits``)."""
    return aiohttp.ClientSession(trace_configs=[long_waits()], timeout=aiohttp.ClientTimeout(total=30))


class RestClient:
    """One discord.py client per process for posting (logged in on first use; no gateway), and the webhooks' session."""

    def __init__(self, token: str | None, refused: TokenRefused) -> None:
        self.token = token
        self.refused = refused
        self._client: discord.Client | None = None
        self._session: aiohttp.ClientSession | None = None
        self._login = asyncio.Lock()

    def webhooks(self) -> aiohttp.ClientSession:
        """The session webhooks post through (``webhook_session``), shared by every webhook destination."""
        if self._session is None or self._session.closed:
            self._session = webhook_session()
        return self._session

    async def client(self) -> discord.Client:
        self.refused.check()
        if self.token is None:
            raise RetryableError("no Discord bot token: set the variable [discord] token_env names")
        async with self._login:
            self.refused.check()  # a send that waited for a login that was refused
            if self._client is None:
                client = discord.Client(intents=discord.Intents.none(), http_trace=long_waits())
                try:
                    await client.login(self.token)
                except Exception as error:
                    await client.close()
                    raise discord_error(error, self.refused) from None
                self._client = client
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._session is not None:
            await self._session.close()
            self._session = None
