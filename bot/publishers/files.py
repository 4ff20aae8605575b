"""The file publisher: one file per message and format in a folder, written atomically (temporary file, then
rename). A message is delivered exactly when all its files exist, which is also the delivery check."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

from bot.outputs import EXTENSIONS, write_atomically
from bot.publishers.contract import Delivery, RetryableError
from digests.delivery import Destination, Variant


def message_file_stem(delivery: Delivery) -> str:
    """``day-2026-11-19``, ``week-2026-11-13_2026-11-19-r2``, ``day-2026-11-19-quiet``, ``notice-late-2026-11-19``."""
    message = delivery.message
    if message.kind in ("notice", "watch"):
        return message.id.replace(":", "-")
    period = message.first_day.isoformat() if message.first_day else ""
    if message.last_day and message.last_day != message.first_day:
        period += f"_{message.last_day.isoformat()}"
    stem = f"{message.kind}-{period}"
    if message.revision > 1:
        stem += f"-r{message.revision}"
    if delivery.variant is Variant.LINE:
        stem += "-quiet"
    return stem


class FilePublisher:
    timeout = 10.0

    def __init__(self, directory: Path, formats: Sequence[str]) -> None:
        self.directory = directory
        self.formats = tuple(formats)

    @classmethod
    def for_destination(cls, destination: Destination, environ: Mapping[str, str]) -> FilePublisher:
        target = destination.target
        return cls(Path(str(target.get("directory", "out"))), list(target.get("formats", ["text"])))

    def paths(self, delivery: Delivery) -> list[Path]:
        stem = message_file_stem(delivery)
        return [self.directory / f"{stem}.{EXTENSIONS[fmt]}" for fmt in self.formats]

    def _write(self, delivery: Delivery) -> list[Path]:
        paths = self.paths(delivery)
        for fmt, path in zip(self.formats, paths, strict=True):
            write_atomically(path, delivery.payloads[fmt])
        return paths

    async def send(self, delivery: Delivery) -> str | None:
        try:
            paths = await asyncio.to_thread(self._write, delivery)
        except OSError as error:
            raise RetryableError(f"cannot write to {self.directory}: {error.strerror or error}") from error
        return str(paths[0])

    async def was_delivered(self, delivery: Delivery) -> bool | None:
        return all(path.exists() for path in self.paths(delivery))
