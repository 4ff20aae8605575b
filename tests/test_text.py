"""Snapshot tests of the text, Markdown and JSON renderings, on a hand-built history.

Set ``UPDATE_SNAPSHOTS=1`` to rewrite the files in ``tests/snapshots/`` after an intended change, then review the
diff before committing.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from bot.outputs import rendered
from digests.digest import Digest, build_digest
from digests.model import DaySnapshot, DigestSettings, ModelInfo
from digests.numbers import format_change, format_share, format_tokens

SNAPSHOTS = Path(__file__).parent / "snapshots"
AS_OF = datetime(2026, 10, 11, 0, 27, tzinfo=UTC)
CATALOGUE = {
    "deepseek/deepseek-v4.1-flash-20260910": ModelInfo(
        "deepseek/deepseek-v4.1-flash-20260910", "DeepSeek V4.1 Flash", "DeepSeek", 163_840, 1e-7, 4e-7, True, True
    ),
    "anthropic/claude-opus-5-20260723": ModelInfo(
        "anthropic/claude-opus-5-20260723", "Claude Opus 5", "Anthropic", 200_000, 1.5e-5, 7.5e-5, False, True
    ),
}


def history() -> list[DaySnapshot]:
    base = {
        "deepseek/deepseek-v4.1-flash-20260910": 5_650_000_000_000,
        "z-ai/glm-5.3-flash-20260826": 1_724_149_948_224,
        "anthropic/claude-opus-5-20260723": 822_800_000_000,
        "stepfun/step-3.5-flash:free": 400_000_000_000,
        "qwen/qwen3.8-flash-20260826": 66_389_840_008,
    }
    days = []
    for i in range(14):
        tokens = {slug: count + i * 1_000_000_000 for slug, count in base.items()}
        if i >= 12:
            tokens["stepfun/step-5-preview-20261008"] = 2_000_000_000_000
        if i % 7 == 3:
            del tokens["qwen/qwen3.8-flash-20260826"]
        day = date(2026, 9, 26) + timedelta(days=i)
        days.append(DaySnapshot.of(day, [*tokens.items(), ("other", 1_666_000_000_000)], AS_OF))
    return days


def digest(kind: str) -> Digest:
    return build_digest(kind, history(), CATALOGUE, DigestSettings(top_n=3, jump_threshold=2, list_size=5))


def check_snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"missing snapshot {path}: run with UPDATE_SNAPSHOTS=1 and review it"
    assert actual == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", ["day", "week"])
@pytest.mark.parametrize(("fmt", "ext"), [("text", "txt"), ("markdown", "md"), ("json", "json")])
def test_renderings_match_snapshots(kind: str, fmt: str, ext: str) -> None:
    """Each rendering of the day and week digests matches its reviewed snapshot."""
    check_snapshot(f"{kind}.{ext}", rendered(digest(kind), fmt))


@pytest.mark.parametrize("fmt", ["text", "markdown"])
@pytest.mark.parametrize("kind", ["day", "week"])
def test_every_rendering_carries_the_honest_labels(kind: str, fmt: str) -> None:
    """Source-day label with as_of, unit and period, caveats with a link, and the attribution line."""
    text = rendered(digest(kind), fmt)
    assert "(UTC, complete)" in text and "data as of 2026-10-11 00:27 UTC" in text
    assert "Source: OpenRouter (openrouter.ai/rankings), as of 2026-10-11 00:27 UTC. Licensed under CC BY 4.0." in text
    assert "Caveats (full text: https://openrouter.ai/rankings)" in text
    if kind == "day":
        assert "tokens on 2026-10-09" in text and "Run-rate (day × 30), an estimate" in text
    else:
        assert "tokens over 7 days" in text and "avg/day" in text.lower()


def test_json_document_is_complete() -> None:
    """The JSON export carries period, source days, as_of, every row's rank, previous rank, tokens, share, movement."""
    document = json.loads(rendered(digest("week"), "json"))
    assert document["schema"] == "rankbot.digest/v1"
    assert document["period"]["source_days"][0] == "2026-10-03"
    assert document["as_of"] == "2026-10-11T00:27:00Z"
    row = document["rows"][0]
    assert {"rank", "previous_rank", "tokens", "share", "movement", "marker", "chart"} <= row.keys()
    assert document["attribution"].startswith("Source: OpenRouter")


@pytest.mark.parametrize(
    ("value", "expected"),
    [(4_600_000_000_000, "4.6T"), (822_800_000_000, "822.8B"), (759_600_000_000, "759.6B"), (999_960_000, "1.0B"),
     (12_345_678, "12.3M"), (1_500, "1.5K"), (999, "999"), (0, "0")],
)  # fmt: skip
def test_token_numbers(value: int, expected: str) -> None:
    assert format_tokens(value) == expected


def test_shares_and_changes() -> None:
    assert format_share(0.2993197) == "29.9 %"
    assert format_share(0.00026) == "0.03 %"
    assert format_change(0.41) == "+41 %"
    assert format_change(-0.052) == "-5.2 %"
    assert format_change(None) == "n/a"
