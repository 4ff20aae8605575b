"""The Discord bot's ``/rankings``: discord.py application commands on the gateway connection, the "Share to
channel" button, and the command sync.

- Every subcommand's options are turned into the text grammar Slack uses (``top 25 day 2026-10-07``) and parsed by
  ``digests.commands.parse_command``, so both platforms validate alike; help and examples are shown as Discord
  types them (``/rankings top n:25``).
- Replies are ephemeral embeds (``digests.render.discord.reply_messages``) allowing no mention; an answer not ready
  within ``DEFER_AFTER`` is deferred first (Discord waits 3 s) and follows as a follow-up.
- "Share to channel" is a persistent view (``timeout=None``, the fixed ``SHARE_ID``), added in ``setup_hook``, so a
  button keeps working after a restart; each ephemeral reply is shared once (``storage.chat.ChatRequests``).
- Changing what a channel receives (subscribe, unsubscribe, settings with options, watch, unwatch) needs Manage
  Server, in a server. Discord lets ``default_permissions`` be set only on a top-level command, and ``/rankings``
  is for everyone, so this is checked here on every such command (a server can still restrict the subcommands in
  Server Settings → Integrations).
- One person may give ``[discord] cooldown_commands`` commands per ``cooldown_seconds`` (``app_commands.Cooldown``
  per user); more get a "slow down".
- The commands are synced (``rankbot discord sync``) to ``[discord] test_guild`` or globally; at start only when the
  tree's hash differs from the one stored at the last sync (global sync is rate-limited).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import shlex
import time
from typing import Any, Literal
from zoneinfo import available_timezones

import discord
from discord import app_commands

from bot.chat.answers import Answers, Where, problem
from bot.config_chat import DiscordConfig
from digests.commands import CommandError, changes_channel, parse_command
from digests.render.discord import (
    DiscordMessage,
    choices,
    notice_reply,
    reply_messages,
    shared_message,
)
from digests.replies import Card, Notice
from digests.views import MoversView, TopView
from storage.chat import ChatRequests
from storage.service_state import ServiceState

log = logging.getLogger(__name__)

DEFER_AFTER = 1.5
"""Seconds an answer may take before the command is deferred (Discord waits 3 s for the first response)."""
SHARE_ID = "rankbot:share"
SYNCED = "discord_commands"
"""Service-state key prefix: the hash of the command tree last synced, per scope (a guild id or ``global``)."""
REFUSAL = (
    "Only someone with **Manage Server** can change what this channel receives. Anyone can ask for the rankings: "
    "try `/rankings top` or `/rankings help`."
)
NOT_IN_A_SERVER = (
    "Channel posts are set up in a server's channel: run this there (a direct message can ask for the rankings)."
)
CHOICES_SHOWN = 25
RESTART_CAP = 64.0

Period = Literal["day", "week"]
Feed = Literal["daily", "weekly"]
Quiet = Literal["skip", "line"]


def command_text(*words: str | int | None) -> str:
    """The text-grammar command for the options given (``None`` left out; free text quoted as one word)."""
    return " ".join(shlex.quote(str(word)) for word in words if word is not None)


def send_arguments(message: DiscordMessage) -> dict[str, Any]:
    """``send_message`` / ``followup.send`` keywords for one reply message, allowing no mention."""
    arguments: dict[str, Any] = {
        "embeds": [discord.Embed.from_dict(dict(embed)) for embed in message.embeds],
        "allowed_mentions": discord.AllowedMentions.none(),
    }
    if message.content:
        arguments["content"] = message.content
    return arguments


def where_of(interaction: discord.Interaction) -> Where:
    return Where(str(interaction.guild_id or "dm"), str(interaction.channel_id or ""))


class ShareView(discord.ui.View):
    """The "Share to channel" button under a reply: persistent (no timeout, a fixed custom id)."""

    def __init__(self, chat: DiscordChat) -> None:
        super().__init__(timeout=None)
        self.chat = chat

    @discord.ui.button(label="Share to channel", style=discord.ButtonStyle.secondary, custom_id=SHARE_ID)
    async def share(self, interaction: discord.Interaction, button: discord.ui.Button[ShareView]) -> None:
        await self.chat.share(interaction)


class Rankings(app_commands.Group):
    """``/rankings`` and its subcommands; each becomes the text grammar and goes to ``DiscordChat.respond``."""

    def __init__(self, chat: DiscordChat) -> None:
        super().__init__(name="rankings", description="OpenRouter's model-usage rankings, from rankbot")
        self.chat = chat

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        self.chat.cool_down(interaction)
        return True

    @app_commands.command(description="The top models of the latest complete day or week (or of a day you name)")
    @app_commands.describe(
        n="How many models (1–50)", period="The day or the week", day="A day as YYYY-MM-DD (UTC), or the week ending it"
    )
    async def top(
        self,
        interaction: discord.Interaction,
        n: app_commands.Range[int, 1, 50] = 10,
        period: Period = "day",
        day: str | None = None,
    ) -> None:
        head = "week" if period == "week" else None
        await self.chat.respond(interaction, command_text(head, "top", n, *(("day", day) if day else ())))

    @app_commands.command(description="A model's card: rank, peak, days in the top 50, price, last 30 days")
    @app_commands.describe(query="Part of its name, its author or its permaslug")
    async def model(self, interaction: discord.Interaction, query: app_commands.Range[str, 1, 100]) -> None:
        await self.chat.respond(interaction, command_text("model", query))

    @model.autocomplete("query")
    async def _model_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self.chat.model_choices(current)

    @app_commands.command(description="What moved on the latest day (or week), and why")
    @app_commands.describe(period="The day or the week")
    async def movers(self, interaction: discord.Interaction, period: Period = "day") -> None:
        await self.chat.respond(interaction, command_text("movers", period if period == "week" else None))

    @app_commands.command(description="Post the daily alerts or the weekly digest in this channel (Manage Server)")
    @app_commands.describe(feed="daily: the alerts on notable days; weekly: the weekly digest")
    async def subscribe(self, interaction: discord.Interaction, feed: Feed) -> None:
        await self.chat.respond(interaction, command_text("subscribe", feed))

    @app_commands.command(description="Stop the daily or weekly posts here; alone, stop everything (Manage Server)")
    @app_commands.describe(feed="daily or weekly; leave out to stop everything, watches included")
    async def unsubscribe(self, interaction: discord.Interaction, feed: Feed | None = None) -> None:
        await self.chat.respond(interaction, command_text("unsubscribe", feed))

    @app_commands.command(description="Show this channel's settings, or change them (changing: Manage Server)")
    @app_commands.describe(
        top="Models shown in each post (1–50)",
        jump="Places a watched model must move for an alert (1–49)",
        quiet="On a quiet day: skip (nothing) or line (one line saying so)",
        timezone="The weekly digest's time zone, e.g. Europe/Berlin",
        at='The weekly digest\'s day and time, e.g. "mon 09:00"',
    )
    async def settings(
        self,
        interaction: discord.Interaction,
        top: app_commands.Range[int, 1, 50] | None = None,
        jump: app_commands.Range[int, 1, 49] | None = None,
        quiet: Quiet | None = None,
        timezone: app_commands.Range[str, 1, 64] | None = None,
        at: app_commands.Range[str, 1, 32] | None = None,
    ) -> None:
        options = {"top": top, "jump": jump, "quiet": quiet, "tz": timezone, "at": at}
        words = [word for name, value in options.items() if value is not None for word in (name, value)]
        await self.chat.respond(interaction, command_text("settings", *words))

    @settings.autocomplete("timezone")
    async def _zones(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return self.chat.zone_choices(current)

    @app_commands.command(description="An alert here when a model enters or leaves the top, or jumps (Manage Server)")
    @app_commands.describe(model="Part of its name, its author or its permaslug")
    async def watch(self, interaction: discord.Interaction, model: app_commands.Range[str, 1, 100]) -> None:
        await self.chat.respond(interaction, command_text("watch", model))

    @app_commands.command(description="Stop watching a model (Manage Server)")
    @app_commands.describe(model="Part of its name, its author or its permaslug")
    async def unwatch(self, interaction: discord.Interaction, model: app_commands.Range[str, 1, 100]) -> None:
        await self.chat.respond(interaction, command_text("unwatch", model))

    @watch.autocomplete("model")
    @unwatch.autocomplete("model")
    async def _watch_choices(self, interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return await self.chat.model_choices(current)

    @app_commands.command(description="What each /rankings command does")
    async def help(self, interaction: discord.Interaction) -> None:
        await self.chat.respond(interaction, "help")


class GatewayClient(discord.Client):
    """The bot's gateway connection: no privileged intent (interactions need none), no mentions by default."""

    def __init__(self, chat: DiscordChat) -> None:
        intents = discord.Intents.none()
        intents.guilds = True  # not privileged; without it discord.py warns and knows no server
        # ready without waiting for every server's GUILD_CREATE: nothing here reads the server cache
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none(), guild_ready_timeout=0.1)
        self.chat = chat
        self.tree = command_tree(self, chat)

    async def setup_hook(self) -> None:
        self.add_view(ShareView(self.chat))
        try:
            await self.chat.sync_if_changed(self.tree)
        except discord.HTTPException as error:
            log.warning(
                "Discord refused the command sync (HTTP %d: %s): `rankbot discord sync` tries again",
                error.status,
                error.text,
            )

    async def on_ready(self) -> None:
        log.info("Discord gateway ready as %s", self.user)


