"""Discord messages: digest posts as embeds (from the digest's JSON document, as published) and the ``/rankings``
replies.

Discord's limits are named below (https://discord.com/developers/docs/resources/message#embed-object-embed-limits):
what does not fit one embed continues in the next, and what does not fit one message (10 embeds, 6,000 characters)
continues in the next message — never cut, never refused by Discord. Every piece of text from the source is made
safe for Discord's markdown (``discord_text``: cleaned, ``@`` defused, markdown escaped; inside code blocks a
backtick cannot close the block), and every message allows no mentions (``NO_MENTIONS``). Pure: values in, dicts out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from digests.commands import (
    DEFAULT_TOP,
    ChannelSettings,
    CommandError,
    ModelQuery,
    Movers,
    Show,
    Subscribe,
    Unsubscribe,
    Unwatch,
    Watch,
    parse_command,
    schedule_text,
)
from digests.numbers import format_as_of, format_as_of_text, format_usd
from digests.render.table import cut, digest_table, packed, shown_name, view_table
from digests.replies import Answer, Card, Matches, Notice
from digests.safety import display_text, markdown_escape
from digests.views import Honesty, Match, ModelCard, MoversView, TopView

CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELDS_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
"""The characters of every embed of one message together (titles, descriptions, fields, footers)."""
EMBEDS_LIMIT = 10
"""Embeds in one message."""
CHOICE_NAME_LIMIT = 100
CHOICES_LIMIT = 25
"""Autocomplete choices."""
CHART_FILE = "bump.png"
COLOUR = 0x6366F1
NO_MENTIONS: dict[str, Any] = {"parse": []}
"""``allowed_mentions`` that allows nothing: no ``@everyone``, role or user ping, whatever the text says."""
CAVEAT_LINE = (
    "Token volume through OpenRouter, not quality. Tokenizers differ; top 50 + all other models; figures may be "
    "restated."
)
_LINE_START = re.compile(r"^([#>\-+]|\d+\.)")
"""Markdown that acts at the start of a line in Discord: headings, quotes, lists."""


@dataclass(frozen=True, slots=True)
class DiscordMessage:
    """One message: text, embeds, and whether the bump chart is attached (``attachment://bump.png`` in an embed)."""

    content: str | None = None
    embeds: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    chart: bool = False

    def payload(self, mentions: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The JSON Discord receives (without the attachment itself)."""
        body: dict[str, Any] = {"embeds": list(self.embeds), "allowed_mentions": dict(mentions or NO_MENTIONS)}
        if self.content is not None:
            body["content"] = self.content
        return body

    def size(self) -> int:
        return sum(embed_size(embed) for embed in self.embeds)


def embed_size(embed: Mapping[str, Any]) -> int:
    """The characters Discord counts toward ``EMBED_TOTAL_LIMIT``."""
    fields = embed.get("fields", ())
    return (
        len(embed.get("title", ""))
        + len(embed.get("description", ""))
        + sum(len(f["name"]) + len(f["value"]) for f in fields)
        + len((embed.get("footer") or {}).get("text", ""))
        + len((embed.get("author") or {}).get("name", ""))
    )


def discord_text(text: str, limit: int = 80) -> str:
    """Source text made safe for Discord's markdown: one clean line (``display_text``: ``@`` defused, invisible
    characters gone), markdown escaped, including what acts at the start of a line."""
    return _LINE_START.sub(r"\\\1", markdown_escape(display_text(text, limit)))


def code_text(text: str) -> str:
    """Text for inside a code block, where markdown does nothing but a backtick would end the block."""
    return text.replace("`", "ˋ")


def _fenced(lines: Sequence[str]) -> list[str]:
    """Lines as code blocks, each within ``DESCRIPTION_LIMIT`` (a table longer than one continues in the next)."""
    return [f"```\n{chunk}\n```" for chunk in packed(lines, DESCRIPTION_LIMIT - 8)]


class _Packer:
    """Lines (into descriptions) and fields packed into embeds, and embeds into messages, within every limit.
    Each message's last embed carries the footer (the caveats and attribution, and the part's reference)."""

    def __init__(self, title: str, url: str | None, footer: str, chart: bool, reference: str = "") -> None:
        self.title = cut(title, TITLE_LIMIT)
        self.footer = cut(footer, FOOTER_LIMIT - len(reference) - 8)
        self.reference = reference
        self.messages: list[list[dict[str, Any]]] = [[]]
        self.embed = self._new(self.title, url, chart)
        self.total = embed_size(self.embed)

    @staticmethod
    def _new(title: str | None = None, url: str | None = None, chart: bool = False) -> dict[str, Any]:
        embed: dict[str, Any] = {"type": "rich", "color": COLOUR}
        if title:
            embed["title"] = title
        if url:
            embed["url"] = url
        if chart:
            embed["image"] = {"url": f"attachment://{CHART_FILE}"}
        return embed

    def _footer(self, part: int) -> str:
        return f"{self.footer} · {self.reference}.{part}" if self.reference else self.footer

    def _fits(self, extra: int) -> bool:
        return self.total + extra + len(self._footer(len(self.messages))) <= EMBED_TOTAL_LIMIT

    def _next(self, need: int) -> None:
        self.messages[-1].append(self.embed)
        if len(self.messages[-1]) >= EMBEDS_LIMIT or not self._fits(need):
            self.messages.append([])
            self.total = 0
            self.embed = self._new(cut(f"{self.title} (continued)", TITLE_LIMIT))
        else:
            self.embed = self._new()
        self.total += embed_size(self.embed)

    def line(self, text: str) -> None:
        text = cut(text, DESCRIPTION_LIMIT)
        description = self.embed.get("description", "")
        extra = len(text) + (1 if description else 0)
        if "fields" in self.embed or len(description) + extra > DESCRIPTION_LIMIT or not self._fits(extra):
            self._next(len(text))
            description, extra = "", len(text)
        self.embed["description"] = f"{description}\n{text}" if description else text
        self.total += extra

    def add_field(self, name: str, value: str, inline: bool = False) -> None:
        name, value = cut(name, FIELD_NAME_LIMIT), cut(value, FIELD_VALUE_LIMIT)
        extra = len(name) + len(value)
        if len(self.embed.get("fields", ())) >= FIELDS_LIMIT or not self._fits(extra):
            self._next(extra)
        self.embed.setdefault("fields", []).append({"name": name, "value": value, "inline": inline})
        self.total += extra

    def done(self, chart: bool = False) -> list[DiscordMessage]:
        self.messages[-1].append(self.embed)
        messages = []
        for part, embeds in enumerate(m for m in self.messages if m):
            embeds[-1]["footer"] = {"text": self._footer(part)}
            messages.append(DiscordMessage(None, tuple(embeds), chart and part == 0))
        return messages


def _names(document: Mapping[str, Any]) -> dict[str, str]:
    names = {row["permaslug"]: discord_text(shown_name(row)) for row in document.get("dropped", ())}
    names.update({row["permaslug"]: discord_text(shown_name(row)) for row in document.get("rows", ())})
    return names


def digest_messages(
    document: Mapping[str, Any],
    top: int,
    archive_url: str | None = None,
    chart: bool = False,
    reference: str = "",
) -> list[DiscordMessage]:
    """A published digest as Discord messages: the title with the source days (linking to the archive), source days
    with ``as_of`` and the comparison, the top ``top`` as a table, what moved and why as fields, the bump chart as
    the embed's image (``chart``: the publisher attaches ``bump.png``), and caveats and attribution in the footer.
    ``reference`` (from the delivery key) ends each message's footer, so a post can be found again after a crash."""
    week = document["kind"] == "week"
    label = document["period"]["label"]
    days = label.removeprefix("Source days ").removeprefix("Source day ")
    correction = "Correction — " if document.get("corrects") else ""
    title = f"{correction}OpenRouter rankings — {'week' if week else 'day'} {days}"
    footer = f"{CAVEAT_LINE} Caveats: {document['caveats_url']} · {document['attribution']}"
    packer = _Packer(title, archive_url, footer, chart, reference)
    packer.line(f"**{label}** · data as of {format_as_of_text(document['as_of'])}")
    if document.get("revision_note"):
        packer.line(str(document["revision_note"]))
    if document.get("corrects"):
        packer.line(f"Correction: replaces `{document['corrects']}` after OpenRouter restated figures.")
    packer.line(str(document["comparison"]))
    unit = f"tokens per day over {len(document['period']['days_with_data'])} days" if week else document["unit"]
    packer.line(f"\n**Top {min(top, len(document['rows']))}** ({unit}; share of all tokens)")
    for block in _fenced(digest_table(document, top, code_text)):
        packer.line(block)
    names = _names(document)
    moves = [
        (str(c["title"]), f"{names.get(c['permaslug'], discord_text(c['permaslug']))} — {c['detail']}")
        for c in document["callouts"]
    ]
    moves += [
        (names.get(a["permaslug"], discord_text(a["permaslug"])), discord_text(str(a["reason"]), FIELD_VALUE_LIMIT))
        for a in document["alerts"]
    ]
    if not moves:
        packer.line("\n**What moved:** nothing notable under the current thresholds.")
    for name, value in moves:
        packer.add_field(name, value)
    return packer.done(chart)


