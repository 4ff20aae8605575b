"""Charts as PNG bytes with alt text: the bump chart, the share chart and a model's sparkline.

matplotlib (Agg, object API, no pyplot state) is imported on first use, so commands that draw nothing do not pay for
it. Rendering is deterministic: matplotlib's default style with a fixed font (DejaVu Sans, shipped with matplotlib),
no timestamps or version in the PNG, so snapshot tests can compare images. Colours are Paul Tol's colour-blind-safe
"muted" palette, and every line also has its own marker, so no reader depends on colour alone.
Pure: values in, bytes out; no files, no clock.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from digests.digest import Digest
from digests.model import DaySnapshot, ModelInfo
from digests.numbers import format_tokens
from digests.render.alt_text import bump_alt, share_alt, sparkline_alt
from digests.series import BumpSeries, ShareSeries, Sparkline, bump_series, share_series, sparkline

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 200
CHAT_SIZE = (6.0, 3.375)  # inches: 1200 × 675 px at 200 dpi
SPARK_SIZE = (3.0, 0.8)  # 600 × 160 px: room for the name, the dates and the attribution
PALETTE = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499", "#000000")
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "*")
TEXT_CONTRAST = 4.5
"""WCAG AA for normal text: every label drawn in a line's colour reads on the white background."""
REST = "#BBBBBB"
OTHER_COLOUR = "#777777"
GAP = "#EEEEEE"
STYLE: dict[Any, Any] = {
    "font.family": "DejaVu Sans",
    "font.size": 6.5,
    "axes.edgecolor": "#888888",
    "axes.linewidth": 0.6,
    "xtick.major.width": 0.6,
    "ytick.major.width": 0.6,
    "xtick.labelsize": 5.5,
    "ytick.labelsize": 5.5,
    "svg.hashsalt": "rankbot",
    "path.simplify": False,
}


def _luminance(colour: str) -> float:
    """WCAG 2 relative luminance of ``#RRGGBB``."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str = "#FFFFFF") -> float:
    """WCAG 2 contrast ratio, from 1 (none) to 21."""
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def readable(colour: str, ratio: float = TEXT_CONTRAST) -> str:
    """``colour``, darkened (towards black, same hue) until text in it has ``ratio`` contrast on white."""
    red, green, blue = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    shade = colour
    for step in range(1, 21):
        if contrast(shade) >= ratio:
            return shade
        keep = 1 - step / 20
        shade = f"#{round(red * keep):02X}{round(green * keep):02X}{round(blue * keep):02X}"
    return "#000000"  # pragma: no cover - black always has the contrast


TEXT_PALETTE = tuple(readable(colour) for colour in PALETTE)
"""The palette as text colours: the pale ones (sand, cyan) darkened to read on white."""


@dataclass(frozen=True, slots=True)
class Chart:
    png: bytes
    alt: str
    width: int
    height: int


@contextmanager
def _figure(size: tuple[float, float]) -> Iterator[Figure]:
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    with matplotlib.style.context("default"), matplotlib.rc_context(STYLE):
        figure = Figure(figsize=size, dpi=DPI)
        FigureCanvasAgg(figure)
        yield figure


PNG_COLOURS = 128
"""Colours kept in each chart's PNG: a palette image reads the same (flat colours, anti-aliased text) at about a
third of the bytes, which every email, chat upload and page view carries."""


def _png(figure: Figure) -> bytes:
    from PIL import Image

    drawn = io.BytesIO()
    figure.savefig(drawn, format="png", dpi=DPI, metadata={"Software": None})
    drawn.seek(0)
    with Image.open(drawn) as image:
        palette = image.convert("RGB").quantize(PNG_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")  # optimize=True: 7 % smaller, twice the time
    return buffer.getvalue()


def _chart(figure: Figure, alt: str, size: tuple[float, float]) -> Chart:
    return Chart(_png(figure), alt, round(size[0] * DPI), round(size[1] * DPI))


def _labels(figure: Figure, title: str, subtitle: str, footer: str) -> None:
    figure.text(0.015, 0.965, title, fontsize=8.5, fontweight="bold", va="top")
    figure.text(0.015, 0.905, subtitle, fontsize=5.8, color="#444444", va="top")
    figure.text(0.015, 0.02, footer, fontsize=5.2, color="#444444", va="bottom")


def _short(name: str, width: int = 26) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _day_ticks(axes: Any, days: Sequence[Any]) -> None:
    axes.set_xticks(range(len(days)))
    axes.set_xticklabels([day.strftime("%m-%d") for day in days])
    axes.set_xlim(-0.5, len(days) - 0.5)


def _gaps(axes: Any, available: Sequence[bool], label_y: float) -> None:
    for index, has in enumerate(available):
        if not has:
            axes.axvspan(index - 0.5, index + 0.5, color=GAP, zorder=0, linewidth=0)
            axes.text(index, label_y, "no data", rotation=90, ha="center", va="center", fontsize=5, color="#888888")


def rank_ticks(deepest: int) -> list[int]:
    """The ranks marked on the bump chart's y axis, down to ``deepest``."""
    return [tick for tick in (1, 5, 10, 20, 30, 40, 50) if tick <= deepest]


