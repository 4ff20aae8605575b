"""Making untrusted text (model names and authors from the source) safe to show, without changing what is stored.

``display_text`` removes what can hide or reorder text (bidi overrides, zero-width and other invisible format
characters, control characters), folds line breaks, defuses mentions and truncates; ``markdown_text`` also escapes
Markdown. HTML escaping is the HTML renderer's job (``html.escape``).
Pure: no I/O.
"""

from __future__ import annotations

import re
import unicodedata

NAME_LIMIT = 80
ELLIPSIS = "…"

_MARKDOWN = re.compile(r"([\\`*_\[\]|<>~])")
"""Markdown that works mid-line: emphasis, code, links and images (via ``[``), tables, HTML, strikethrough."""
_SPACES = re.compile(r"\s+")


def _visible(character: str) -> bool:
    """False for control (Cc), format (Cf: bidi overrides, zero-width joiners...), surrogate and unassigned
    characters, which can hide, reorder or corrupt what the reader sees."""
    return unicodedata.category(character) not in ("Cc", "Cf", "Cs", "Cn", "Co")


def display_text(text: str, limit: int = NAME_LIMIT) -> str:
    """``text`` as one clean line of at most ``limit`` characters (``…`` when cut), with mentions defused."""
    cleaned = "".join(c if _visible(c) else (" " if c in "\n\r\t\v\f" else "") for c in text)
    cleaned = _SPACES.sub(" ", cleaned).strip()
    cleaned = cleaned.replace("@", "＠")  # a fullwidth at sign: reads the same, pings nobody on any platform
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + ELLIPSIS
    return cleaned or "(unnamed)"


def markdown_escape(text: str) -> str:
    """Backslash-escape what Markdown would act on mid-line, so a name cannot format, link or break a table."""
    return _MARKDOWN.sub(r"\\\1", text)


def markdown_text(text: str, limit: int = NAME_LIMIT) -> str:
    """``display_text``, then ``markdown_escape``."""
    return markdown_escape(display_text(text, limit))
