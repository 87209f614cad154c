"""Moves the hot path's plain counters into the Prometheus metrics, a few times a second."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from prometheus_client import Counter as PromCounter

from feedhandlers import metrics
from feedhandlers.adapters.kafka_sink import KafkaTickSink
from feedhandlers.adapters.reconnecting import FeedConnection
from feedhandlers.pipeline import FeedCounters


class MetricsPublisher:
    def __init__(self, venue: str) -> None:
        self.venue = venue
        self._seen: Counter[tuple[int, str]] = Counter()

    def _add(self, metric: PromCounter, totals: Mapping[str, int], labelled: bool = True) -> None:
        """Increase ``metric`` by what each total grew since the last call."""
        for label, total in totals.items():
            key = (id(metric), label)
            delta = total - self._seen[key]
            if delta:
                self._seen[key] = total
                labels = (self.venue, label) if labelled else (self.venue,)
                metric.labels(*labels).inc(delta)

    def publish(
        self,
        counters: FeedCounters,
        sink: KafkaTickSink | None = None,
        connection: FeedConnection | None = None,
    ) -> None:
        self._add(metrics.MESSAGES_RECEIVED, counters.frames)
        self._add(metrics.TICKS_REJECTED, counters.rejected)
        self._add(metrics.SIZES_DROPPED, {"": counters.sizes_dropped}, labelled=False)
        self._add(metrics.GAPS, {"book_resync": counters.resyncs, "sequence": counters.gaps})
        if sink is not None:
            self._add(metrics.TICKS_PRODUCED, {"": sink.accepted}, labelled=False)
            self._add(metrics.TICKS_DROPPED, sink.dropped)
            self._add(metrics.DELIVERY_ERRORS, sink.delivery_errors)
            metrics.BUFFER_DEPTH.labels(self.venue).set(sink.depth())
        if connection is not None:
            self._add(metrics.RECONNECTS, connection.reconnects)
            metrics.CONNECTED.labels(self.venue).set(1 if connection.connected else 0)
            metrics.SECONDS_SINCE_LAST_MESSAGE.labels(self.venue).set(
                connection.seconds_since_last_frame()
            )
