"""Aliases: an operator links an old permaslug to a new one when OpenRouter renames a model, so its history reads
as one line in charts, ranks and movements (DESIGN §3, Identity).

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from digests.model import DaySnapshot, ModelTokens


class AliasError(ValueError):
    """An alias that would loop or point a model at itself."""


def resolved(aliases: Mapping[str, str]) -> dict[str, str]:
    """Each old permaslug → the newest name at the end of its chain (``a → b → c`` gives ``a → c``, ``b → c``)."""
    final: dict[str, str] = {}
    for old in aliases:
        seen = [old]
        current = aliases[old]
        while current in aliases:
            if current in seen:
                raise AliasError(f"aliases loop: {' → '.join([*seen, current])}")
            seen.append(current)
            current = aliases[current]
        if current == old:
            raise AliasError(f"{old} cannot be an alias of itself")
        final[old] = current
    return final


def with_aliases(history: Iterable[DaySnapshot], aliases: Mapping[str, str]) -> tuple[DaySnapshot, ...]:
    """``history`` with every aliased permaslug renamed; a day that lists both names adds their tokens and is
    ranked again. Days without an aliased model are returned as they are."""
    names = resolved(aliases)
    if not names:
        return tuple(history)
    out = []
    for snapshot in history:
        if not any(row.permaslug in names for row in snapshot.rows):
            out.append(snapshot)
            continue
        tokens: dict[str, int] = {}
        for row in snapshot.rows:
            key = names.get(row.permaslug, row.permaslug)
            tokens[key] = tokens.get(key, 0) + row.tokens
        rows = tuple(
            ModelTokens(slug, count) for slug, count in sorted(tokens.items(), key=lambda item: (-item[1], item[0]))
        )
        out.append(replace(snapshot, rows=rows))
    return tuple(out)
