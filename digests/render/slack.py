"""Slack Block Kit: digest posts (from the digest's JSON document, as published) and the ``/rankings`` replies.

Slack's limits are named below (https://api.slack.com/reference/block-kit/blocks): a digest too long for one
message continues in more messages (the publisher threads them under the first), never cut. Every piece of text
from the source goes through ``mrkdwn`` (``display_text``, then ``&``, ``<``, ``>`` escaped), so a model named
``<!channel>`` or ``<https://x|y>`` can neither notify nor link. Pure: values in, dicts out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from digests.numbers import format_as_of, format_as_of_text, format_usd
from digests.render.table import cut as _cut
from digests.render.table import digest_table, packed, shown_name, view_table
from digests.replies import Answer, Card, Matches, Notice
from digests.safety import display_text
from digests.views import Honesty, Match, ModelCard, MoversView, TopView

HEADER_LIMIT = 150
"""A header block's plain text."""
SECTION_TEXT_LIMIT = 3000
FIELDS_LIMIT = 10
BLOCKS_LIMIT = 50
"""Blocks in one message."""
TEXT_LIMIT = 40_000
"""A message's top-level ``text`` (the notification and accessibility fallback)."""
CONTEXT_ELEMENTS_LIMIT = 10
ALT_TEXT_LIMIT = 2000
BUTTON_TEXT_LIMIT = 75
SHARE_ACTION = "rankings_share"
"""The ``action_id`` of the "Share to channel" button on ephemeral replies."""


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One ``chat.postMessage``: the fallback text and the blocks."""

    text: str
    blocks: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "blocks": list(self.blocks)}


@dataclass(frozen=True, slots=True)
class SlackImage:
    url: str
    alt: str
    title: str


def _escape(text: str) -> str:
    """``&``, ``<``, ``>`` escaped, as Slack asks of all text (https://api.slack.com/reference/surfaces/formatting)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn(text: str, limit: int = 80) -> str:
    """Source text made safe for mrkdwn: cleaned (``display_text``: one line, no invisible characters, ``@``
    defused) and escaped."""
    return _escape(display_text(text, limit))


def _header(text: str) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": _cut(text, HEADER_LIMIT), "emoji": False}}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _context(*texts: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": _cut(t, SECTION_TEXT_LIMIT)} for t in texts[:CONTEXT_ELEMENTS_LIMIT]],
    }


def _sections(lines: Sequence[str], preformatted: bool = False) -> list[dict[str, Any]]:
    """Lines packed into as few sections as fit ``SECTION_TEXT_LIMIT`` (a code block stays a code block)."""
    fence = "```" if preformatted else ""
    room = SECTION_TEXT_LIMIT - 2 * len(fence) - 2
    return [_section(f"{fence}{chunk}{fence}") for chunk in packed(lines, room)]


def _names(document: Mapping[str, Any]) -> dict[str, str]:
    names = {row["permaslug"]: mrkdwn(shown_name(row)) for row in document.get("dropped", ())}
    names.update({row["permaslug"]: mrkdwn(shown_name(row)) for row in document.get("rows", ())})
    return names


def _moves(document: Mapping[str, Any]) -> list[str]:
    names = _names(document)
    lines = [
        f"• *{c['title']}:* {names.get(c['permaslug'], mrkdwn(c['permaslug']))} — {c['detail']}"
        for c in document["callouts"]
    ]
    lines += [f"• {names.get(a['permaslug'], mrkdwn(a['permaslug']))}: {a['reason']}" for a in document["alerts"]]
    return lines or ["Nothing notable under the current thresholds."]


def _in_messages(text: str, blocks: Sequence[dict[str, Any]]) -> list[SlackMessage]:
    """``blocks`` split into messages of at most ``BLOCKS_LIMIT`` (the first keeps ``text``)."""
    chunks = [blocks[i : i + BLOCKS_LIMIT] for i in range(0, len(blocks), BLOCKS_LIMIT)] or [[]]
    first = _cut(text, TEXT_LIMIT)
    return [
        SlackMessage(first if n == 0 else f"{_cut(text, 200)} (continued, {n + 1}/{len(chunks)})", tuple(chunk))
        for n, chunk in enumerate(chunks)
    ]


