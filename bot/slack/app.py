"""The Slack app: bolt's ``AsyncApp`` with ``/rankings``, the "Share to channel" button and the uninstall events,
served over HTTP (``POST /slack/events`` in the web app, with ``GET /slack/install`` and ``/slack/oauth_redirect``
when OAuth is configured) or over Socket Mode; the same handlers either way.

- Signatures: every ``POST /slack/events`` is checked with slack_sdk's ``SignatureVerifier`` over the raw body
  before bolt sees it; anything unsigned, tampered with, or outside ±5 minutes is a 401 (never a 500).
- Acknowledging: an answer ready within ``ACK_BUDGET`` (from memory: nearly always) is the acknowledgement itself;
  otherwise the command is acknowledged at once and answered through its ``response_url`` — only to Slack's own
  host (``[slack] hooks_url``): a ``response_url`` anywhere else is refused without a request.
- Once: the ``trigger_id`` or ``event_id`` of each request with a side effect (a change of subscription, a share,
  an uninstall) is recorded after the acknowledgement, so a retry (``X-Slack-Retry-Num``, or a Socket Mode
  ``retry_attempt``) has no second side effect. Questions are simply answered again.
- Changing a channel's subscription needs a workspace admin or owner (``users.info``) or a user in
  ``[slack] admins``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine, Mapping
from typing import Any
from urllib.parse import parse_qsl

from slack_bolt.adapter.starlette.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_bolt.oauth.async_oauth_settings import AsyncOAuthSettings
from slack_sdk.errors import SlackApiError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.chat.answers import Answers, Where, problem
from bot.config_chat import SlackConfig
from bot.slack.installations import SealedInstallationStore
from digests.commands import CHANGES_SETTINGS, Command, CommandError, changes_channel, parse_command
from digests.render.slack import SHARE_ACTION, SlackMessage, notice_reply, reply_message, shared_message
from digests.replies import Notice
from storage.chat import ChatRequests
from storage.delivery import DeliveryStore
from storage.outbox_rows import UNINSTALLED

log = logging.getLogger(__name__)

COMMAND = "/rankings"
ACK_BUDGET = 0.5
"""Seconds an answer may take to be the acknowledgement itself (Slack waits 3 s for one)."""
ADMIN_CACHE_SECONDS = 300.0
TRUSTED_SECONDS = 300.0
"""How long a workspace bolt authorized may have known answers served without asking bolt again."""
FORM = "application/x-www-form-urlencoded"
ANSWERS_KEPT = 512
SCOPES = (
    "commands",
    "chat:write",
    "chat:write.public",
    "channels:history",
    "groups:history",
    "users:read",
    "files:write",
    "files:read",
)
"""What the app asks for when installed (the same as slack/manifest.yml)."""
REFUSAL = (
    "Only a workspace admin or owner (or someone rankbot's operator named in `[slack] admins`) can change what this "
    "channel receives. Anyone can ask for the rankings: try `/rankings` or `/rankings help`."
)
DIGITS = re.compile(r"\d{1,12}")


def _message_arguments(message: SlackMessage) -> dict[str, Any]:
    return {"text": message.text, "blocks": list(message.blocks)}


def request_key(body: Mapping[str, Any]) -> str | None:
    """What identifies a request across Slack's retries: the event's id, or the command's or click's trigger."""
    key = body.get("event_id") or body.get("trigger_id")
    return f"slack:{key}" if key else None


class SlackChat:
    def __init__(
        self,
        config: SlackConfig,
        environ: Mapping[str, str],
        answers: Answers,
        requests: ChatRequests,
        store: DeliveryStore,
        installations: SealedInstallationStore | None = None,
        state_store: Any = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self.answers = answers
        self.requests = requests
        self.store = store
        self.installations = installations
        self._admins: dict[tuple[str, str], tuple[bool, float]] = {}
        self._answers: OrderedDict[tuple[str, str], tuple[SlackMessage, bytes]] = OrderedDict()
        self._teams: dict[str, float] = {}
        """Workspaces bolt authorized lately (monotonic time): their questions may be answered from memory."""
        self._lock = threading.Lock()
        self._following: set[asyncio.Task[None]] = set()
        self._reading: asyncio.Future[str] | None = None
        secret = environ.get(config.signing_secret_env) or ""
        self.verifier = SignatureVerifier(secret, clock or Clock()) if secret else None
        self.bolt = self._bolt(config, environ, secret, state_store)
        self.handler = AsyncSlackRequestHandler(self.bolt)

    # -- the bolt app ------------------------------------------------------------------------------------
    def _bolt(self, config: SlackConfig, environ: Mapping[str, str], secret: str, state_store: Any) -> AsyncApp:
        oauth = None
        if self.installations is not None:
            oauth = AsyncOAuthSettings(
                client_id=environ.get(config.client_id_env),
                client_secret=environ.get(config.client_secret_env),
                scopes=list(SCOPES),
                installation_store=self.installations,
                installation_store_bot_only=True,
                state_store=state_store,
                authorization_url=config.authorize_url,
            )
            client = AsyncWebClient(base_url=config.api_url, timeout=15)
        else:
            client = AsyncWebClient(token=config.bot_token(environ), base_url=config.api_url, timeout=15)
        app = AsyncApp(
            client=client,
            signing_secret=secret or "socket-mode",  # checked in `events` (HTTP); Socket Mode is not signed
            request_verification_enabled=False,
            oauth_settings=oauth,
            process_before_response=True,  # listeners acknowledge themselves; slow work continues in a task
            raise_error_for_unhandled_request=False,
        )
        app.command(COMMAND)(self._command)
        app.action(SHARE_ACTION)(self._share)
        app.event("app_uninstalled")(self._uninstalled)
        app.event("tokens_revoked")(self._revoked)
        app.error(self._error)
        return app

    async def first_time(self, body: Mapping[str, Any]) -> bool:
        """Whether this request's side effect is still to be done: ``False`` for a retry of one handled. Asked after
        the acknowledgement, so a slow database never delays it."""
        key = request_key(body)
        if key is None or await asyncio.to_thread(self.requests.first_time, key):
            return True
        log.info("Slack sent %s again (a retry): already handled, nothing done twice", key)
        return False

    async def _error(self, error: Exception, body: dict[str, Any]) -> None:
        log.error("Slack request failed: %s: %s", type(error).__name__, error)

    # -- HTTP --------------------------------------------------------------------------------------------
    def routes(self) -> list[Route]:
        routes = [Route("/slack/events", self.events, methods=["POST"])]
        if self.installations is not None:
            routes += [
                Route("/slack/install", self.handler.handle, methods=["GET"]),
                Route("/slack/oauth_redirect", self.handler.handle, methods=["GET"]),
            ]
        return routes

    def signed(self, body: bytes, headers: Mapping[str, str]) -> bool:
        timestamp = headers.get("x-slack-request-timestamp") or ""
        signature = headers.get("x-slack-signature") or ""
        if self.verifier is None or not DIGITS.fullmatch(timestamp) or not signature:
            return False
        try:
            body.decode("utf-8")  # Slack sends UTF-8; slack_sdk's verifier would raise on anything else
        except UnicodeDecodeError:
            return False
        return self.verifier.is_valid(body, timestamp, signature)

    async def events(self, request: Request) -> Response:
        body = await request.body()
        if not self.signed(body, request.headers):
            return PlainTextResponse("Slack signature missing, invalid or too old.\n", status_code=401)
        known = self._known_answer(body, request.headers)
        if known is not None:
            return Response(known, media_type="application/json")
        try:
            return await self.handler.handle(request)
        except ValueError as error:  # bolt parses a body starting with "{" as JSON, whatever its type
            log.warning("a signed Slack request had a body that is not JSON or a form: %s", error)
            return PlainTextResponse("The body is neither a form nor JSON.\n", status_code=400)

    def _known_answer(self, body: bytes, headers: Mapping[str, str]) -> bytes | None:
        """The hot path: a signed ``/rankings`` question, from a workspace bolt authorized in the last minutes,
        already answered for this site version — its acknowledgement is the same bytes as bolt's would be,
        without bolt's per-request work (a client, two body parses, the middleware chain)."""
        if b"command=%2Frankings" not in body or not headers.get("content-type", "").startswith(FORM):
            return None
        form = dict(parse_qsl(body.decode("utf-8")))
        asked = self._teams.get(form.get("team_id", ""))
        if form.get("command") != COMMAND or asked is None or time.monotonic() - asked > TRUSTED_SECONDS:
            return None
        known = self._remembered(" ".join(form.get("text", "").split()))
        return known[1] if known is not None else None

    # -- /rankings ---------------------------------------------------------------------------------------
    async def _command(self, ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        text = " ".join(str(body.get("text") or "").split())
        where = Where(str(body.get("team_id") or ""), str(body.get("channel_id") or ""))
        self._teams[where.team] = time.monotonic()
        known = self._remembered(text)
        if known is not None:  # answered from memory, on the event loop
            await ack(response_type="ephemeral", **_message_arguments(known[0]))
            return
        work = asyncio.ensure_future(self.reply(client, str(body.get("user_id") or ""), text, where, body))
        done, _ = await asyncio.wait({work}, timeout=ACK_BUDGET)
        if work in done:
            await ack(response_type="ephemeral", **_message_arguments(work.result()))
            return
        await ack()  # Slack hears back at once; the answer follows through response_url
        self.later(self._follow_up(work, str(body.get("response_url") or "")), "a slow /rankings answer")

    def later(self, work: Coroutine[Any, Any, None], what: str) -> None:
        """Run ``work`` after the acknowledgement has gone (bolt answers Slack when the listener returns)."""

        async def run() -> None:
            try:
                await work
            except Exception:
                log.exception("%s failed", what)

        task = asyncio.create_task(run())
        self._following.add(task)
        task.add_done_callback(self._following.discard)

    async def _follow_up(self, work: asyncio.Future[SlackMessage], response_url: str) -> None:
        await self.respond(response_url, await work, response_type="ephemeral")

    async def reply(
        self, client: AsyncWebClient, user: str, text: str, where: Where, body: Mapping[str, Any] | None = None
    ) -> SlackMessage:
        """The reply to ``/rankings text`` from ``user``; a change asked twice (a retry of ``body``) is made once."""
        try:
            command = parse_command(text)
        except CommandError as error:
            return notice_reply(problem(error, self.answers.usage))
        if changes_channel(command):
            if not await self.is_admin(client, where.team, user):
                return notice_reply(Notice((REFUSAL,)))
            if body is not None and not await self.first_time(body):
                return notice_reply(Notice(("Already done (Slack sent this command twice).",)))
        if isinstance(command, CHANGES_SETTINGS):
            return await asyncio.to_thread(lambda: reply_message(self.answers.answer(command, where)))
        return await asyncio.to_thread(self._rendered, command, where, text)

    def _remembered(self, text: str) -> tuple[SlackMessage, bytes] | None:
        """The answer to a question already answered for the site version (and the acknowledgement that carries
        it), without touching the database (``None``: work it out). When the version is more than a second old it
        is read again in the background, and the answers follow within that read."""
        known = self.answers.data.last_version()
        if known is None:
            return None
        version, fresh = known
        if not fresh and (self._reading is None or self._reading.done()):
            self._reading = asyncio.ensure_future(asyncio.to_thread(self.answers.version))
        with self._lock:
            return self._answers.get((version, text))

    def _rendered(self, command: Command, where: Where, text: str) -> SlackMessage:
        """A question's answer, worked out once per site version (a new day or digest) and then kept."""
        version = self.answers.version()
        with self._lock:
            kept = self._answers.get((version, text))
        if kept is not None:
            return kept[0]
        message = reply_message(self.answers.answer(command, where), text)
        acknowledgement = json.dumps({"response_type": "ephemeral", **_message_arguments(message)}).encode()
        with self._lock:
            self._answers[(version, text)] = (message, acknowledgement)
            while len(self._answers) > ANSWERS_KEPT:
                self._answers.popitem(last=False)
        return message

    async def is_admin(self, client: AsyncWebClient, team: str, user: str) -> bool:
        if user in self.config.admins:
            return True
        known = self._admins.get((team, user))
        if known is not None and time.monotonic() - known[1] < ADMIN_CACHE_SECONDS:
            return known[0]
        try:
            found = (await client.users_info(user=user)).get("user") or {}
        except SlackApiError as error:
            log.warning("users.info for %s failed (%s): treated as not an admin", user, error.response.get("error"))
            return False
        admin = bool(found.get("is_admin") or found.get("is_owner") or found.get("is_primary_owner"))
        self._admins[(team, user)] = (admin, time.monotonic())
        return admin

    def response_url_allowed(self, url: str) -> bool:
        return url.startswith(self.config.hooks_url)

    async def respond(self, url: str, message: SlackMessage | None, **options: Any) -> bool:
        """Answer through a ``response_url`` — only one on Slack's host; anything else is refused unsent."""
        if not self.response_url_allowed(url):
            log.warning("refused a response_url outside %s: %.60s", self.config.hooks_url, url)
            return False
        arguments = _message_arguments(message) if message is not None else {}
        response = await AsyncWebhookClient(url, timeout=15).send(**arguments, **options)
        if response.status_code != 200:
            log.warning("Slack's response_url answered HTTP %d: %.200s", response.status_code, response.body)
        return response.status_code == 200

    # -- "Share to channel" ------------------------------------------------------------------------------
    async def _share(self, ack: Any, body: dict[str, Any], client: AsyncWebClient) -> None:
        await ack()
        self.later(self._shared(body, client), "Share to channel")

    async def _shared(self, body: dict[str, Any], client: AsyncWebClient) -> None:
        if not await self.first_time(body):
            return
        actions = body.get("actions") or [{}]
        text = str(actions[0].get("value") or "")
        team = str((body.get("team") or {}).get("id") or body.get("team_id") or "")
        channel = str((body.get("channel") or {}).get("id") or "")
        user = body.get("user") or {}
        reply = await self.reply(client, str(user.get("id") or ""), text, Where(team, channel))
        name = str(user.get("name") or user.get("username") or user.get("id") or "someone")
        url = str(body.get("response_url") or "")
        if await self.respond(url, shared_message(reply, name), response_type="in_channel", replace_original=False):
            await self.respond(url, None, delete_original=True)

    # -- uninstalls --------------------------------------------------------------------------------------
    async def _forget(self, body: dict[str, Any], why: str) -> None:
        if not await self.first_time(body):
            return
        team = str(body.get("team_id") or "")
        enterprise = body.get("enterprise_id")
        if self.installations is not None:
            await self.installations.async_delete_all(enterprise_id=enterprise, team_id=team)
        names = await asyncio.to_thread(self.store.disable_destinations, f"slack:{team}:", UNINSTALLED)
        log.warning("Slack workspace %s: %s; its install is deleted and %d channels disabled", team, why, len(names))

    async def _uninstalled(self, ack: Any, body: dict[str, Any]) -> None:
        await ack()
        self.later(self._forget(body, "the app was uninstalled"), "forgetting an uninstalled workspace")

    async def _revoked(self, ack: Any, body: dict[str, Any], event: dict[str, Any]) -> None:
        await ack()
        if (event.get("tokens") or {}).get("bot"):
            self.later(self._forget(body, "its bot token was revoked"), "forgetting a revoked token")

    # -- Socket Mode -------------------------------------------------------------------------------------
    async def socket_mode(self, app_token: str, stopping: asyncio.Event) -> None:
        """Serve the same handlers over Socket Mode until ``stopping`` (slack_sdk reconnects a dropped socket)."""
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        handler = AsyncSocketModeHandler(self.bolt, app_token)
        await handler.connect_async()  # type: ignore[no-untyped-call]
        log.info("Slack Socket Mode connected")
        try:
            await stopping.wait()
        finally:
            await handler.close_async()  # type: ignore[no-untyped-call]
