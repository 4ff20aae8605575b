"""What Discord's objects look like, for the fake Discord API: users, the application, messages, and the limits a
message body must keep (checked as Discord checks them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

APPLICATION_ID = "1100000000000000001"
BOT_ID = "1100000000000000002"
LIMITS = {"content": 2000, "title": 256, "description": 4096, "fields": 25, "name": 256, "value": 1024}


@dataclass
class Sent:
    """A message the fake holds: in a channel (from the bot) or through a webhook."""

    id: str
    channel_id: str
    content: str
    embeds: list[dict[str, Any]]
    attachments: list[dict[str, Any]]
    files: dict[str, bytes]
    allowed_mentions: dict[str, Any] | None
    nonce: str | None
    webhook_id: str | None
    at: float
    components: list[dict[str, Any]] = field(default_factory=list)
    flags: int = 0


def too_long(body: dict[str, Any]) -> str | None:
    """What breaks Discord's limits in a message body, if anything."""
    if len(body.get("content") or "") > LIMITS["content"]:
        return "content: Must be 2000 or fewer in length."
    embeds = body.get("embeds") or []
    if len(embeds) > 10:
        return "embeds: Must be 10 or fewer in length."
    total = 0
    for embed in embeds:
        for key in ("title", "description"):
            if len(embed.get(key) or "") > LIMITS[key]:
                return f"embeds.{key}: Must be {LIMITS[key]} or fewer in length."
        fields = embed.get("fields") or []
        if len(fields) > LIMITS["fields"]:
            return "embeds.fields: Must be 25 or fewer in length."
        for item in fields:
            if len(item["name"]) > LIMITS["name"] or len(item["value"]) > LIMITS["value"] or not item["value"]:
                return "embeds.fields: a name over 256, a value over 1024 or empty."
        footer = (embed.get("footer") or {}).get("text", "")
        if len(footer) > 2048:
            return "embeds.footer.text: Must be 2048 or fewer in length."
        total += len(embed.get("title") or "") + len(embed.get("description") or "") + len(footer)
        total += sum(len(f["name"]) + len(f["value"]) for f in fields)
    if total > 6000:
        return "embeds: Embed size exceeds maximum size of 6000"
    if not body.get("content") and not embeds and not body.get("attachments"):
        return "Cannot send an empty message"
    return None


def user(user_id: str, name: str, bot: bool = False) -> dict[str, Any]:
    return {"id": user_id, "username": name, "discriminator": "0", "avatar": None, "global_name": name, "bot": bot}


def application() -> dict[str, Any]:
    return {
        "id": APPLICATION_ID,
        "name": "rankbot",
        "icon": None,
        "description": "",
        "rpc_origins": [],
        "bot_public": True,
        "bot_require_code_grant": False,
        "owner": user("1100000000000000003", "owner"),
        "summary": "",
        "verify_key": "0" * 64,
        "flags": 0,
    }


def message_shell() -> dict[str, Any]:
    return {
        "channel_id": "0",
        "author": user(BOT_ID, "rankbot", bot=True),
        "content": "",
        "timestamp": datetime.now(UTC).isoformat(),
        "edited_timestamp": None,
        "tts": False,
        "mention_everyone": False,
        "mentions": [],
        "mention_roles": [],
        "attachments": [],
        "embeds": [],
        "pinned": False,
        "type": 0,
    }


def message_object(sent: Sent, created: bool = False) -> dict[str, Any]:
    """A message as Discord returns it; the ``nonce`` only when it was just created (history does not carry it)."""
    attachments = [
        {"id": str(n), "filename": a.get("filename", "file"), "size": len(sent.files.get(a.get("filename", ""), b"")),
         "url": f"https://cdn.example/{a.get('filename')}", "proxy_url": "", "description": a.get("description")}
        for n, a in enumerate(sent.attachments)
    ]  # fmt: skip
    body = {
        **message_shell(),
        "id": sent.id,
        "channel_id": sent.channel_id.removeprefix("webhook:") if not sent.webhook_id else "1",
        "content": sent.content,
        "embeds": sent.embeds,
        "attachments": attachments,
        "components": sent.components,
        "flags": sent.flags,
    }
    if created and sent.nonce is not None:
        body["nonce"] = sent.nonce
    if sent.webhook_id:
        body["webhook_id"] = sent.webhook_id
    return body


# -- interactions, as the gateway carries them (INTERACTION_CREATE) ----------------------------------------------
GUILD_ID = "1200000000000000001"
MANAGE_GUILD = 1 << 5
EVERYONE_PERMISSIONS = (1 << 10) | (1 << 11)
"""View Channel and Send Messages: what a member without Manage Server has."""
OPTION_TYPES = {str: 3, int: 4, bool: 5}
_interaction_ids = iter(range(1_300_000_000_000_000_000, 1_400_000_000_000_000_000))


def options(values: dict[str, Any], focused: str | None = None) -> list[dict[str, Any]]:
    found = []
    for name, value in values.items():
        option = {"type": OPTION_TYPES[type(value)], "name": name, "value": value}
        found.append({**option, "focused": True} if name == focused else option)
    return found


def interaction(
    kind: int,
    data: dict[str, Any],
    channel_id: str,
    user_id: str = "1100000000000000010",
    permissions: int = EVERYONE_PERMISSIONS,
    guild_id: str | None = GUILD_ID,
    message: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An interaction of ``kind`` (2 command, 3 component, 4 autocomplete) in a server channel, or in a DM when
    ``guild_id`` is ``None``; by a member with ``permissions``."""
    interaction_id = str(next(_interaction_ids))
    person = user(user_id, f"user{user_id[-4:]}")
    body: dict[str, Any] = {
        "id": interaction_id,
        "application_id": APPLICATION_ID,
        "type": kind,
        "token": f"itoken-{interaction_id}",
        "version": 1,
        "attachment_size_limit": 10 * 1024 * 1024,
        "channel_id": channel_id,
        "data": data,
        "app_permissions": str(EVERYONE_PERMISSIONS | (1 << 14) | (1 << 15) | (1 << 16)),
        "locale": "en-US",
        "entitlements": [],
        "authorizing_integration_owners": {"0": guild_id} if guild_id else {"1": user_id},
        "context": 0 if guild_id else 1,
    }
    if guild_id is None:
        body["user"] = person
        body["channel"] = {"id": channel_id, "type": 1, "recipients": [person]}
    else:
        body["guild_id"] = guild_id
        body["guild_locale"] = "en-US"
        body["channel"] = {"id": channel_id, "type": 0, "guild_id": guild_id, "name": "rankings", "position": 0,
                           "permission_overwrites": [], "nsfw": False, "parent_id": None}  # fmt: skip
        body["member"] = {"user": person, "roles": [], "joined_at": "2026-01-01T00:00:00+00:00", "deaf": False,
                          "mute": False, "flags": 0, "permissions": str(permissions)}  # fmt: skip
    if message is not None:
        body["message"] = message
    return body


def command_data(subcommand: str, values: dict[str, Any], focused: str | None = None) -> dict[str, Any]:
    """The ``data`` of ``/rankings <subcommand>`` with option ``values``."""
    sub = {"type": 1, "name": subcommand, "options": options(values, focused)}
    return {"id": "1200000000000000100", "name": "rankings", "type": 1, "options": [sub]}
