"""Generated rankings history in OpenRouter's magnitudes, for the demo, the tests and the benchmarks.

Deterministic for a given seed. The market grows over time; models launch, climb, plateau and fade; a few have
``:free`` variants; models near #50 churn, which gives drop-outs and re-entries; a challenger launched two thirds of
the way through takes #1 from the incumbent. Nothing here reads the real samples: only their shape is copied.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from digests.model import DaySnapshot, ModelInfo

AUTHORS = {  # permaslug prefix: (author's display name, model brand)
    "deepseek": ("DeepSeek", "DeepSeek"), "openai": ("OpenAI", "GPT"), "anthropic": ("Anthropic", "Claude"),
    "google": ("Google", "Gemini"), "x-ai": ("xAI", "Grok"), "qwen": ("Qwen", "Qwen"), "z-ai": ("Z.ai", "GLM"),
    "moonshotai": ("MoonshotAI", "Kimi"), "minimax": ("MiniMax", "MiniMax"), "mistralai": ("Mistral", "Mistral"),
    "meta-llama": ("Meta", "Llama"), "xiaomi": ("Xiaomi", "MiMo"), "tencent": ("Tencent", "Hunyuan"),
    "stepfun": ("StepFun", "Step"), "nvidia": ("NVIDIA", "Nemotron"), "cohere": ("Cohere", "Command"),
    "poolside": ("Poolside", "Laguna"), "inception": ("Inception", "Mercury"),
}  # fmt: skip
FAMILIES = ("flash", "pro", "mini", "coder", "chat", "reasoner", "turbo", "vision", "instruct", "max")
LIST_SIZE = 50


@dataclass(frozen=True, slots=True)
class SyntheticModel:
    permaslug: str
    display: str
    launch: int
    """Index of the launch day (may be negative: launched before the window)."""
    peak: float
    """Relative popularity at peak."""
    half_life: float
    open_weights: bool


def _models(count: int, days: int, rng: random.Random) -> list[SyntheticModel]:
    models: list[SyntheticModel] = []
    for index in range(count):
        author = list(AUTHORS)[index % len(AUTHORS)]
        family = FAMILIES[(index // len(AUTHORS)) % len(FAMILIES)]
        version = f"{1 + index // 40}.{index % 10}"
        author_name, brand = AUTHORS[author]
        # most models launched before the window, so every day has well over 50 live models
        launch = rng.randint(-3 * days, days - 5) if index % 4 == 3 else rng.randint(-3 * days, -10)
        stamp = (date(2026, 1, 1) + timedelta(days=launch % 300)).strftime("%Y%m%d")
        slug = f"{author}/{brand.lower()}-{version}-{family}-{stamp}"
        display = f"{author_name}: {brand} {version} {family.title()}"
        peak = rng.lognormvariate(0, 1.3)
        models.append(SyntheticModel(slug, display, launch, peak, rng.uniform(60, 400), index % 3 != 1))
        if index % 6 == 0:
            models.append(SyntheticModel(f"{slug}:free", f"{display} (free)", launch, peak * 0.35, 90, True))
    models = models[:count]
    # The incumbent #1 holds the top until a challenger launches two thirds of the way through.
    leader = models[0]
    models[0] = SyntheticModel(leader.permaslug, leader.display, -days, 12.0, 10_000, leader.open_weights)
    at = next(i for i, m in enumerate(models) if i > 0 and ":" not in m.permaslug)
    challenger = models[at]
    models[at] = SyntheticModel(
        challenger.permaslug, challenger.display, days * 2 // 3, 20.0, 10_000, challenger.open_weights
    )
    return models


def _popularity(model: SyntheticModel, day: int) -> float:
    age = day - model.launch
    if age < 0:
        return 0.0
    ramp = min(1.0, (age + 1) / 6)
    return model.peak * ramp * math.exp(-max(0, age - 20) / model.half_life)


@dataclass(frozen=True, slots=True)
class SyntheticHistory:
    days: tuple[DaySnapshot, ...]
    catalogue: tuple[ModelInfo, ...]
    models: tuple[SyntheticModel, ...]


def generate_history(
    end: date, days: int = 90, models: int = 60, seed: int = 7, end_total: float = 2.6e13
) -> SyntheticHistory:
    """``days`` complete days ending at ``end``, each with the top 50 of ``models`` permaslugs plus ``other``."""
    rng = random.Random(seed)
    universe = _models(models, days, rng)
    walk = [1.0] * len(universe)
    snapshots: list[DaySnapshot] = []
    for index in range(days):
        day = end - timedelta(days=days - 1 - index)
        scale = end_total * 0.5 ** ((days - 1 - index) / 90)
        walk = [w * math.exp(rng.gauss(0, 0.08)) for w in walk]
        weights = [_popularity(m, index) * w for m, w in zip(universe, walk, strict=True)]
        live = sorted(((wt, m.permaslug) for wt, m in zip(weights, universe, strict=True) if wt > 0), reverse=True)
        norm = sum(wt for wt, _ in live) or 1.0
        tokens = [(slug, max(1, int(scale * 0.93 * wt / norm))) for wt, slug in live]
        listed, rest = tokens[:LIST_SIZE], tokens[LIST_SIZE:]
        other = sum(count for _, count in rest) + int(scale * 0.05)
        as_of = datetime.combine(day + timedelta(days=1), time(1, 46), tzinfo=UTC)
        snapshots.append(DaySnapshot.of(day, [*listed, ("other", other)], as_of))
    catalogue = tuple(
        ModelInfo(
            m.permaslug,
            m.display.partition(": ")[2],
            m.display.partition(": ")[0],
            context_length=131_072 * (1 + i % 4),
            prompt_price=round(1e-7 * (1 + i % 30), 10),
            completion_price=round(4e-7 * (1 + i % 30), 10),
            open_weights=m.open_weights,
            in_catalogue=True,
        )
        for i, m in enumerate(universe)
        if ":" not in m.permaslug and i % 9 != 4  # a few models are missing from the catalogue, as in reality
    )
    return SyntheticHistory(tuple(snapshots), catalogue, tuple(universe))
