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
import logging
import time
from typing import Any
from zoneinfo import available_timezones

import discord
from discord import app_commands

from bot.chat.answers import Answers, Where, problem
from bot.config_chat import DiscordConfig
from bot.discord.commands import ShareView, command_tree, tree_hash
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
COOLDOWNS_KEPT = 1000
"""Users with a cooldown bucket before the idle ones are forgotten (not on every command)."""


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
        if len(self._cooldowns) > COOLDOWNS_KEPT:  # forget the idle (a full bucket), so the map stays small
            for user, idle in list(self._cooldowns.items()):
                if idle.get_tokens(now) >= idle.rate:
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
