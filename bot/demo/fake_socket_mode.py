"""A fake of Slack's Socket Mode on 127.0.0.1 (aiohttp): a WebSocket that says ``hello``, then carries the
envelopes a test sends (``slash_commands``, ``interactive``, ``events_api``) and records the acknowledgements that
come back by ``envelope_id``. ``drop()`` closes the connection as Slack does on a refresh; the client must open a
new one. Point ``FakeSlack.socket_url`` at ``url`` so ``apps.connections.open`` hands it out.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

from aiohttp import WSMsgType, web

from bot.demo.loopback import serve_on_loopback


class FakeSocketMode:
    def __init__(self) -> None:
        self.acks: dict[str, dict[str, Any]] = {}
        self.connections = 0
        self._sockets: list[web.WebSocketResponse] = []
        self._acked = asyncio.Condition()
        self._connected = asyncio.Condition()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> FakeSocketMode:
        app = web.Application()
        app.router.add_get("/link", self._socket)
        self._runner, port = await serve_on_loopback(app)
        self.url = f"ws://127.0.0.1:{port}/link"
        return self

    async def __aexit__(self, *_: object) -> None:
        for socket in list(self._sockets):
            await socket.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_str(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}}))
        async with self._connected:
            self.connections += 1
            self._connected.notify_all()
        async for message in socket:
            if message.type is not WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "envelope_id" in data:
                async with self._acked:
                    self.acks[data["envelope_id"]] = data
                    self._acked.notify_all()
        if socket in self._sockets:
            self._sockets.remove(socket)
        return socket

    async def connected(self, count: int = 1) -> None:
        """Wait until ``count`` connections have been opened in all (callers bound it with ``asyncio.timeout``)."""
        async with self._connected:
            await self._connected.wait_for(lambda: self.connections >= count)

    async def send(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send an envelope on the open connection; returns its acknowledgement."""
        envelope_id = f"env-{next(self._ids)}"
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload, "accepts_response_payload": True}
        await self._sockets[-1].send_str(json.dumps(envelope))
        async with self._acked:
            await self._acked.wait_for(lambda: envelope_id in self.acks)
        return self.acks[envelope_id]

    async def drop(self) -> None:
        """Close every connection (as Slack does when it moves a socket)."""
        for socket in list(self._sockets):
            await socket.close()
        self._sockets.clear()
