"""Prometheus metrics for ``/metrics``: counters and latencies kept in-process, and the outbox backlog read from
the database at scrape time (so every instance reports the shared queue)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

from storage.delivery import DeliveryStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _Backlog(Collector):
    def __init__(
        self, store: DeliveryStore, last_poll: Callable[[], float | None], is_leader: Callable[[], bool]
    ) -> None:
        self.store = store
        self.last_poll = last_poll
        self.is_leader = is_leader

    def collect(self) -> Iterator[Metric]:
        rows = GaugeMetricFamily(
            "rankbot_outbox_rows", "Outbox rows by state and destination kind.", labels=["state", "destination_kind"]
        )
        for (state, kind), count in sorted(self.store.backlog_by_kind().items()):
            rows.add_metric([state, kind], count)
        yield rows
        last = self.last_poll()
        yield GaugeMetricFamily(
            "rankbot_last_successful_poll_timestamp_seconds",
            "When the last poll succeeded (Unix time); 0 until one has (alert on time() - this).",
            last or 0.0,
        )
        yield GaugeMetricFamily(
            "rankbot_leader", "1 on the instance that runs the scheduler (polls and plans), else 0.", self.is_leader()
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.polls = Counter("rankbot_polls", "Polls of OpenRouter by outcome.", ["outcome"], registry=self.registry)
        self.rows_stored = Counter(
            "rankbot_rows_stored", "Ranked rows stored (new days and revisions).", registry=self.registry
        )
        self.rejected_days = Counter("rankbot_rejected_days", "Days rejected as malformed.", registry=self.registry)
        self.poll_seconds = Histogram("rankbot_poll_seconds", "Time per poll.", registry=self.registry)
        self.deliveries = Counter(
            "rankbot_deliveries",
            "Delivery tries by outcome and destination kind.",
            ["outcome", "destination_kind"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "rankbot_delivery_seconds", "Time per delivery try.", ["destination_kind"], registry=self.registry
        )

    def watch(self, store: DeliveryStore, last_poll: Callable[[], float | None], is_leader: Callable[[], bool]) -> None:
        """Report the shared outbox backlog, the last successful poll and leadership at each scrape."""
        self.registry.register(_Backlog(store, last_poll, is_leader))

    def delivered(self, outcome: str, kind: str, seconds: float) -> None:
        self.deliveries.labels(outcome, kind).inc()
        self.delivery_seconds.labels(kind).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
