"""``rankbot discord``: set-up helpers for the Discord bot."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import discord
import typer

from bot.cli.plumbing import ConfigOption, fail, out, settings_from

app = typer.Typer(help="Set up the Discord bot.", no_args_is_help=True, rich_markup_mode=None)


@app.command("invite-url")
def invite(
    application_id: Annotated[
        int | None,
        typer.Option("--application-id", help="The application's id (Developer Portal → General Information).", min=1),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Print the link that adds the bot to a server, with exactly the scopes (bot, applications.commands) and
    permissions it needs. Without --application-id, the id is asked of Discord with the bot token."""
    from bot.discord.invite import application_id as asked_id
    from bot.discord.invite import invite_url
    from bot.discord.rest import point_at

    settings = settings_from(config)
    if application_id is None:
        token = settings.discord.token(os.environ)
        if token is None:
            fail(
                f"no application id: pass --application-id, or set {settings.discord.token_env} (discord.token_env) "
                "to the bot's token so rankbot can ask Discord"
            )
        point_at(settings.discord.api_url)
        try:
            application_id = asyncio.run(asked_id(token))
        except discord.LoginFailure:
            fail(
                f"Discord refused the token in {settings.discord.token_env}: copy the bot's token again "
                "(Developer Portal → Bot → Reset Token)"
            )
        except (discord.HTTPException, OSError) as error:
            fail(f"could not ask Discord for the application id ({type(error).__name__}): pass --application-id")
    out.print(invite_url(application_id), highlight=False, soft_wrap=True, markup=False)


@app.command("sync")
def sync(
    guild: Annotated[
        str | None,
        typer.Option(
            "--guild",
            help="A server's id: sync there only (instant); otherwise [discord] test_guild, or "
            "every server (global commands can take a while to appear).",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Register /rankings and its subcommands with Discord. `rankbot run` does this itself when the commands changed
    since the last sync; run it by hand for a new server id or after resetting the application."""
    from bot.discord.parts import discord_chat
    from bot.web.site import SiteData
    from storage.archive import Archive
    from storage.engine import open_database
    from storage.repository import Repository

    settings = settings_from(config)
    if guild is not None and not (guild.isdigit() and 15 <= len(guild) <= 21):
        fail(f"--guild {guild[:30]!r} is not a server id: copy it with Developer Mode on (right-click the server)")
    engine = open_database(settings.storage.database_url)
    try:
        data = SiteData(Repository(engine), Archive(engine), settings.digest.settings())
        chat = discord_chat(settings, os.environ, engine, data)
        if chat is None:
            fail(f"no bot token: set {settings.discord.token_env} (discord.token_env) to the bot's token")
        try:
            done = asyncio.run(chat.sync_now(guild))
        except discord.LoginFailure:
            fail(
                f"Discord refused the token in {settings.discord.token_env}: copy the bot's token again "
                "(Developer Portal → Bot → Reset Token)"
            )
        except discord.HTTPException as error:
            fail(f"Discord refused the sync (HTTP {error.status}: {error.text[:200]}): is the bot in that server?")
        except OSError as error:
            fail(f"could not reach Discord ({type(error).__name__}): check [discord] api_url and the network")
        out.print(done, highlight=False, soft_wrap=True, markup=False)
    finally:
        engine.dispose()
