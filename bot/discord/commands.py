"""``/rankings`` as Discord application commands: the group and its subcommands (each turned into the text grammar
Slack uses and handed to ``DiscordChat.respond``), the persistent "Share to channel" view, and the command tree
with the hash that decides whether it must be synced again."""

from __future__ import annotations

import hashlib
import json
import shlex
from typing import TYPE_CHECKING, Any, Literal

import discord
from discord import app_commands

if TYPE_CHECKING:
    from bot.discord.app import DiscordChat

SHARE_ID = "rankbot:share"

Period = Literal["day", "week"]
Feed = Literal["daily", "weekly"]
Quiet = Literal["skip", "line"]


def command_text(*words: str | int | None) -> str:
    """The text-grammar command for the options given (``None`` left out; free text quoted as one word)."""
    return " ".join(shlex.quote(str(word)) for word in words if word is not None)


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


def command_tree(client: discord.Client, chat: DiscordChat) -> app_commands.CommandTree[discord.Client]:
    tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
    tree.add_command(Rankings(chat))
    tree.on_error = chat.on_error  # type: ignore[method-assign]
    return tree


def tree_hash(tree: app_commands.CommandTree[Any]) -> str:
    """What the commands look like to Discord, hashed: a change of name, option or description changes it."""
    payload = [command.to_dict(tree) for command in tree.get_commands()]
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