def digest_messages(
    document: Mapping[str, Any],
    top: int,
    archive_url: str | None = None,
    chart: SlackImage | None = None,
) -> list[SlackMessage]:
    """A published digest as Slack messages: header, source days with ``as_of``, the top ``top`` as a table, what
    moved and why, the bump chart, caveats and attribution, and a "Full digest" button. One message when it fits
    (it usually does); otherwise the rest continues in more, for the publisher to thread."""
    week = document["kind"] == "week"
    label = document["period"]["label"]
    days = label.removeprefix("Source days ").removeprefix("Source day ")
    correction = "Correction — " if document.get("corrects") else ""
    title = f"{correction}OpenRouter rankings — {'week' if week else 'day'} {days}"
    blocks: list[dict[str, Any]] = [_header(title)]
    facts = [f"*{label}* · data as of {format_as_of_text(document['as_of'])}"]
    if document.get("revision_note"):
        facts.append(str(document["revision_note"]))
    if document.get("corrects"):
        facts.append(f"Correction: replaces `{document['corrects']}` after OpenRouter restated figures.")
    facts.append(str(document["comparison"]))
    blocks.append(_context(*facts))
    unit = f"tokens per day over {len(document['period']['days_with_data'])} days" if week else document["unit"]
    blocks.append(_section(f"*Top {min(top, len(document['rows']))}* ({unit}; share of all tokens)"))
    blocks += _sections(digest_table(document, top, _escape), preformatted=True)
    blocks.append(_section("*What moved*"))
    blocks += _sections(_moves(document))
    if chart is not None:
        blocks.append(
            {
                "type": "image",
                "image_url": chart.url,
                "alt_text": _cut(chart.alt, ALT_TEXT_LIMIT),
                "title": {"type": "plain_text", "text": _cut(chart.title, 2000)},
            }
        )
    blocks.append(
        _context(
            "Token volume through OpenRouter, not quality. Tokenizers differ; top 50 + all other models; figures "
            f"may be restated. <{document['caveats_url']}|Caveats>",
            str(document["attribution"]),
        )
    )
    if archive_url:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {"type": "button", "text": {"type": "plain_text", "text": "Full digest"}, "url": archive_url}
                ],
            }
        )
    leader = mrkdwn(shown_name(document["rows"][0])) if document["rows"] else "no ranked model"
    text = f"{_escape(title)}: #1 {leader}. {document['attribution']}"
    return _in_messages(text, blocks)


# -- /rankings replies -----------------------------------------------------------------------------------------
def _honest(honesty: Honesty) -> dict[str, Any]:
    return _context(
        f"{honesty.period_label} · data as of {format_as_of(honesty.as_of)}",
        f"<{honesty.caveats_url}|Caveats> · {honesty.attribution}",
    )


def _share_button(value: str) -> dict[str, Any]:
    """The "Share to channel" button of an ephemeral reply; ``value`` is the command that made it (re-run)."""
    return {
        "type": "actions",
        "elements": [
            {
                "type": "button",
                "action_id": SHARE_ACTION,
                "text": {"type": "plain_text", "text": "Share to channel"},
                "value": _cut(value, 2000),
            }
        ],
    }


def top_reply(view: TopView, command: str | None = None) -> SlackMessage:
    lines = view_table(view, _escape)
    title = f"Top {len(view.rows)} on OpenRouter — {'the week' if view.kind == 'week' else 'the day'}"
    blocks = [_section(f"*{title}*"), *_sections(lines, preformatted=True), _honest(view.honesty)]
    if command is not None:
        blocks.append(_share_button(command))
    return SlackMessage(f"{title}. {view.honesty.attribution}", tuple(blocks))


def movers_reply(view: MoversView, command: str | None = None) -> SlackMessage:
    title = f"What moved on OpenRouter — {'the week' if view.kind == 'week' else 'the day'}"
    lines = [f"• *{m.headline}:* {mrkdwn(m.name)} — {m.reason}" for m in view.movers]
    blocks = [_section(f"*{title}*"), *_sections(lines or ["Nothing notable under the current thresholds."])]
    blocks.append(_honest(view.honesty))
    if command is not None:
        blocks.append(_share_button(command))
    return SlackMessage(f"{title}. {view.honesty.attribution}", tuple(blocks))


