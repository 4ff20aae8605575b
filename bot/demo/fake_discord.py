"""A fake Discord API on 127.0.0.1 (aiohttp, in a thread of its own) for the tests and benchmarks: REST under
``/api/v10`` and a gateway WebSocket, recording what it receives and answering as Discord does.

- REST: ``users/@me``, ``oauth2/applications/@me``, ``gateway/bot``; channel messages (JSON or multipart with
  files; ``nonce`` with ``enforce_nonce`` returns the message already made instead of a second one) and their
  history; webhooks (``?wait=true``, reading a message back by id); interaction callbacks and follow-ups; command
  sync (``PUT applications/…/commands``).
- Discord's limits are enforced (content 2,000; embed title 256, description 4,096, 25 fields of 256/1,024, footer
  2,048, 6,000 in all; 10 embeds): a message over them is answered 400 with code 50035, as Discord does.
- Rate limits: ``X-RateLimit-*`` headers on every answer; a per-webhook limit (``webhook_limit`` per
  ``webhook_window`` seconds) answers 429 with ``retry_after`` and ``Via`` past it.
- Scripted answers (``script``): a status with a JSON body, per route (a substring of the path), e.g. 429 with
  ``retry_after``, 502, 403 with code 50013, 404 with code 10015, 401.
- The gateway says HELLO, answers IDENTIFY with READY and RESUME with RESUMED, acknowledges heartbeats, and
  carries the dispatches a test sends (``interact``: an ``INTERACTION_CREATE``); ``drop()`` closes it.
Point ``discord.http.Route.BASE`` at ``api_url``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, WSMsgType, web

from bot.demo.discord_payloads import (
    APPLICATION_ID,
    BOT_ID,
    Sent,
    application,
    message_object,
    message_shell,
    too_long,
    user,
)
from bot.demo.loopback import serve_on_loopback


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    store: bool = False
    """Take the call as usual first, then answer this (a 502 after the message was made)."""


class FakeDiscord:
    def __init__(
        self,
        token: str = "fake-bot-token",  # noqa: S107 - the fake's own token, on 127.0.0.1
        webhook_limit: int = 5,
        webhook_window: float = 2.0,
        post_delay: float = 0.0,
    ) -> None:
        self.token = token
        self.post_delay = post_delay
        """Seconds each channel or webhook post takes (a fan-out long enough to drop the gateway in)."""
        self.webhook_limit = webhook_limit
        self.webhook_window = webhook_window
        self.messages: list[Sent] = []
        self.calls: list[tuple[str, str]] = []
        self.callbacks: list[dict[str, Any]] = []
        self.followups: list[dict[str, Any]] = []
        self.synced: list[tuple[str, list[dict[str, Any]]]] = []
        self.rejected: list[str] = []
        """Why each 400 was given (a test asserts there were none)."""
        self.rate_limited = 0
        self.identifies = 0
        self.resumes = 0
        self.webhooks: set[str] = set()
        """Webhook ids that exist (``add_webhook``); any other is a 404, as for a deleted one."""
        self._scripts: dict[str, deque[Answer]] = defaultdict(deque)
        self._webhook_posts: dict[str, deque[float]] = defaultdict(deque)
        self._ids = itertools.count(1_200_000_000_000_000_000)
        self._sockets: list[web.WebSocketResponse] = []
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-discord", daemon=True)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> FakeDiscord:
        self._thread.start()
        self._run(self._start())
        return self

    def __exit__(self, *_: object) -> None:
        self._run(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(10)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return self.url.replace("http", "ws", 1) + "/gateway"

    def webhook_url(self, webhook_id: str, token: str = "hooktoken") -> str:  # noqa: S107 - a fake's
        return f"{self.api_url}/webhooks/{webhook_id}/{token}"

    def add_webhook(self, webhook_id: str) -> str:
        self.webhooks.add(webhook_id)
        return self.webhook_url(webhook_id)

    async def _start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self._rest)
        self._runner, port = await serve_on_loopback(app)
        self.url = f"http://127.0.0.1:{port}"

    async def _stop(self) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- scripting and reading ---------------------------------------------------------------------------
    def script(self, route: str, *answers: Answer) -> None:
        """The next calls whose path contains ``route`` get ``answers`` (in order), instead of the normal ones."""
        with self._lock:
            self._scripts[route].extend(answers)

    def in_channel(self, channel_id: str) -> list[Sent]:
        with self._lock:
            return [m for m in self.messages if m.channel_id == channel_id]

    def through_webhook(self, webhook_id: str) -> list[Sent]:
        with self._lock:
            return [m for m in self.messages if m.webhook_id == webhook_id]

    # -- REST --------------------------------------------------------------------------------------------
    def _scripted(self, path: str) -> Answer | None:
        with self._lock:
            for route, answers in self._scripts.items():
                if route in path and answers:
                    return answers.popleft()
        return None

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
        base = {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4", "X-RateLimit-Reset-After": "1.0"}
        base["X-RateLimit-Bucket"] = "fake"
        # exactly "application/json", as Discord sends it (discord.py compares the header whole)
        base["Content-Type"] = "application/json"
        return web.Response(body=json.dumps(body).encode(), status=status, headers={**base, **(headers or {})})

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["path"]
        self.calls.append((request.method, path))
        scripted = self._scripted(path)
        if scripted is not None and scripted.store:
            await self._handle(request, path)
            return self._json(scripted.status, scripted.body, scripted.headers)
        if scripted is not None:
            if scripted.status == 429:
                self.rate_limited += 1
            headers = {"Via": "1.1 google", **scripted.headers} if scripted.status == 429 else scripted.headers
            return self._json(scripted.status, scripted.body, headers)
        return await self._handle(request, path)

    async def _handle(self, request: web.Request, path: str) -> web.Response:
        parts = path.strip("/").split("/")
        if parts[0] == "webhooks":
            return await self._webhook(request, parts)
        if parts[0] == "interactions":
            return await self._callback(request, parts)
        if request.headers.get("Authorization") != f"Bot {self.token}":
            return self._json(401, {"message": "401: Unauthorized", "code": 0})
        if path == "/users/@me":
            return self._json(200, user(BOT_ID, "rankbot", bot=True))
        if path == "/oauth2/applications/@me":
            return self._json(200, application())
        if path == "/gateway/bot":
            limit = {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}
            return self._json(200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit})
        if parts[0] == "channels" and len(parts) == 3 and parts[2] == "messages":
            if request.method == "POST":
                return await self._post(request, parts[1], None)
            count = int(request.query.get("limit", "50"))
            found = [message_object(m) for m in reversed(self.in_channel(parts[1]))][:count]
            return self._json(200, found)
        if parts[0] == "channels" and len(parts) == 4 and parts[2] == "messages":
            return self._read(parts[1], parts[3], None)
        if parts[0] == "applications" and parts[-1] == "commands" and request.method == "PUT":
            commands = await request.json()
            scope = parts[3] if len(parts) == 5 else "global"
            self.synced.append((scope, commands))
            return self._json(
                200,
                [{**c, "id": str(next(self._ids)), "application_id": APPLICATION_ID, "version": "1"} for c in commands],
            )
        return self._json(404, {"message": "404: Not Found", "code": 0})

    def _read(self, channel_id: str | None, message_id: str, webhook_id: str | None) -> web.Response:
        with self._lock:
            for m in self.messages:
                here = channel_id is None or m.channel_id == channel_id
                if m.id == message_id and here and (webhook_id is None or m.webhook_id == webhook_id):
                    return self._json(200, message_object(m))
        return self._json(404, {"message": "Unknown Message", "code": 10008})

    async def _body(self, request: web.Request) -> tuple[dict[str, Any], dict[str, bytes]]:
        if not request.content_type.startswith("multipart/"):
            return await request.json(), {}
        body: dict[str, Any] = {}
        files: dict[str, bytes] = {}
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name == "payload_json":
                body = json.loads(await part.text())
            else:
                files[part.filename or part.name or "file"] = await part.read()
        return body, files

    async def _post(self, request: web.Request, channel_id: str, webhook_id: str | None, **extra: Any) -> web.Response:
        body, files = await self._body(request)
        if self.post_delay:
            await asyncio.sleep(self.post_delay)
        problem = too_long(body)
        if problem is not None:
            self.rejected.append(problem)
            return self._json(400, {"message": "Invalid Form Body", "code": 50035, "errors": problem})
        nonce = body.get("nonce")
        with self._lock:
            if nonce is not None and body.get("enforce_nonce"):
                for m in self.messages:
                    if m.nonce == str(nonce) and m.channel_id == channel_id:
                        return self._json(200, message_object(m, created=True))
            sent = Sent(
                str(next(self._ids)),
                channel_id,
                body.get("content") or "",
                body.get("embeds") or [],
                body.get("attachments") or [],
                files,
                body.get("allowed_mentions"),
                str(nonce) if nonce is not None else None,
                webhook_id,
                time.monotonic(),
                body.get("components") or [],
                int(body.get("flags") or 0),
            )
            self.messages.append(sent)
        return self._json(200, message_object(sent, created=True), extra.get("headers"))

    async def _webhook(self, request: web.Request, parts: list[str]) -> web.Response:
        webhook_id = parts[1]
        if webhook_id == APPLICATION_ID:  # interaction follow-ups and edits of the original answer
            body, _ = await self._body(request)
            self.followups.append({"method": request.method, "path": "/".join(parts), **body})
            message = {"id": str(next(self._ids)), "channel_id": "0", "content": body.get("content") or ""}
            return self._json(200, {**message_shell(), **message, "embeds": body.get("embeds") or []})
        if webhook_id not in self.webhooks:
            return self._json(404, {"message": "Unknown Webhook", "code": 10015})
        if len(parts) == 5 and parts[3] == "messages":
            return self._read(None, parts[4], webhook_id)
        now = time.monotonic()
        with self._lock:
            window = self._webhook_posts[webhook_id]
            while window and now - window[0] >= self.webhook_window:
                window.popleft()
            if len(window) >= self.webhook_limit:
                self.rate_limited += 1
                retry = self.webhook_window - (now - window[0])
                headers = {"Via": "1.1 google", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": f"{retry:.3f}"}
                return self._json(
                    429, {"message": "You are being rate limited.", "retry_after": retry, "global": False}, headers
                )
            window.append(now)
            remaining = self.webhook_limit - len(window)
            reset = self.webhook_window - (now - window[0])
        headers = {"X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset-After": f"{reset:.3f}"}
        return await self._post(request, f"webhook:{webhook_id}", webhook_id, headers=headers)

    async def _callback(self, request: web.Request, parts: list[str]) -> web.Response:
        body, _ = await self._body(request)
        self.callbacks.append({"interaction": parts[1], **body})
        kind = int(body.get("type", 0))
        data = body.get("data") or {}
        interaction: dict[str, Any] = {"id": parts[1], "type": 2}
        resource: dict[str, Any] | None = None
        if kind in (4, 7):
            message = {**message_shell(), "id": str(next(self._ids)), "content": data.get("content") or ""}
            message["embeds"] = data.get("embeds") or []
            message["flags"] = data.get("flags", 0)
            resource = {"type": kind, "message": message}
            interaction["response_message_id"] = message["id"]
            interaction["response_message_ephemeral"] = bool(int(data.get("flags") or 0) & 64)
        if kind == 5:
            interaction["response_message_loading"] = True
        return self._json(200, {"interaction": interaction, **({"resource": resource} if resource else {})})

    # -- the gateway -------------------------------------------------------------------------------------
    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"op": 10, "d": {"heartbeat_interval": 45000}})
        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if data["op"] == 1:
                await socket.send_json({"op": 11})
            elif data["op"] == 2:
                self.identifies += 1
                ready = {
                    "v": 10,
                    "user": user(BOT_ID, "rankbot", bot=True),
                    "guilds": [],
                    "session_id": f"session-{self.identifies}",
                    "resume_gateway_url": self.gateway_url,
                    "application": {"id": APPLICATION_ID, "flags": 0},
                }
                await socket.send_json({"op": 0, "t": "READY", "s": next(self._seq), "d": ready})
            elif data["op"] == 6:
                self.resumes += 1
                await socket.send_json({"op": 0, "t": "RESUMED", "s": next(self._seq), "d": {}})
        if socket in self._sockets:
            self._sockets.remove(socket)
        return socket

    def connected(self) -> bool:
        return bool(self._sockets)

    def connections(self) -> int:
        """Gateway connections open now (one bot should hold one)."""
        return len(self._sockets)

    def dispatch(self, event: str, data: dict[str, Any]) -> None:
        async def send() -> None:
            await self._sockets[-1].send_json({"op": 0, "t": event, "s": next(self._seq), "d": data})

        self._run(send())

    def interact(self, payload: dict[str, Any]) -> None:
        """An ``INTERACTION_CREATE`` on the open gateway connection."""
        self.dispatch("INTERACTION_CREATE", payload)

    def drop(self) -> None:
        """Close every gateway connection (as Discord does when it moves a session)."""

        async def close() -> None:
            for socket in list(self._sockets):
                await socket.close(code=4000)
            self._sockets.clear()

        self._run(close())
