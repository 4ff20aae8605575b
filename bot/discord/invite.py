"""The link that adds the bot to a server: exactly the scopes and permissions it needs, nothing more."""

from __future__ import annotations

import discord
import discord.utils

SCOPES = ("bot", "applications.commands")
PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, attach_files=True, read_message_history=True
)
"""View Channel, Send Messages, Embed Links (the digests are embeds), Attach Files (the chart), Read Message History
(the delivery check after a crash)."""


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(application_id, permissions=PERMISSIONS, scopes=SCOPES)


async def application_id(token: str) -> int:
    """The bot's application id, asked of Discord with its token (``Route.BASE`` says where)."""
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(token)
        assert client.application_id is not None
        return client.application_id
    finally:
        await client.close()
