"""A webhook receiver on 127.0.0.1 for the demo, the tests and the benchmarks: it records every POST, can answer
scripted statuses (429 with ``Retry-After``, 500, 404...), can be slow, checks HMAC signatures when given the
secret, and offers the delivery check rankbot's webhook publisher uses (``GET /status/<name>?delivery_id=``).

Each destination posts to ``/hook/<name>``. A delivery counts when its whole body has been read.
"""

from __future__ import annotations

import hmac
import json
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.demo.server import LoopbackServer
from bot.publishers.webhook import signature


@dataclass(frozen=True)
class Received:
    name: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def delivery_id(self) -> str:
        return str(self.body.get("delivery_id"))


@dataclass(frozen=True)
class Scripted:
    """An answer to give instead of 200, once."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: str = ""


class FakeWebhook:
    def __init__(
        self,
        secret: str | None = None,
        delay: tuple[float, float] = (0.0, 0.0),
        seed: int = 1,
    ) -> None:
        self.secret = secret
        self.delay = delay
        self.received: list[Received] = []
        self.rejected: list[str] = []
        self._scripts: dict[str, deque[Scripted]] = {}
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._server = LoopbackServer(_handler_for(self), "fake-webhook")

    @property
    def url(self) -> str:
        return self._server.url

    def hook_url(self, name: str) -> str:
        return f"{self.url}/hook/{name}"

    def status_url(self, name: str) -> str:
        return f"{self.url}/status/{name}"

    def __enter__(self) -> FakeWebhook:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()

    def script(self, name: str, *answers: Scripted) -> None:
        """Answer the next POSTs to ``name`` with ``answers``, in order, then 200 again."""
        with self._lock:
            self._scripts.setdefault(name, deque()).extend(answers)

    def copies(self) -> Counter[tuple[str, str]]:
        """How many times each (destination name, delivery id) arrived."""
        with self._lock:
            return Counter((r.name, r.delivery_id) for r in self.received)

    def to(self, name: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.name == name]

    # -- handling -------------------------------------------------------------------------------------------
    def _next_script(self, name: str) -> Scripted | None:
        with self._lock:
            queue = self._scripts.get(name)
            return queue.popleft() if queue else None

    def _signed(self, headers: dict[str, str], body: bytes) -> bool:
        if self.secret is None:
            return True
        timestamp = headers.get("X-Rankbot-Timestamp", "")
        expected = signature(self.secret, timestamp, body)
        return hmac.compare_digest(expected, headers.get("X-Rankbot-Signature", ""))

    def post(self, name: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], str]:
        low, high = self.delay
        if high > 0:
            with self._lock:
                pause = self._rng.uniform(low, high)
            time.sleep(pause)
        scripted = self._next_script(name)
        if scripted is not None:
            return scripted.status, scripted.headers, scripted.body
        if not self._signed(headers, body):
            with self._lock:
                self.rejected.append(name)
            return 401, {}, "bad signature"
        try:
            document = json.loads(body)
        except ValueError:
            return 400, {}, "not JSON"
        with self._lock:
            self.received.append(Received(name, headers, document))
            number = len(self.received)
        return 200, {"X-Request-Id": f"req-{number}"}, "ok"

    def status(self, name: str, delivery_id: str) -> int:
        with self._lock:
            found = any(r.name == name and r.delivery_id == delivery_id for r in self.received)
        return 200 if found else 404


def _handler_for(fake: FakeWebhook) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read ``fake.received``."""

        def _answer(self, status: int, headers: dict[str, str], text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            if not parts.path.startswith("/hook/"):
                self._answer(404, {}, "no such hook")
                return
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if len(body) < length:
                return  # the sender died mid-request: nothing arrived
            status, headers, text = fake.post(parts.path.removeprefix("/hook/"), dict(self.headers.items()), body)
            self._answer(status, headers, text)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if not parts.path.startswith("/status/"):
                self._answer(404, {}, "no such page")
                return
            query = parse_qs(parts.query)
            delivery_id = query.get("delivery_id", [""])[-1]
            self._answer(fake.status(parts.path.removeprefix("/status/"), delivery_id), {}, "")

    return Handler
