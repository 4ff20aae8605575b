"""Plain-text renderers for the ``/rankings`` views (the console, and the reference the tests read).

Every answer ends with its source days, ``as_of`` and the attribution line. Pure: values in, text out.
"""

from __future__ import annotations

from collections.abc import Sequence

from digests.labels import attribution
from digests.numbers import format_as_of, format_share, format_tokens, format_usd
from digests.views import Honesty, Match, ModelCard, MoversView, TopView


def _footer(honesty: Honesty) -> list[str]:
    return [
        "",
        f"{honesty.period_label} · data as of {format_as_of(honesty.as_of)}",
        f"Caveats: {honesty.caveats_url}",
        honesty.attribution,
    ]


def _aligned(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.rjust(w) if r else cell.ljust(w) for cell, w, r in zip(row, widths, right, strict=True)).rstrip()
        for row in rows
    ]


def render_top(view: TopView) -> str:
    unit = "tokens/day" if view.kind == "week" else "tokens"
    title = f"Top {len(view.rows)} on OpenRouter — {'week' if view.kind == 'week' else 'day'}"
    table = [["#", "Model", "Author", unit, "Share", "Move"]]
    for row in view.rows:
        tokens = ("≥ " if row.lower_bound else "") + format_tokens(row.tokens_per_day)
        table.append([str(row.rank), row.name, row.author, tokens, format_share(row.share), row.marker])
    lines = [title, "", *_aligned(table, [True, False, False, True, True, False]), *_footer(view.honesty)]
    return "\n".join(lines) + "\n"


def render_movers(view: MoversView) -> str:
    lines = [f"Movers on OpenRouter — {'week' if view.kind == 'week' else 'day'}", ""]
    if not view.movers:
        lines.append("Nothing notable moved under the current thresholds.")
    lines += [f"- {mover.headline}: {mover.name} — {mover.reason}" for mover in view.movers]
    return "\n".join([*lines, *_footer(view.honesty)]) + "\n"


def _rank_strip(card: ModelCard) -> str:
    return " ".join("·" if rank is None else str(rank) for _, rank in card.ranks)


def render_card(card: ModelCard) -> str:
    price = "unknown"
    if card.prompt_price is not None and card.completion_price is not None:
        price = (
            f"${card.prompt_price * 1e6:.2f} prompt / ${card.completion_price * 1e6:.2f} completion per million tokens"
        )
    weights = {True: "yes", False: "no", None: "unknown"}[card.open_weights]
    latest = f"#{card.latest_rank}" if card.latest_rank is not None else "below #50"
    lines = [
        f"{card.name} ({card.permaslug}) by {card.author or 'unknown author'}",
        "",
        f"Latest day {card.latest_day.isoformat()}: {latest}"
        + (f", {format_tokens(card.latest_tokens)} tokens" if card.latest_tokens is not None else "")
        + (f", {format_share(card.latest_share)} of all tokens" if card.latest_share is not None else ""),
        f"Peak: #{card.peak_rank} on {card.peak_day.isoformat()} · in the top 50 on {card.days_in_top_50} of "
        f"{card.days_stored} stored days · #1 on {card.days_at_1}",
        f"Last 30 days (· = below #50 or no data): {_rank_strip(card)}",
        f"Pricing: {price} · context: {format_tokens(card.context_length) if card.context_length else 'unknown'}"
        f" · open weights: {weights}",
    ]
    if card.spend is not None:
        lines.append(
            f"Estimated list-price spend on {card.latest_day.isoformat()}: {format_usd(card.spend.low)} – "
            f"{format_usd(card.spend.high)} (a range: OpenRouter does not publish the prompt/completion split)"
        )
    lines += ["", f"Source day {card.latest_day.isoformat()} (UTC, complete) · data as of {format_as_of(card.as_of)}"]
    lines.append(attribution(card.as_of))
    return "\n".join(lines) + "\n"


def render_matches(matches: Sequence[Match]) -> str:
    if not matches:
        return 'No model matches. Try part of a name ("flash"), an author ("deepseek") or a permaslug.\n'
    table = [["Model", "Permaslug", "Author", "Latest"]]
    table += [[m.name, m.permaslug, m.author, f"#{m.latest_rank}" if m.latest_rank else "below #50"] for m in matches]
    return "\n".join(_aligned(table, [False, False, False, True])) + "\n"
