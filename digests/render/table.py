"""The rankings as an aligned text table, for the chat platforms' code blocks (Slack, Discord): the digest's rows
from its JSON document, and a ``/rankings`` view's rows. Each platform passes how it makes a name safe inside its
code block. Pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from digests.numbers import format_share, format_tokens
from digests.safety import display_text
from digests.views import TopView

NAME_WIDTH = 28


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, ``…`` where it was cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def packed(lines: Sequence[str], room: int) -> list[str]:
    """Lines joined into as few chunks of at most ``room`` characters as they fit in, in order (a longer line is
    cut with "…"): how a chat message's text is split without cutting it."""
    chunks, chunk = [], ""
    for line in lines:
        line = cut(line, room)
        if chunk and len(chunk) + 1 + len(line) > room:
            chunks.append(chunk)
            chunk = ""
        chunk = f"{chunk}\n{line}" if chunk else line
    if chunk:
        chunks.append(chunk)
    return chunks


def aligned(rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    """Rows of cells as lines, each column padded to its widest cell (right-aligned where ``right`` says)."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(right))]
    return [
        "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)).rstrip()
        for cells in rows
    ]


def shown_name(row: Mapping[str, Any]) -> str:
    """A digest row's model as shown: its name (cleaned) and its tags."""
    tags = "".join(f" [{display_text(str(tag), 20)}]" for tag in row.get("tags", ()))
    return display_text(str(row.get("name") or row.get("permaslug") or "")) + tags


def digest_table(document: Mapping[str, Any], top: int, safe: Callable[[str], str]) -> list[str]:
    """The top ``top`` rows of a digest document; a week shows tokens per day (never a weekly total)."""
    week = document["kind"] == "week"
    rows = [["#", "Move", "Model", "Tokens" + ("/day" if week else ""), "Share"]]
    for row in document["rows"][:top]:
        bound = "≥" if row["tokens_lower_bound"] else ""
        tokens = format_tokens(row["tokens_per_day"] if week else row["tokens"])
        name = safe(cut(shown_name(row), NAME_WIDTH))
        rows.append([str(row["rank"]), row["marker"], name, bound + tokens, format_share(row["share"])])
    return aligned(rows, (True, False, False, True, True))


def view_table(view: TopView, safe: Callable[[str], str]) -> list[str]:
    """A ``/rankings`` top view's rows."""
    unit = "tokens/day" if view.kind == "week" else "tokens"
    rows = [["#", "Model", unit, "Share", "Move"]]
    for row in view.rows:
        tokens = ("≥" if row.lower_bound else "") + format_tokens(row.tokens_per_day)
        rows.append([str(row.rank), safe(cut(row.name, NAME_WIDTH)), tokens, format_share(row.share), row.marker])
    return aligned(rows, (True, False, True, True, False))
