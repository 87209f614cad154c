"""Consumer lag per partition: the partition's end minus the group's committed offset.

The tick writer commits only what is written, so this is the number of records not yet safely
in Cassandra. librdkafka's statistics (``stats_cb``, on the pipeline thread) give the committed
offset and the end of each assigned partition. While consumption is paused on a Cassandra
outage, nothing is fetched and the end they report goes stale, so the pipeline asks the broker
for the ends instead (``refresh_while_paused``), about once per statistics interval.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from tickwriter import metrics

log = structlog.get_logger(__name__)
PartitionKey = tuple[str, int]
_QUERY_BUDGET_S = 1.0  # at most this long asking for ends in one refresh


@dataclass(frozen=True, slots=True)
class PartitionOffsets:
    committed: int  # the group's committed offset; before any commit, where reading starts
    end: int  # the high watermark (last stable offset) as librdkafka last saw it; -1 unknown


def assigned_offsets(stats_json: str | bytes) -> dict[PartitionKey, PartitionOffsets]:
    """The offsets of every partition assigned to this consumer, from a statistics payload."""
    stats: Any = orjson.loads(stats_json)
    found: dict[PartitionKey, PartitionOffsets] = {}
    for topic, described in (stats.get("topics") or {}).items():
        for partition_text, partition in (described.get("partitions") or {}).items():
            number = int(partition_text)
            if number < 0 or not partition.get("desired", False):
                continue  # the topic-level pseudo partition, or not assigned to this process
            committed = int(partition.get("committed_offset", -1))
            if committed < 0:  # nothing committed yet: all of it, from the start, is to write
                committed = int(partition.get("lo_offset", -1))
            end = int(partition.get("ls_offset", partition.get("hi_offset", -1)))
            found[(str(topic), number)] = PartitionOffsets(committed, end)
    return found


def lags(
    offsets: dict[PartitionKey, PartitionOffsets], queried_ends: dict[PartitionKey, int]
) -> dict[PartitionKey, int]:
    """End minus committed per partition, using the newer of the reported and queried ends."""
    result = {}
    for key, position in offsets.items():
        end = max(position.end, queried_ends.get(key, -1))
        if end >= 0 and position.committed >= 0:
            result[key] = max(0, end - position.committed)
    return result


class LagGauges:
    """Keeps tickwriter_consumer_lag_records to the partitions this process consumes now."""

    def __init__(self, refresh_interval_s: float = 1.0) -> None:
        self._offsets: dict[PartitionKey, PartitionOffsets] = {}
        self._queried_ends: dict[PartitionKey, int] = {}
        self._shown: set[PartitionKey] = set()
        self._refresh_interval_s = refresh_interval_s
        self._refreshed_at = 0.0

    def on_stats(self, stats_json: str) -> None:
        try:
            self._offsets = assigned_offsets(stats_json)
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            log.warning("kafka_stats_unreadable")
            return
        self._queried_ends = {k: v for k, v in self._queried_ends.items() if k in self._offsets}
        self._show()

    def refresh_while_paused(self, consumer: Consumer, assigned: Iterable[PartitionKey]) -> None:
        """Ask the broker for the ends of the assigned partitions (not fetched while paused)."""
        now = time.monotonic()
        if now - self._refreshed_at < self._refresh_interval_s:
            return
        self._refreshed_at = now
        for topic, partition in assigned:
            if time.monotonic() - now > _QUERY_BUDGET_S:
                break  # Kafka is slow too: the rest next time, the pipeline must keep polling
            try:
                _low, end = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=1.0, cached=False
                )
            except KafkaException:
                continue
            self._queried_ends[(topic, partition)] = end
        self._show()

    def _show(self) -> None:
        current = lags(self._offsets, self._queried_ends)
        for topic, partition in self._shown - set(current):
            metrics.CONSUMER_LAG.remove(topic, str(partition))
        for (topic, partition), lag in current.items():
            metrics.CONSUMER_LAG.labels(topic, str(partition)).set(lag)
        self._shown = set(current)
