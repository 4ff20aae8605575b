"""The console publisher: prints the message to standard output. It cannot tell whether an interrupted print was
seen, so after a crash the worker prints again (and logs that it did)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import TextIO

from bot.publishers.contract import Delivery
from digests.delivery import Destination


class ConsolePublisher:
    timeout = 1.0

    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        self.fmt = fmt
        self.stream = stream

    @classmethod
    def for_destination(cls, destination: Destination, environ: Mapping[str, str]) -> ConsolePublisher:
        return cls(str(destination.target.get("format", "text")))

    async def send(self, delivery: Delivery) -> str | None:
        stream = self.stream or sys.stdout
        stream.write(delivery.payloads[self.fmt])
        stream.write("\n")
        stream.flush()
        return None

    async def was_delivered(self, delivery: Delivery) -> bool | None:
        return None