def text_messages(text: str) -> list[DiscordMessage]:
    """Plain text that may hold names from the source (a quiet-day line, an operator notice) as message content:
    markdown escaped line by line, split at line ends into messages of ``CONTENT_LIMIT``; a single longer line is
    cut with "…"."""
    lines = [_LINE_START.sub(r"\\\1", markdown_escape(line)) for line in text.strip().splitlines()]
    return [DiscordMessage(chunk) for chunk in packed(lines, CONTENT_LIMIT) or [""]]


# -- /rankings replies -----------------------------------------------------------------------------------------
def _honest_footer(honesty: Honesty) -> str:
    return f"{honesty.period_label} · data as of {format_as_of(honesty.as_of)} · {honesty.attribution}"


def top_reply(view: TopView) -> list[DiscordMessage]:
    title = f"Top {len(view.rows)} on OpenRouter — {'the week' if view.kind == 'week' else 'the day'}"
    packer = _Packer(title, None, _honest_footer(view.honesty), False)
    for block in _fenced(view_table(view, code_text)):
        packer.line(block)
    packer.line(f"[Caveats]({view.honesty.caveats_url})")
    return packer.done()


def movers_reply(view: MoversView) -> list[DiscordMessage]:
    title = f"What moved on OpenRouter — {'the week' if view.kind == 'week' else 'the day'}"
    packer = _Packer(title, None, _honest_footer(view.honesty), False)
    if not view.movers:
        packer.line("Nothing notable under the current thresholds.")
    for mover in view.movers:
        packer.add_field(mover.headline, f"{discord_text(mover.name)} — {mover.reason}")
    return packer.done()


