"""The embedded default outputs: the console and one file per digest and format under ``./out/``, plus charts.

Files are written atomically (a temporary file renamed into place), so a crash never leaves half a digest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from digests.digest import Digest
from digests.model import DaySnapshot, ModelInfo
from digests.render.document import digest_document
from digests.render.text import render_text

EXTENSIONS = {"text": "txt", "markdown": "md", "json": "json"}


def rendered(digest: Digest, fmt: str) -> str:
    """The digest in one of ``text``, ``markdown`` or ``json``."""
    if fmt == "json":
        return json.dumps(digest_document(digest), indent=2, ensure_ascii=False) + "\n"
    if fmt in ("text", "markdown"):
        return render_text(digest, markdown=fmt == "markdown")
    raise ValueError(f"unknown format {fmt!r}: use text, markdown or json")


def digest_path(directory: Path, digest: Digest, fmt: str) -> Path:
    """``out/week-2026-10-03_2026-10-09.md``: named by kind and period."""
    return directory / f"{digest.kind}-{digest.period.slug()}.{EXTENSIONS[fmt]}"


def write_atomically(path: Path, content: str | bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    data = content.encode() if isinstance(content, str) else content
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def write_charts(
    digest: Digest, history: Sequence[DaySnapshot], catalogue: Mapping[str, ModelInfo], directory: Path
) -> list[Path]:
    """The digest's charts (bump, share, and a sparkline of its #1), each as PNG with its alt text beside it
    (``….alt.txt``)."""
    from digests.render.charts import digest_charts

    stem = f"{digest.kind}-{digest.period.slug()}"
    written = []
    for name, chart in digest_charts(digest, history, catalogue).items():
        write_atomically(directory / f"{stem}-{name}.png", chart.png)
        write_atomically(directory / f"{stem}-{name}.alt.txt", chart.alt + "\n")
        written += [directory / f"{stem}-{name}.png", directory / f"{stem}-{name}.alt.txt"]
    return written


def write_digest_files(digest: Digest, directory: Path, formats: Iterable[str]) -> list[Path]:
    """Write the digest once per format; returns the paths written."""
    written = []
    for fmt in formats:
        path = digest_path(directory, digest, fmt)
        write_atomically(path, rendered(digest, fmt))
        written.append(path)
    return written
