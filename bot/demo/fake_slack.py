"""A fake Slack Web API on 127.0.0.1 for the tests and benchmarks: it records what it receives and answers as Slack
would, and can be scripted to fail.

- ``/api/<method>`` (form or JSON bodies, ``Authorization: Bearer``): ``auth.test``, ``chat.postMessage``,
  ``conversations.history`` (with message ``metadata``), ``users.info``, ``files.getUploadURLExternal`` and
  ``files.completeUploadExternal`` (with the upload itself at ``/upload/<id>``), ``oauth.v2.access``,
  ``apps.connections.open`` (the URL of a ``FakeSocketMode``).
- Scripted answers per method: ``ok: false`` errors, 429 with ``Retry-After``, 5xx, HTML pages.
- An optional rate limit per channel (``per_channel_interval``): posts faster than that are answered 429.
- ``/response/<id>``: a response_url that records what a slash command answered later.
Point slack_sdk's clients at ``api_url`` (it ends with a slash, as slack_sdk wants).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from bot.demo.server import LoopbackServer


@dataclass(frozen=True)
class Answer:
    """A scripted answer for the next call of a method, instead of the normal one."""

    status: int = 200
    body: Any = None
    """A dict (sent as JSON) or a str (sent as is, e.g. an HTML page)."""
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Posted:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    metadata: dict[str, Any] | None
    token: str
    at: float


class FakeSlack:
    def __init__(
        self,
        token: str = "xoxb-test",  # noqa: S107 - the fake's own token, on 127.0.0.1
        team: str = "T0TEAM",
        per_channel_interval: float = 0.0,
        admins: tuple[str, ...] = ("UADMIN",),
    ) -> None:
        self.token = token
        self.team = team
        self.per_channel_interval = per_channel_interval
        self.admins = admins
        self.posted: list[Posted] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.uploads: dict[str, bytes] = {}
        self.responses: list[tuple[str, dict[str, Any]]] = []
        self.rate_limited = 0
        self.oauth_codes: dict[str, dict[str, Any]] = {}
        self.socket_url = ""
        """What ``apps.connections.open`` answers (a ``FakeSocketMode``'s URL) for an ``xapp-`` token."""
        self.socket_opens = 0
        self._scripts: dict[str, deque[Answer]] = {}
        self._last_post: dict[str, float] = {}
        self._ts = itertools.count(1)
        self._lock = threading.Lock()
        self._server = LoopbackServer(_handler_for(self), "fake-slack")

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/"

    def response_url(self, name: str) -> str:
        return f"{self.url}/response/{name}"

    def __enter__(self) -> FakeSlack:
        self._server.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.stop()

    def script(self, method: str, *answers: Answer) -> None:
        with self._lock:
            self._scripts.setdefault(method, deque()).extend(answers)

    def in_channel(self, channel: str) -> list[Posted]:
        with self._lock:
            return [p for p in self.posted if p.channel == channel]

    # -- answers ------------------------------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any], token: str) -> tuple[int, Any, dict[str, str]]:
        with self._lock:
            self.calls.append((method, params))
            scripted = self._scripts.get(method)
            answer = scripted.popleft() if scripted else None
        if answer is not None:
            return answer.status, answer.body, answer.headers
        if method == "oauth.v2.access":
            return 200, self._oauth(params), {}
        if method == "apps.connections.open":
            with self._lock:
                self.socket_opens += 1
            if not token.startswith("xapp-") or not self.socket_url:
                return 200, {"ok": False, "error": "invalid_auth"}, {}
            return 200, {"ok": True, "url": self.socket_url}, {}
        if token != self.token and not token.startswith("xoxb-installed-"):
            return 200, {"ok": False, "error": "invalid_auth"}, {}
        handler = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._post,
            "conversations.history": self._history,
            "users.info": self._user,
            "files.getUploadURLExternal": self._upload_url,
            "files.completeUploadExternal": self._complete_upload,
        }.get(method)
        if handler is None:
            return 200, {"ok": False, "error": "unknown_method"}, {}
        return handler(params, token)

    def _auth_test(self, params: dict[str, Any], token: str) -> tuple[int, Any, dict[str, str]]:
        body = {"ok": True, "url": "https://fake.slack.com/", "team": "Fake", "user": "rankbot", "team_id": self.team,
                "user_id": "UBOT", "bot_id": "BBOT", "is_enterprise_install": False}  # fmt: skip
        return 200, body, {}

    def _post(self, params: dict[str, Any], token: str) -> tuple[int, Any, dict[str, str]]:
        channel = str(params.get("channel", ""))
        now = time.monotonic()
        with self._lock:
            last = self._last_post.get(channel)
            if self.per_channel_interval and last is not None and now - last < self.per_channel_interval:
                self.rate_limited += 1
                return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}
            self._last_post[channel] = now
            ts = f"{1_790_000_000 + next(self._ts)}.000100"
            blocks = params.get("blocks") or []
            if isinstance(blocks, str):
                blocks = json.loads(blocks)
            metadata = params.get("metadata")
            if isinstance(metadata, str):
                metadata = json.loads(metadata)
            self.posted.append(
                Posted(channel, ts, str(params.get("text", "")), blocks, params.get("thread_ts"), metadata, token, now)
            )
        return 200, {"ok": True, "channel": channel, "ts": ts, "message": {"ts": ts, "text": params.get("text")}}, {}

    def _history(self, params: dict[str, Any], token: str) -> tuple[int, Any, dict[str, str]]:
        channel = str(params.get("channel", ""))
        limit = int(params.get("limit", 100))
        with self._lock:
            found = [p for p in reversed(self.posted) if p.channel == channel][:limit]
        messages = [
            {"type": "message", "ts": p.ts, "text": p.text, **({"metadata": p.metadata} if p.metadata else {})}
            for p in found
        ]
        return 200, {"ok": True, "messages": messages, "has_more": False}, {}

    def _user(self, params: dict[str, Any], token: str) -> tuple[int, Any, dict[str, str]]:
        user = str(params.get("user", ""))
        admin = user in self.admins
        body = {"ok": True, "user": {"id": user, "name": user.lower(), "is_admin": admin, "is_owner": False}}
        return 200, body, {}

    def _upload_url(self, params: dict[str, Any], token: str) -> tuple[int, Any, dict[str, str]]:
        file_id = f"F{next(self._ts):06d}"
        return 200, {"ok": True, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}, {}

    def _complete_upload(self, params: dict[str, Any], token: str) -> tuple[int, Any, dict[str, str]]:
        files = params.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        channel = params.get("channel_id") or params.get("channels")
        with self._lock:
            self.posted.append(Posted(str(channel), f"{1_790_000_000 + next(self._ts)}.000200", "file upload",
                                      [], params.get("thread_ts"), None, token, time.monotonic()))  # fmt: skip
        return 200, {"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in files or []]}, {}

    def _oauth(self, params: dict[str, Any]) -> dict[str, Any]:
        code = str(params.get("code", ""))
        installed = self.oauth_codes.get(code)
        if installed is None:
            return {"ok": False, "error": "invalid_code"}
        return {"ok": True, **installed}


def _handler_for(fake: FakeSlack) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: tests read what the fake recorded."""

        def _answer(self, status: int, body: Any, headers: dict[str, str]) -> None:
            if isinstance(body, str):
                data, content_type = body.encode(), "text/html; charset=utf-8"
            else:
                data, content_type = json.dumps(body if body is not None else {"ok": True}).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", content_type))
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if parts.path.startswith("/upload/"):
                with fake._lock:
                    fake.uploads[parts.path.removeprefix("/upload/")] = body
                self._answer(200, "OK - uploaded", {"Content-Type": "text/plain"})
                return
            if parts.path.startswith("/response/"):
                with fake._lock:
                    fake.responses.append((parts.path.removeprefix("/response/"), json.loads(body or b"{}")))
                self._answer(200, "ok", {"Content-Type": "text/plain"})
                return
            if not parts.path.startswith("/api/"):
                self._answer(404, {"ok": False, "error": "not_found"}, {})
                return
            if "json" in self.headers.get("Content-Type", ""):
                params = json.loads(body or b"{}")
            else:
                params = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
            params.update({k: v[-1] for k, v in parse_qs(parts.query).items()})
            bearer = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
            token = bearer or str(params.get("token", ""))
            status, answer, headers = fake.call(parts.path.removeprefix("/api/"), params, token)
            self._answer(status, answer, dict(headers))

        def do_GET(self) -> None:
            self.do_POST()

    return Handler
