"""GET with bounded retries (full-jitter backoff, ``Retry-After`` honoured) inside OpenRouter's request budget.

Retried: connect/read timeouts, connection resets, 5xx and 429. Not retried: other 4xx, and redirects (never
followed: a 3xx is an error). The budget enforces the published limits — 30 requests a minute per key and 500 a
day — counting retries too. Clock and sleep are injected so tests run fast and deterministically.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime

import httpx

from bot.sources.errors import SourceError, SourceRefusedError, SourceUnavailableError

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 5
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in ``[0, min(cap, base·2^attempt)]`` (attempt counts from 0)."""
        return rng.uniform(0, min(self.cap, self.base * 2**attempt))


@dataclass
class RequestBudget:
    """OpenRouter's published limits for one key: ``per_minute`` in any 60 s, ``per_day`` in any 24 h."""

    per_minute: int = 30
    per_day: int = 500
    clock: Clock = time.monotonic
    sleep: Sleep = asyncio.sleep
    _minute: deque[float] = field(default_factory=deque)
    _day: deque[float] = field(default_factory=deque)

    async def spend(self) -> None:
        now = self.clock()
        while self._day and now - self._day[0] >= 86_400:
            self._day.popleft()
        if len(self._day) >= self.per_day:
            raise SourceError(
                f"OpenRouter's daily limit of {self.per_day} requests is used up; try again later "
                "(or lower the poll frequency)"
            )
        while self._minute and now - self._minute[0] >= 60:
            self._minute.popleft()
        if len(self._minute) >= self.per_minute:
            await self.sleep(60 - (now - self._minute[0]))
            self._minute.popleft()
            now = self.clock()
        self._minute.append(now)
        self._day.append(now)

    def spent(self) -> list[float]:
        """When each request of the last 24 h was made (clock time), to keep between runs."""
        now = self.clock()
        return [moment for moment in self._day if now - moment < 86_400]

    def restore(self, moments: list[float]) -> None:
        """Count requests made before (by an earlier run, or another instance): ``spent()`` of that budget."""
        now = self.clock()
        recent = sorted(moment for moment in moments if 0 <= now - moment < 86_400)
        self._day = deque(recent)
        self._minute = deque(moment for moment in recent if now - moment < 60)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def _describe(error: httpx.TransportError) -> str:
    kind = type(error).__name__
    return {"ConnectTimeout": "connect timeout", "ReadTimeout": "read timeout"}.get(kind, kind)


@dataclass
class Fetcher:
    """Issues GETs through one ``httpx.AsyncClient`` with retries and the request budget."""

    client: httpx.AsyncClient
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    budget: RequestBudget = field(default_factory=RequestBudget)
    sleep: Sleep = asyncio.sleep
    rng: random.Random = field(default_factory=random.Random)

    async def get(
        self,
        url: str,
        *,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        not_found_ok: bool = False,
    ) -> httpx.Response | None:
        """The response (2xx, or 304 to a conditional request), ``None`` for a 404 when ``not_found_ok``; otherwise
        a ``SourceError``."""
        last = ""
        for attempt in range(self.policy.attempts):
            await self.budget.spend()
            wait = self.policy.delay(attempt, self.rng)
            try:
                response = await self.client.get(url, params=params, headers=headers)
            except httpx.TransportError as error:
                last = _describe(error)
            else:
                if response.is_success or (response.status_code == 304 and _conditional(headers)):
                    return response
                if response.status_code == 404 and not_found_ok:
                    return None
                if response.status_code not in RETRYABLE_STATUS:
                    raise SourceRefusedError(_refusal(url, response))
                last = f"HTTP {response.status_code}"
                after = retry_after_seconds(response.headers.get("Retry-After"))
                if after is not None:
                    wait = max(wait, after)
            if attempt + 1 < self.policy.attempts:
                await self.sleep(wait)
        raise SourceUnavailableError(
            f"OpenRouter did not answer {_path(url)} after {self.policy.attempts} tries ({last})"
        )


def _conditional(headers: dict[str, str] | None) -> bool:
    return headers is not None and any(name in headers for name in ("If-None-Match", "If-Modified-Since"))


def _path(url: str) -> str:
    return httpx.URL(url).path


def _refusal(url: str, response: httpx.Response) -> str:
    status = response.status_code
    if status in (401, 403):
        return f"OpenRouter rejected the API key (HTTP {status}) for {_path(url)}: check the key's environment variable"
    if 300 <= status < 400:
        return f"OpenRouter answered {_path(url)} with a redirect (HTTP {status}); rankbot does not follow redirects"
    try:
        message = str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.reason_phrase
    return f"OpenRouter refused {_path(url)} (HTTP {status}): {message[:200]}"