def card_reply(card: ModelCard, spark: SlackImage | None, command: str | None = None) -> SlackMessage:
    latest = f"#{card.latest_rank}" if card.latest_rank is not None else "below #50"
    price = "not in OpenRouter's catalogue"
    if card.prompt_price is not None and card.completion_price is not None:
        price = f"{format_usd(card.prompt_price * 1e6)} in, {format_usd(card.completion_price * 1e6)} out per M tokens"
    fields = [
        f"*Rank on {card.latest_day.isoformat()}*\n{latest}",
        f"*Peak*\n#{card.peak_rank} on {card.peak_day.isoformat()}",
        f"*Days in the top 50*\n{card.days_in_top_50} of {card.days_stored}",
        f"*Days at #1*\n{card.days_at_1}",
        f"*Price*\n{price}",
        f"*Open weights*\n{ {True: 'yes', False: 'no', None: 'unknown'}[card.open_weights] }",
    ]
    blocks: list[dict[str, Any]] = [
        _section(f"*{mrkdwn(card.name)}* by {mrkdwn(card.author)} · `{mrkdwn(card.permaslug, 120)}`"),
        {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields[:FIELDS_LIMIT]]},
    ]
    if card.spend is not None:
        blocks.append(
            _section(
                f"Spend on {card.latest_day.isoformat()}, a range: {format_usd(card.spend.low)} – "
                f"{format_usd(card.spend.high)} at list prices (OpenRouter does not publish the input/output split)"
            )
        )
    if spark is not None:
        blocks.append({"type": "image", "image_url": spark.url, "alt_text": _cut(spark.alt, ALT_TEXT_LIMIT)})
    blocks.append(
        _context(
            f"Source days up to {card.latest_day.isoformat()} (UTC, complete) · data as of {format_as_of(card.as_of)}",
            f"Source: OpenRouter (openrouter.ai/rankings), as of {format_as_of(card.as_of)}. Licensed under CC BY 4.0.",
        )
    )
    if command is not None:
        blocks.append(_share_button(command))
    return SlackMessage(f"{mrkdwn(card.name)}: {latest} on {card.latest_day.isoformat()}", tuple(blocks))


def matches_reply(query: str, matches: Sequence[Match]) -> SlackMessage:
    if not matches:
        return _text_reply(
            f"No model matches “{mrkdwn(query)}”. Try part of a name (`flash`), an author (`deepseek`) or a permaslug."
        )
    lines = [f"• {mrkdwn(m.name)} — `{mrkdwn(m.permaslug, 120)}`" for m in matches]
    return SlackMessage(
        f"Models matching {_escape(display_text(query))}",
        (_section(f"*Several models match “{mrkdwn(query)}”; say which:*"), *_sections(lines)),
    )


def plain_message(text: str) -> SlackMessage:
    """Text that may hold names from the source (a quiet-day line, an operator notice), escaped whole."""
    escaped = _escape(text.strip())
    return SlackMessage(_cut(escaped, TEXT_LIMIT), tuple(_sections(escaped.splitlines() or [escaped])))


def _text_reply(text: str) -> SlackMessage:
    return SlackMessage(_cut(text.replace("*", ""), TEXT_LIMIT), tuple(_sections(text.splitlines() or [text])))


def notice_reply(notice: Notice) -> SlackMessage:
    """Help, a refusal, a bad argument with an example, a confirmation: its ``*bold*`` and `code` kept, and
    everything escaped (it may quote the person's words or a model's name)."""
    return _text_reply(_escape("\n".join(notice.lines)))


def reply_message(answer: Answer, command: str | None = None) -> SlackMessage:
    """An answer to ``/rankings`` as its ephemeral reply; ``command`` (the text that asked) adds the "Share to
    channel" button."""
    if isinstance(answer, TopView):
        return top_reply(answer, command)
    if isinstance(answer, MoversView):
        return movers_reply(answer, command)
    if isinstance(answer, Card):
        spark = SlackImage(answer.spark_url, answer.spark_alt, "Last 30 days") if answer.spark_url else None
        return card_reply(answer.card, spark, command)
    if isinstance(answer, Matches):
        return matches_reply(answer.query, answer.matches)
    return notice_reply(answer)


def shared_message(reply: SlackMessage, user_name: str) -> SlackMessage:
    """An ephemeral reply shared to the channel: the same blocks without the button, and who shared it (by name:
    sharing pings nobody)."""
    blocks = [b for b in reply.blocks if b.get("type") != "actions"]
    blocks.append(_context(f"Shared by {mrkdwn(user_name, 40)} with `/rankings`"))
    return SlackMessage(reply.text, tuple(blocks))