def card_reply(card: ModelCard, spark_url: str | None) -> list[DiscordMessage]:
    latest = f"#{card.latest_rank}" if card.latest_rank is not None else "below #50"
    price = "not in OpenRouter's catalogue"
    if card.prompt_price is not None and card.completion_price is not None:
        price = f"{format_usd(card.prompt_price * 1e6)} in, {format_usd(card.completion_price * 1e6)} out per M tokens"
    footer = (
        f"Source days up to {card.latest_day.isoformat()} (UTC, complete) · data as of {format_as_of(card.as_of)} · "
        f"Source: OpenRouter (openrouter.ai/rankings), as of {format_as_of(card.as_of)}. Licensed under CC BY 4.0."
    )
    packer = _Packer(discord_text(card.name, TITLE_LIMIT), None, footer, False)
    packer.line(f"by {discord_text(card.author)} · `{code_text(display_text(card.permaslug, 120))}`")
    if card.spend is not None:
        packer.line(
            f"Spend on {card.latest_day.isoformat()}, a range: {format_usd(card.spend.low)} – "
            f"{format_usd(card.spend.high)} at list prices (OpenRouter does not publish the input/output split)"
        )
    for name, value in (
        (f"Rank on {card.latest_day.isoformat()}", latest),
        ("Peak", f"#{card.peak_rank} on {card.peak_day.isoformat()}"),
        ("Days in the top 50", f"{card.days_in_top_50} of {card.days_stored}"),
        ("Days at #1", str(card.days_at_1)),
        ("Price", price),
        ("Open weights", {True: "yes", False: "no", None: "unknown"}[card.open_weights]),
    ):
        packer.add_field(name, value, inline=True)
    messages = packer.done()
    if spark_url:
        messages[0].embeds[0]["image"] = {"url": spark_url}
    return messages


def matches_reply(query: str, matches: Sequence[Match]) -> list[DiscordMessage]:
    if not matches:
        return notice_reply(
            Notice(
                (
                    f"No model matches “{discord_text(query)}”. Try part of a name (`flash`), an author "
                    "(`deepseek`) or a permaslug.",
                )
            )
        )
    packer = _Packer("Several models match", None, "Say which, with its permaslug.", False)
    packer.line(f"“{discord_text(query)}” matches:")
    for match in matches:
        packer.line(f"• {discord_text(match.name)} — `{code_text(display_text(match.permaslug, 120))}`")
    return packer.done()


