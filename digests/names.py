"""Display names, authors and variant tags of models.

Pure: no I/O. The catalogue's ``name`` is ``"Author: Model"``; a model missing from the catalogue still gets a
readable name and author derived from its permaslug (``deepseek/deepseek-v4-flash-20260423:free``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from digests.model import OTHER, ModelInfo
from digests.safety import display_text

_DATE_SUFFIX = re.compile(r"-(20[0-9]{6})$")


def variant_tags(permaslug: str) -> tuple[str, ...]:
    """Variant tags such as ``free`` or ``beta`` (``…:free``); the source ranks variants as their own rows."""
    _, _, tags = permaslug.partition(":")
    return tuple(tag for tag in tags.split(":") if tag)


def base_permaslug(permaslug: str) -> str:
    """The permaslug without its variant tags: the key that joins to the catalogue's ``canonical_slug``."""
    return permaslug.partition(":")[0]


def derived_info(permaslug: str) -> ModelInfo:
    """Name and author read off the permaslug, for models the catalogue does not list."""
    if permaslug == OTHER:
        return ModelInfo(OTHER, "all other models", "")
    author, _, model = base_permaslug(permaslug).rpartition("/")
    return ModelInfo(permaslug, _DATE_SUFFIX.sub("", model) or model, author)


def catalogue_name(display: str) -> tuple[str, str]:
    """Split the catalogue's ``"DeepSeek: DeepSeek V4 Flash"`` into ``("DeepSeek V4 Flash", "DeepSeek")``."""
    author, sep, name = display.partition(": ")
    if not sep:
        return display.strip(), ""
    return name.strip(), author.strip()


def model_info(permaslug: str, catalogue: Mapping[str, ModelInfo]) -> ModelInfo:
    """The catalogue's entry for ``permaslug`` (variants share their base model's entry), or a derived one."""
    found = catalogue.get(permaslug) or catalogue.get(base_permaslug(permaslug))
    if found is None:
        return derived_info(permaslug)
    if found.permaslug == permaslug:
        return found
    return ModelInfo(
        permaslug,
        found.name,
        found.author,
        found.context_length,
        found.prompt_price,
        found.completion_price,
        found.open_weights,
        found.in_catalogue,
    )


def display_name(info: ModelInfo) -> str:
    """The name shown to people: the catalogue (or derived) name plus variant tags, ``Step 3.5 Flash [free]``.

    Names come from the source, so they are neutralised for display (``safety.display_text``); the stored value
    is unchanged."""
    tags = "".join(f" [{display_text(tag, 20)}]" for tag in variant_tags(info.permaslug))
    return display_text(info.name) + tags