def command_tree(client: discord.Client, chat: DiscordChat) -> app_commands.CommandTree[discord.Client]:
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    tree.add_command(Rankings(chat))
    tree.on_error = chat.on_error  # type: ignore[method-assign]
    return tree


def tree_hash(tree: app_commands.CommandTree[Any]) -> str:
    """What the commands look like to Discord, hashed: a change of name, option or description changes it."""
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class DiscordChat:
    def __init__(
        self,
        config: DiscordConfig,
        token: str,
        answers: Answers,
        requests: ChatRequests,
        state: ServiceState,
    ) -> None:
        self.config = config
        self.token = token
        self.answers = answers
        self.requests = requests
        self.state = state
        self._cooldowns: dict[int, app_commands.Cooldown] = {}
        self.client: GatewayClient | None = None
        self.refused = False
        """Discord refused the token: the gateway stays off until a restart."""

    # -- answering ---------------------------------------------------------------------------------------
    def cool_down(self, interaction: discord.Interaction) -> None:
        """Raise ``CommandOnCooldown`` when this user has given too many commands lately."""
        now = time.monotonic()
        for user, bucket in list(self._cooldowns.items()):  # forget the idle (a full bucket), so the map stays small
            if bucket.get_tokens(now) >= bucket.rate:
                del self._cooldowns[user]
        bucket = self._cooldowns.setdefault(
            interaction.user.id, app_commands.Cooldown(self.config.cooldown_commands, self.config.cooldown_seconds)
        )
        retry_after = bucket.update_rate_limit(now)
        if retry_after is not None:
            raise app_commands.CommandOnCooldown(bucket, retry_after)

    async def reply(self, interaction: discord.Interaction, text: str) -> tuple[list[DiscordMessage], bool]:
        """The reply to ``/rankings`` ``text`` (the messages; whether it may be shared)."""
        try:
            command = parse_command(text)
        except CommandError as error:
            return notice_reply(problem(error, self.answers.usage)), False
        if changes_channel(command):
            if interaction.guild_id is None:
                return notice_reply(Notice((NOT_IN_A_SERVER,))), False
            if not interaction.permissions.manage_guild:
                return notice_reply(Notice((REFUSAL,))), False
        answer = await asyncio.to_thread(self.answers.answer, command, where_of(interaction))
        return reply_messages(answer), isinstance(answer, TopView | MoversView | Card)

    async def respond(self, interaction: discord.Interaction, text: str) -> None:
        """Answer at once when the answer is ready within ``DEFER_AFTER``; otherwise defer, then follow up."""
        work = asyncio.ensure_future(self.reply(interaction, text))
        done, _ = await asyncio.wait({work}, timeout=DEFER_AFTER)
        if work not in done:
            await interaction.response.defer(ephemeral=True, thinking=True)
        messages, shareable = await work
        for message in messages:
            share = shareable and message is messages[-1]
            await self._send(interaction, message, ShareView(self) if share else None)

    @staticmethod
    async def _send(interaction: discord.Interaction, message: DiscordMessage, view: ShareView | None) -> None:
        """An ephemeral message: the response if none was given yet, otherwise a follow-up."""
        arguments = send_arguments(message)
        if view is not None:
            arguments["view"] = view
        if interaction.response.is_done():
            await interaction.followup.send(ephemeral=True, **arguments)
        else:
            await interaction.response.send_message(ephemeral=True, **arguments)

    async def share(self, interaction: discord.Interaction) -> None:
        """Post the reply the button is under to the channel, once, saying who shared it (by name)."""
        message = interaction.message
        if message is None:
            return
        if not await asyncio.to_thread(self.requests.first_time, f"discord:share:{message.id}"):
            await interaction.response.send_message(
                "Already shared.", ephemeral=True, allowed_mentions=discord.AllowedMentions.none()
            )
            return
        embeds = tuple(dict(embed.to_dict()) for embed in message.embeds)
        shared = shared_message(DiscordMessage(message.content, embeds), interaction.user.display_name)
        await interaction.response.send_message(**send_arguments(shared))

    async def model_choices(self, current: str) -> list[app_commands.Choice[str]]:
        """Autocomplete over the model search (typos forgiven), within Discord's limits; nothing for no text."""
        if not current.strip():
            return []
        try:
            matches = await asyncio.to_thread(self.answers.search, current[:100])
        except Exception as error:  # an autocomplete that fails shows nothing; the command still works
            log.warning("model autocomplete failed: %s", error)
            return []
        return [app_commands.Choice(name=name, value=value) for name, value in choices(matches)]

    @staticmethod
    def zone_choices(current: str) -> list[app_commands.Choice[str]]:
        wanted = current.strip().lower().replace(" ", "_")
        zones = sorted(zone for zone in available_timezones() if wanted in zone.lower())
        return [app_commands.Choice(name=zone, value=zone) for zone in zones[:CHOICES_SHOWN]]

    async def on_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        if isinstance(error, app_commands.CommandOnCooldown):
            lines = (
                f"Slow down: {self.config.cooldown_commands} commands per {self.config.cooldown_seconds:g} s each. "
                f"Try again in {error.retry_after:.0f} s.",
            )
        elif isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
            lines = ("rankbot's commands changed since Discord last heard of them: try again in a minute.",)
        else:
            log.error("/rankings failed: %s: %s", type(error).__name__, error, exc_info=error)
            lines = ("Something went wrong answering that; it is logged. Try again in a moment.",)
        await self._send(interaction, notice_reply(Notice(lines))[0], None)

    # -- the command sync --------------------------------------------------------------------------------
    def scope(self, guild: str | None = None) -> str:
        return guild or self.config.test_guild or "global"

    async def sync(self, tree: app_commands.CommandTree[Any], guild: str | None = None) -> str:
        """Sync the commands to ``guild`` (or ``[discord] test_guild``, or globally) and store the tree's hash;
        what was done, in one line."""
        scope = self.scope(guild)
        target = discord.Object(int(scope)) if scope != "global" else None
        if target is not None:
            tree.copy_global_to(guild=target)
        await tree.sync(guild=target)
        await asyncio.to_thread(self.state.set_state, f"{SYNCED}:{scope}", tree_hash(tree))
        count = sum(len(getattr(command, "commands", ())) for command in tree.get_commands())
        done = f"synced /rankings ({count} subcommands) to {f'server {scope}' if target else 'every server'}"
        log.info("%s", done)
        return done

    async def sync_now(self, guild: str | None = None) -> str:
        """``rankbot discord sync``: log in (no gateway), sync, log out."""
        client = discord.Client(intents=discord.Intents.none())
        try:
            await client.login(self.token)
            return await self.sync(command_tree(client, self), guild)
        finally:
            await client.close()

    async def sync_if_changed(self, tree: app_commands.CommandTree[Any]) -> bool:
        """Sync only when the commands changed since the last sync to this scope (a start is not a sync)."""
        stored = await asyncio.to_thread(self.state.state, f"{SYNCED}:{self.scope()}")
        if stored == tree_hash(tree):
            return False
        await self.sync(tree)
        return True

    # -- the gateway -------------------------------------------------------------------------------------
    async def connected(self, stopping: asyncio.Event) -> None:
        """Hold the gateway connection until ``stopping`` (or until cancelled). discord.py reconnects and resumes a
        dropped connection itself; a client that stops on an error is started again after a pause (1, 2, 4 … s,
        at most ``RESTART_CAP``), except for a refused token, which ends it with one line."""
        pause = 0.5  # doubled before the first wait: 1 s
        while not stopping.is_set():
            started = time.monotonic()
            error = await self._connection(stopping)
            if error is None or stopping.is_set():
                return
            if isinstance(error, discord.LoginFailure):
                self.refused = True
                log.error("Discord refused the bot token: /rankings is off until a restart with a valid one")
                return
            pause = 1.0 if time.monotonic() - started > RESTART_CAP else min(pause * 2, RESTART_CAP)
            log.error("Discord gateway stopped (%s: %s): connecting again in %.0f s", type(error).__name__, error,
                      pause)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), pause)

    async def _connection(self, stopping: asyncio.Event) -> BaseException | None:
        """One client's life: until ``stopping``, or the error it stopped on."""
        client = GatewayClient(self)
        self.client = client
        run = asyncio.ensure_future(client.start(self.token, reconnect=True))
        stop = asyncio.ensure_future(stopping.wait())
        try:
            await asyncio.wait({run, stop}, return_when=asyncio.FIRST_COMPLETED)
            return run.exception() if run.done() else None
        finally:
            stop.cancel()
            await client.close()
            await asyncio.gather(run, return_exceptions=True)
            self.client = None