def bump_chart(series: BumpSeries) -> Chart:
    """Rank by day of the digest's top models; gaps where a model was below #50 or the source has no data."""
    with _figure(CHAT_SIZE) as figure:
        axes = figure.add_axes((0.205, 0.13, 0.565, 0.7))
        present = [rank for line in series.lines for rank in line.ranks if rank is not None]
        deepest = min(50, max([10, *present]))
        axes.set_ylim(deepest + 0.6, 0.4)
        ticks = rank_ticks(deepest)
        axes.set_yticks(ticks)
        axes.set_yticklabels([f"#{tick}" for tick in ticks])
        axes.tick_params(axis="y", length=2, pad=1.5, labelsize=5, labelcolor="#555555")
        _day_ticks(axes, series.days)
        axes.grid(axis="y", color="#DDDDDD", linewidth=0.4)
        axes.set_axisbelow(True)
        if series.period_first in series.days and series.days.index(series.period_first) > 0:
            split = series.days.index(series.period_first) - 0.5
            axes.axvspan(-0.5, split, color="#F6F6F6", zorder=0, linewidth=0)
            axes.text(split / 2 - 0.25, deepest + 0.3, "previous period", fontsize=5, color="#888888", ha="center")
        _gaps(axes, series.available, (deepest + 1) / 2)
        last = len(series.days) - 1
        for line in series.lines:
            colour, marker = PALETTE[line.colour % len(PALETTE)], MARKERS[line.colour % len(MARKERS)]
            text_colour = TEXT_PALETTE[line.colour % len(PALETTE)]
            ys = [math.nan if rank is None else rank for rank in line.ranks]
            axes.plot(range(len(ys)), ys, color=colour, marker=marker, markersize=2.6, linewidth=1.3)
            shown = [i for i, rank in enumerate(line.ranks) if rank is not None]
            if not shown:
                continue
            first, final = shown[0], shown[-1]
            tag = f" {line.marker}" if line.marker else ""
            left_x = -1.35 if first == 0 else first - 0.3  # left of the rank ticks
            left = f"#{line.ranks[first]} {_short(line.name, 22)}"
            axes.text(left_x, ys[first], left, ha="right", va="center", fontsize=5.2, color=text_colour, clip_on=False)
            right_x = last + 0.7 if final == last else final + 0.3
            axes.text(
                right_x,
                ys[final],
                f"#{line.ranks[final]} {_short(line.name, 22)}{tag}",
                ha="left",
                va="center",
                fontsize=5.2,
                color=text_colour,
                fontweight="bold" if tag else "normal",
                clip_on=False,
            )
        _labels(figure, series.title, series.subtitle, series.footer)
        return _chart(figure, bump_alt(series), CHAT_SIZE)


