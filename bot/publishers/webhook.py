"""The generic JSON webhook: POST each message as JSON to a URL, so any other system can be fed.

Every try of one delivery carries the same ``Idempotency-Key`` header, so a receiver can drop repeats. With
``secret_env`` set, each request is signed: ``X-Rankbot-Signature: sha256=<hex HMAC-SHA256 of
"<X-Rankbot-Timestamp>.<body>">``. With ``status_url`` set, the worker asks ``GET status_url?delivery_id=<key>``
whether an interrupted send arrived (200: yes, 404: no), so a crash never posts twice to such a receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import httpx

from bot.publishers.contract import (
    Delivery,
    GoneError,
    InvalidPayloadError,
    RateLimitedError,
    RetryableError,
)
from bot.sources.retry import retry_after_seconds
from digests.delivery import Destination

SCHEMA = "rankbot.delivery/v1"
MAX_BODY_BYTES = 1_000_000
USER_AGENT = "rankbot-webhook/0.1"


@lru_cache(maxsize=64)
def _document(rendered_json: str) -> Any:
    """The message's JSON document, parsed once per message rather than once per destination of a fan-out
    (read-only: the result is shared)."""
    return json.loads(rendered_json)


def webhook_body(delivery: Delivery) -> dict[str, Any]:
    """What a webhook receives: ids, the title, the text and Markdown forms and the JSON document."""
    message = delivery.message
    payloads = delivery.payloads
    return {
        "schema": SCHEMA,
        "delivery_id": delivery.key,
        "message_id": message.id,
        "kind": message.kind,
        "variant": delivery.variant.value,
        "revision": message.revision,
        "corrects": message.corrects,
        "title": message.title,
        "text": payloads["text"],
        "markdown": payloads["markdown"],
        "document": _document(payloads["json"]),
    }


def signature(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _reason(response: httpx.Response) -> str:
    snippet = response.text[:200].strip().replace("\n", " ")
    return f"HTTP {response.status_code}" + (f": {snippet}" if snippet else "")


class WebhookPublisher:
    def __init__(
        self,
        client: httpx.AsyncClient,
        url: str,
        secret: str | None = None,
        status_url: str | None = None,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.url = url
        self.secret = secret
        self.status_url = status_url
        self.timeout = timeout
        self.clock = clock

    @classmethod
    def factory(cls, client: httpx.AsyncClient) -> Callable[[Destination, Mapping[str, str]], WebhookPublisher]:
        def build(destination: Destination, environ: Mapping[str, str]) -> WebhookPublisher:
            target = destination.target
            secret_env = target.get("secret_env")
            secret = environ.get(secret_env) if secret_env else None
            if secret_env and not secret:
                raise RetryableError(
                    f"the environment variable {secret_env} (the webhook secret for {destination.name}) is not set"
                )
            return cls(
                client,
                str(target["url"]),
                secret,
                target.get("status_url"),
                float(target.get("timeout_seconds", 10.0)),
            )

        return build

    def request(self, delivery: Delivery) -> tuple[bytes, dict[str, str]]:
        """The body and headers of the POST for ``delivery``."""
        body = json.dumps(webhook_body(delivery), ensure_ascii=False).encode()
        if len(body) > MAX_BODY_BYTES:
            raise InvalidPayloadError(f"the message is {len(body)} bytes; webhooks take at most {MAX_BODY_BYTES}")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "Idempotency-Key": delivery.key,
        }
        if self.secret:
            timestamp = str(int(self.clock()))
            headers["X-Rankbot-Timestamp"] = timestamp
            headers["X-Rankbot-Signature"] = signature(self.secret, timestamp, body)
        return body, headers

    async def send(self, delivery: Delivery) -> str | None:
        body, headers = self.request(delivery)
        try:
            response = await self.client.post(self.url, content=body, headers=headers, timeout=self.timeout)
        except httpx.TransportError as error:
            raise RetryableError(f"webhook unreachable: {type(error).__name__}: {error}") from error
        status = response.status_code
        if 200 <= status < 300:
            return response.headers.get("X-Request-Id") or delivery.key
        if status == 429:
            raise RateLimitedError(_reason(response), retry_after_seconds(response.headers.get("Retry-After")))
        if status in (408, 425) or status >= 500:
            raise RetryableError(_reason(response))
        if status in (401, 403, 404, 410):
            raise GoneError(f"the webhook refused us for good ({_reason(response)}); fix its URL or secret")
        raise InvalidPayloadError(f"the webhook rejected the message ({_reason(response)})")

    async def was_delivered(self, delivery: Delivery) -> bool | None:
        if not self.status_url:
            return None
        try:
            response = await self.client.get(
                self.status_url, params={"delivery_id": delivery.key}, timeout=self.timeout
            )
        except httpx.TransportError:
            return None
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        return None
