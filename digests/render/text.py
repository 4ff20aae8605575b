"""Plain-text and Markdown renderings of a ``Digest``.

Pure: value in, text out. Both renderings carry all of DESIGN §4: the source-day label with ``as_of``, figures with
their unit and period, the caveats with a link, the attribution line, and why each alert fired.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from digests.digest import Digest, DigestRow
from digests.names import display_name
from digests.numbers import format_as_of, format_share, format_tokens
from digests.safety import display_text, markdown_escape

NAME_WIDTH = 40
"""Longest model name shown in a table cell; longer names are cut with an ellipsis."""


def _name(row_name: str, tags: Sequence[str]) -> str:
    suffix = "".join(f" [{display_text(tag, 20)}]" for tag in tags)
    return display_text(row_name, NAME_WIDTH - len(suffix)) + suffix


def _heading(digest: Digest) -> str:
    kind = "daily" if digest.kind == "day" else "weekly"
    return f"OpenRouter model rankings — {kind} digest"


def _header_lines(digest: Digest) -> list[str]:
    lines = [f"{digest.period_label} · data as of {format_as_of(digest.as_of)}"]
    if digest.revision_note:
        lines.append(digest.revision_note)
    lines.append(digest.comparison_label)
    total = f"All models: {format_tokens(digest.total_tokens)} {digest.unit}"
    if digest.kind == "week":
        total += f" ({format_tokens(digest.total_tokens / digest.days_with_data)} avg/day)"
    total += f" · top {digest.settings.top_n}: {format_share(digest.top_n_share)} of tokens"
    if digest.open_weights_share is not None:
        total += f" · open-weights models: {format_share(digest.open_weights_share)}"
    lines.append(total)
    return lines


def _columns(digest: Digest) -> list[str]:
    if digest.kind == "day":
        return ["#", "Move", "Model", "Author", digest.unit.capitalize(), "Share", "Run-rate*"]
    return ["#", "Move", "Model", "Author", digest.unit.capitalize(), "Avg/day", "Share", "Days in top 50"]


def _cells(digest: Digest, row: DigestRow) -> list[str]:
    bound = "≥" if row.lower_bound else ""
    cells = [str(row.rank), row.movement.marker, _name(row.info.name, row.tags), display_text(row.info.author, 20)]
    cells.append(bound + format_tokens(row.tokens))
    if digest.kind == "day":
        return [*cells, format_share(row.share), format_tokens(row.run_rate)]
    per_day = bound + format_tokens(row.tokens_per_day)
    return [*cells, per_day, bound + format_share(row.share), f"{row.days_present}/{row.days_in_period}"]


def _other_cells(digest: Digest) -> list[str]:
    share = digest.other_tokens / digest.total_tokens if digest.total_tokens else 0.0
    cells = ["", "", "all other models", "", format_tokens(digest.other_tokens)]
    if digest.kind == "day":
        return [*cells, format_share(share), ""]
    return [*cells, format_tokens(digest.other_tokens / digest.days_with_data), format_share(share), ""]


def _table(digest: Digest) -> list[list[str]]:
    return [_columns(digest), *(_cells(digest, row) for row in digest.rows), _other_cells(digest)]


def _aligned(table: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    right = {0, *range(4, len(widths))}
    lines = []
    for row in table:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def _markdown_table(table: list[list[str]]) -> list[str]:
    """Markdown table; the model and author cells (text from the source) are escaped."""

    def line(cells: list[str]) -> str:
        escaped = [markdown_escape(c) if i in (2, 3) else c.replace("|", "\\|") for i, c in enumerate(cells)]
        return "| " + " | ".join(escaped) + " |"

    return [line(table[0]), "|" + "|".join("---" for _ in table[0]) + "|", *(line(row) for row in table[1:])]


def _highlights(digest: Digest, shown: Callable[[str], str]) -> list[str]:
    return [f"{c.title}: {shown(digest.name_of(c.permaslug))} — {c.detail}" for c in digest.callouts]


def _alerts(digest: Digest, shown: Callable[[str], str]) -> list[str]:
    return [f"{shown(digest.name_of(alert.permaslug))}: {alert.reason}" for alert in digest.alerts]


def _dropped(digest: Digest, shown: Callable[[str], str]) -> str:
    names = [f"{shown(display_name(d.info))} (was #{d.previous_rank})" for d in digest.dropped]
    return f"Dropped out of the top {digest.settings.list_size}: " + (", ".join(names) if names else "none")


def _footnotes(digest: Digest) -> list[str]:
    notes = []
    if digest.kind == "day":
        notes.append("* Run-rate (day × 30), an estimate.")
    if any(row.lower_bound for row in digest.rows):
        notes.append(
            f"≥ marks a lower bound: that model was below #50 on some of the {digest.days_with_data} days "
            "(see 'Days in top 50')."
        )
    return notes


def render_text(digest: Digest, *, markdown: bool = False) -> str:
    """The digest as plain text (aligned columns) or as Markdown (headings, a table, bullet lists)."""
    bullet = "- " if markdown else "  - "
    out: list[str] = [f"## {_heading(digest)}" if markdown else _heading(digest), ""]
    out += [line + ("  " if markdown else "") for line in _header_lines(digest)]
    shown: Callable[[str], str] = markdown_escape if markdown else str
    sections: list[tuple[str, list[str]]] = [
        ("Highlights", _highlights(digest, shown) or ["No headline movements."]),
        ("Why alerts fired", _alerts(digest, shown) or ["Nothing notable under the current thresholds."]),
    ]
    for title, items in sections:
        out += ["", f"### {title}" if markdown else f"{title}:", *(bullet + item for item in items)]
    out.append("")
    out += _markdown_table(_table(digest)) if markdown else _aligned(_table(digest))
    out += ["", _dropped(digest, shown), *_footnotes(digest)]
    out += ["", f"Caveats (full text: {digest.settings.caveats_url}):", *(bullet + c for c in digest.caveats)]
    out += ["", digest.attribution]
    return "\n".join(out) + "\n"