def notice_reply(notice: Notice) -> list[DiscordMessage]:
    """Help, a refusal, a bad argument with an example, a confirmation: its ``*bold*`` made Discord's ``**bold**``
    (an escaped star in a model's name left alone) and its `code` kept; mentions defused (it may quote the
    person's words or a model's name)."""
    text = "\n".join(notice.lines).replace("@", "＠")
    text = re.sub(r"(?<![*\w\\])\*([^*\n]+?)(?<!\\)\*(?![*\w])", r"**\1**", text)  # not an escaped \*
    packer = _Packer("", None, "rankbot", False)
    for line in text.splitlines() or [""]:
        packer.line(line)
    return packer.done()


def reply_messages(answer: Answer) -> list[DiscordMessage]:
    """An answer to ``/rankings`` as its (ephemeral) reply: one message, or a first one and follow-ups."""
    if isinstance(answer, TopView):
        return top_reply(answer)
    if isinstance(answer, MoversView):
        return movers_reply(answer)
    if isinstance(answer, Card):
        return card_reply(answer.card, answer.spark_url)
    if isinstance(answer, Matches):
        return matches_reply(answer.query, answer.matches)
    return notice_reply(answer)


def choices(matches: Sequence[Match]) -> list[tuple[str, str]]:
    """Autocomplete choices for a model option: (name shown, value sent), at most ``CHOICES_LIMIT``, each within
    ``CHOICE_NAME_LIMIT`` characters (Discord refuses the whole list otherwise)."""
    found = []
    for match in matches[:CHOICES_LIMIT]:
        name = cut(f"{display_text(match.name, 60)} — {match.permaslug}", CHOICE_NAME_LIMIT)
        found.append((name, match.permaslug[:CHOICE_NAME_LIMIT]))
    return found


def shared_message(message: DiscordMessage, user_name: str) -> DiscordMessage:
    """An ephemeral reply shared to the channel: the same embeds, and who shared it (by name: pings nobody)."""
    embeds = [dict(embed) for embed in message.embeds] or [{"type": "rich", "color": COLOUR}]
    last = embeds[-1]
    footer = (last.get("footer") or {}).get("text", "")
    shared = f"Shared by {display_text(user_name, 40)} with /rankings"
    last["footer"] = {"text": cut(f"{footer} · {shared}" if footer else shared, FOOTER_LIMIT)}
    return DiscordMessage(message.content, tuple(embeds))


def slash_usage(example: str, command: str = "/rankings") -> str:
    """A command in the text grammar (``settings top 15 tz Europe/Berlin``) as Discord's ``/rankings`` subcommand
    with its options (``/rankings settings top:15 timezone:Europe/Berlin``): how help and examples read there."""
    try:
        parsed = parse_command(example)
    except CommandError:
        return f"{command} {example}".strip()
    words: list[str] = []
    if isinstance(parsed, Show):
        words = ["top"]  # a group is not a command by itself: the bare command is `top`
        if parsed.top != DEFAULT_TOP:
            words.append(f"n:{parsed.top}")
        if parsed.kind == "week":
            words.append("period:week")
        if parsed.day is not None:
            words.append(f"day:{parsed.day.isoformat()}")
    elif isinstance(parsed, ModelQuery | Watch | Unwatch):
        name = {ModelQuery: "model", Watch: "watch", Unwatch: "unwatch"}[type(parsed)]
        words = [name, f"{'query' if name == 'model' else 'model'}:{parsed.query}"]
    elif isinstance(parsed, Movers):
        words = ["movers", *(["period:week"] if parsed.kind == "week" else [])]
    elif isinstance(parsed, Subscribe):
        words = ["subscribe", f"feed:{parsed.feed}"]
    elif isinstance(parsed, Unsubscribe):
        words = ["unsubscribe", *([f"feed:{parsed.feed}"] if parsed.feed else [])]
    elif isinstance(parsed, ChannelSettings):
        words = ["settings"]
        for name in ("top", "jump", "quiet", "timezone"):
            value = getattr(parsed, name)
            if value is not None:
                words.append(f"{name}:{value}")
        if parsed.at is not None:
            words.append(f"at:{schedule_text(parsed.at)}")
    else:
        words = ["help"]
    return " ".join([command, *words])
