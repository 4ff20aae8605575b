"""Every destination kind and the publisher that serves it, in one explicit mapping."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from bot.publishers.console import ConsolePublisher
from bot.publishers.contract import Publisher, RetryableError
from bot.publishers.files import FilePublisher
from bot.publishers.webhook import WebhookPublisher
from digests.delivery import Destination

Factory = Callable[[Destination, Mapping[str, str]], Publisher]


def publisher_factories(client: httpx.AsyncClient, channels: Mapping[str, Factory] | None = None) -> dict[str, Factory]:
    """Destination kind → how to build its publisher; ``channels`` adds the chat and mail kinds (``slack``…), whose
    factories the service builds from their configuration."""
    return {
        "console": ConsolePublisher.for_destination,
        "file": FilePublisher.for_destination,
        "webhook": WebhookPublisher.factory(client),
        **(channels or {}),
    }


class Publishers:
    """Builds (and caches) the publisher for each destination."""

    def __init__(self, factories: Mapping[str, Factory], environ: Mapping[str, str]) -> None:
        self.factories = factories
        self.environ = environ
        self._built: dict[tuple[str, str], Publisher] = {}

    def for_destination(self, destination: Destination) -> Publisher:
        key = (destination.name, repr(sorted(destination.target.items())))
        if key not in self._built:
            factory = self.factories.get(destination.kind)
            if factory is None:
                raise RetryableError(f"no publisher for destination kind {destination.kind!r} in this version")
            self._built[key] = factory(destination, self.environ)
        return self._built[key]
