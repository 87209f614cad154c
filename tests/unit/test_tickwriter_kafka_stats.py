"""librdkafka statistics -> consumer lag per partition, on a (trimmed) recorded stats payload."""

import json

import pytest

from tickwriter.adapters.kafka_stats import LagGauges, PartitionOffsets, assigned_offsets, lags
from tickwriter.metrics import REGISTRY


def _partition(number: int, **fields: object) -> dict[str, object]:
    recorded = {  # librdkafka 2.x consumer stats, one partition, fields we do not read removed
        "partition": number, "desired": True, "fetch_state": "active", "app_offset": 5,
        "committed_offset": 2, "lo_offset": 0, "hi_offset": 5, "ls_offset": 5,
        "consumer_lag": 3, "consumer_lag_stored": 0,
    }  # fmt: skip
    return {**recorded, **fields}


def _stats(partitions: dict[str, dict[str, object]]) -> str:
    topics = {"ticks.raw": {"topic": "ticks.raw", "partitions": partitions}}
    return json.dumps({"name": "rdkafka#consumer-1", "type": "consumer", "topics": topics})


def test_lag_is_end_minus_committed_for_the_partitions_assigned_here() -> None:
    stats = _stats({
        "0": _partition(0),
        "1": _partition(1, committed_offset=-1001, consumer_lag=-1, lo_offset=2, hi_offset=9,
                        ls_offset=9),
        "2": _partition(2, desired=False, consumer_lag=-1),  # another member's
        "-1": _partition(-1, desired=False, consumer_lag=-1),  # the topic-level pseudo partition
    })  # fmt: skip
    offsets = assigned_offsets(stats)
    assert offsets == {
        ("ticks.raw", 0): PartitionOffsets(committed=2, end=5),
        ("ticks.raw", 1): PartitionOffsets(committed=2, end=9),  # no commit yet: from the start
    }
    assert lags(offsets, {}) == {("ticks.raw", 0): 3, ("ticks.raw", 1): 7}
    # while paused, the end asked of the broker is newer than the one in the statistics
    assert lags(offsets, {("ticks.raw", 0): 40}) == {("ticks.raw", 0): 38, ("ticks.raw", 1): 7}


class FakeConsumer:
    def get_watermark_offsets(
        self, partition: object, timeout: float, cached: bool
    ) -> tuple[int, int]:
        assert not cached, "paused partitions are not fetched: ask the broker"
        return (0, 900)


def test_gauges_follow_the_assignment_and_keep_growing_while_paused() -> None:
    gauges = LagGauges(refresh_interval_s=0)
    gauges.on_stats(_stats({"0": _partition(0), "7": _partition(7, consumer_lag=40)}))
    sample = REGISTRY.get_sample_value
    labels = {"topic": "ticks.raw", "partition": "7"}
    assert sample("tickwriter_consumer_lag_records", labels) == 3
    gauges.refresh_while_paused(FakeConsumer(), [("ticks.raw", 7)])  # type: ignore[arg-type]
    assert sample("tickwriter_consumer_lag_records", labels) == 898
    gauges.on_stats(_stats({"7": _partition(7)}))  # stale statistics do not undo it
    assert sample("tickwriter_consumer_lag_records", labels) == 898
    gauges.on_stats(_stats({"0": _partition(0, committed_offset=5)}))  # 7 was revoked
    assert sample("tickwriter_consumer_lag_records", labels) is None
    assert sample("tickwriter_consumer_lag_records", {**labels, "partition": "0"}) == 0


@pytest.mark.parametrize("payload", ["not json", "[]", '{"topics": []}'])
def test_unreadable_stats_are_ignored(payload: str) -> None:
    LagGauges().on_stats(payload)
