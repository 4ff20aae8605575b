"""What a rankings source hands the poller: validated days plus how far the source says days are complete."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import httpx

from bot.sources.errors import SchemaError
from digests.days import PayloadError, ValidatedDays, validate_rows


@dataclass(frozen=True, slots=True)
class SourceBatch:
    """One fetched window. ``reported_through`` is the last day the source reports as completed."""

    source: str
    """``api`` or ``exports``: which OpenRouter source answered."""
    validated: ValidatedDays
    reported_through: date
    as_of: datetime
    window: tuple[date, date]
    notes: tuple[str, ...] = ()


def json_of(response: httpx.Response) -> Any:
    """The JSON body, or a ``SchemaError`` naming what came instead (an HTML page, truncated JSON)."""
    text = response.text
    if text.lstrip()[:1] == "<" or "html" in response.headers.get("content-type", ""):
        raise SchemaError(
            f"expected JSON from {response.url.path} but got an HTML page (HTTP {response.status_code}); "
            "nothing was stored"
        )
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SchemaError(
            f"the answer from {response.url.path} is not valid JSON ({error.msg} at byte {error.pos}: "
            "truncated?); nothing was stored"
        ) from None


def parse_as_of(value: object, where: str) -> datetime:
    """An ISO-8601 timestamp such as ``2026-05-12T02:00:00.000Z``, timezone-aware."""
    if not isinstance(value, str):
        raise SchemaError(f"{where} is missing or not a string")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SchemaError(f"{where} {value!r} is not an ISO-8601 timestamp") from None
    if moment.tzinfo is None:
        raise SchemaError(f"{where} {value!r} has no time zone")
    return moment


def validated(rows: Sequence[Mapping[str, object]], as_of: datetime) -> ValidatedDays:
    """Validate a response's rows; a payload that cannot be attributed to days is a ``SchemaError``."""
    try:
        return validate_rows(rows, as_of)
    except PayloadError as error:
        raise SchemaError(str(error)) from None
