"""The model catalogue: ``GET /api/v1/models`` → display name, author, pricing, context length, open weights.

Lenient by design: an entry that does not parse is skipped (models missing from the catalogue still work, with
names derived from their permaslug), so catalogue drift never stops rankings from being stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.sources.batch import json_of
from bot.sources.errors import SchemaError
from bot.sources.marks import SourceMarks
from bot.sources.retry import Fetcher
from digests.model import ModelInfo
from digests.names import catalogue_name

PATH = "/api/v1/models"


def _price(pricing: Any, key: str) -> float | None:
    try:
        value = float(pricing[key])
    except (TypeError, KeyError, ValueError):
        return None
    return value if value >= 0 else None


def model_info_of(entry: Any) -> ModelInfo | None:
    """One catalogue entry as ``ModelInfo`` keyed by its ``canonical_slug``; ``None`` if it cannot be read."""
    if not isinstance(entry, dict):
        return None
    slug, display = entry.get("canonical_slug") or entry.get("id"), entry.get("name")
    if not isinstance(slug, str) or not slug or not isinstance(display, str):
        return None
    name, author = catalogue_name(display)
    context = entry.get("context_length")
    hugging_face = entry.get("hugging_face_id")
    return ModelInfo(
        permaslug=slug,
        name=name or slug,
        author=author or slug.partition("/")[0],
        context_length=context if isinstance(context, int) and context > 0 else None,
        prompt_price=_price(entry.get("pricing"), "prompt"),
        completion_price=_price(entry.get("pricing"), "completion"),
        open_weights=bool(hugging_face) if hugging_face is not None else None,
        in_catalogue=True,
    )


@dataclass
class OpenRouterCatalogueClient:
    fetcher: Fetcher
    marks: SourceMarks = field(default_factory=SourceMarks)

    async def fetch(self) -> list[ModelInfo] | None:
        """The catalogue; ``None`` when it answered ``304 Not Modified`` to the validators of the last one."""
        response = await self.fetcher.get(PATH, headers=self.marks.conditional("catalogue"))
        assert response is not None
        if response.status_code == 304:
            return None
        payload = json_of(response)
        if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
            raise SchemaError("the model catalogue has no 'data' list")
        models = [info for entry in payload["data"] if (info := model_info_of(entry)) is not None]
        self.marks.remember("catalogue", response)
        return models