def share_chart(series: ShareSeries) -> Chart:
    """Stacked share of all tokens per day: the top models, the rest of the top 50, and everything else."""
    with _figure(CHAT_SIZE) as figure:
        axes = figure.add_axes((0.08, 0.13, 0.62, 0.7))
        _day_ticks(axes, series.days)
        axes.set_ylim(0, 1)
        axes.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
        axes.set_yticklabels(["0%", "25%", "50%", "75%", "100%"])
        xs = range(len(series.days))
        bottoms = [0.0] * len(series.days)
        stacks = [*zip(series.names, series.shares, strict=True)]
        stacks += [("rest of the top 50", series.rest_of_list), ("all other models", series.other)]
        own = series.colours or tuple(range(len(series.names)))
        colours = [*(PALETTE[index % len(PALETTE)] for index in own), REST, OTHER_COLOUR]
        for (name, values), colour in zip(stacks, colours, strict=True):
            heights = [value or 0.0 for value in values]
            axes.bar(xs, heights, bottom=bottoms, color=colour, width=0.8, label=_short(name, 30), linewidth=0)
            bottoms = [bottom + height for bottom, height in zip(bottoms, heights, strict=True)]
        for index in xs:
            top = series.top_share(index)
            if top is not None:
                axes.text(index, top + 0.015, f"{top:.0%}", ha="center", va="bottom", fontsize=4.8, color="#222222")
        _gaps(axes, [series.other[i] is not None for i in xs], 0.5)
        axes.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=5, frameon=False, reverse=True)
        _labels(figure, series.title, series.subtitle, series.footer)
        return _chart(figure, share_alt(series), CHAT_SIZE)


def sparkline_chart(spark: Sparkline) -> Chart:
    """A model's rank over 30 days (line, #1 at the top) over its daily tokens (light bars), named and dated, with
    the attribution: small enough for a message, complete on its own."""
    with _figure(SPARK_SIZE) as figure:
        box = (0.02, 0.2, 0.7, 0.5)
        volume = figure.add_axes(box)
        volume.bar(range(len(spark.days)), [t or 0 for t in spark.tokens], color="#DDE6F0", width=0.8, linewidth=0)
        volume.set_axis_off()
        volume.set_xlim(-0.5, len(spark.days) - 0.5)
        ranks = figure.add_axes(box, sharex=volume)
        ranks.patch.set_alpha(0)
        present = [r for r in spark.ranks if r is not None]
        deepest = max([*present, 10])
        ranks.set_ylim(deepest + 1, 0)
        ranks.plot(
            range(len(spark.ranks)),
            [math.nan if r is None else r for r in spark.ranks],
            color=PALETTE[0],
            linewidth=1.4,
        )
        ranks.set_axis_off()
        first, last = spark.days[0], spark.days[-1]
        figure.text(0.02, 0.96, _short(spark.name, 40), fontsize=5.4, fontweight="bold", va="top")
        figure.text(
            0.02,
            0.8,
            f"rank (line) and tokens (bars) by day, {first:%Y-%m-%d} → {last:%Y-%m-%d} (UTC)",
            fontsize=4.2,
            color="#444444",
            va="top",
        )
        latest = next((r for r in reversed(spark.ranks) if r is not None), None)
        tokens = next(((t, d) for t, d in zip(reversed(spark.tokens), reversed(spark.days), strict=True) if t), None)
        label = f"#{latest}" if latest is not None else "below #50"
        figure.text(0.76, 0.55, label, fontsize=9, fontweight="bold", color=TEXT_PALETTE[0], va="center")
        if tokens is not None:
            figure.text(0.76, 0.25, f"{format_tokens(tokens[0])} on {tokens[1]:%m-%d}", fontsize=5, color="#444444")
        figure.text(0.02, 0.03, spark.footer, fontsize=3.6, color="#444444", va="bottom")
        return _chart(figure, sparkline_alt(spark), SPARK_SIZE)


def digest_charts(
    digest: Digest, history: Sequence[DaySnapshot], catalogue: Mapping[str, ModelInfo]
) -> dict[str, Chart]:
    """Every chart of a digest, by name: ``bump``, ``share`` and (when it lists a model) ``sparkline-1``, the
    sparkline of its #1."""
    charts = {"bump": bump_chart(bump_series(digest, history)), "share": share_chart(share_series(digest, history))}
    if digest.rows:
        charts["sparkline-1"] = sparkline_chart(
            sparkline(digest.rows[0].permaslug, history, catalogue, digest.period.last)
        )
    return charts
