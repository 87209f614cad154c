import os
import subprocess
import sys
import uuid

from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from marketinfra.settings import KafkaSettings
from marketinfra.topics import ChangeKind, TopicSpec, apply_topics


def _specs() -> tuple[TopicSpec, TopicSpec]:
    suffix = uuid.uuid4().hex[:10]
    return (
        TopicSpec(f"test.ticks.{suffix}", 4, 3_600_000, "EXCHANGE|SYMBOL", "PriceUpdate"),
        TopicSpec(f"test.orders.{suffix}", 2, 7_200_000, "order_id", "OrderStatusUpdate"),
    )


def test_apply_creates_then_changes_nothing(
    kafka_admin: AdminClient, kafka_settings: KafkaSettings
) -> None:
    specs = _specs()
    try:
        first = apply_topics(kafka_admin, specs, replication_factor=1)
        assert {change.kind for change in first} == {ChangeKind.CREATED}
        second = apply_topics(kafka_admin, specs, replication_factor=1)
        assert [change.kind for change in second] == [ChangeKind.UNCHANGED, ChangeKind.UNCHANGED]

        metadata = kafka_admin.list_topics(timeout=10)
        assert len(metadata.topics[specs[0].name].partitions) == 4
        resource = ConfigResource(ResourceType.TOPIC, specs[0].name)
        config = kafka_admin.describe_configs([resource])[resource].result(timeout=10)
        assert config["retention.ms"].value == "3600000"
        assert config["compression.type"].value == "lz4"
    finally:
        for future in kafka_admin.delete_topics([spec.name for spec in specs]).values():
            future.result(timeout=15)


def test_apply_grows_partitions_and_realigns_config(kafka_admin: AdminClient) -> None:
    ticks, _ = _specs()
    try:
        apply_topics(kafka_admin, [ticks], replication_factor=1)
        grown = TopicSpec(ticks.name, 6, 1_800_000, ticks.key, ticks.value)
        changes = apply_topics(kafka_admin, [grown], replication_factor=1)
        assert [change.kind for change in changes] == [
            ChangeKind.PARTITIONS_ADDED,
            ChangeKind.CONFIG_ALTERED,
        ]
        assert len(kafka_admin.list_topics(timeout=10).topics[ticks.name].partitions) == 6
    finally:
        kafka_admin.delete_topics([ticks.name])[ticks.name].result(timeout=15)


def test_mdgw_topics_apply_declares_the_product_topics(kafka_settings: KafkaSettings) -> None:
    # The product topics are shared by every test run; applying them is idempotent by design.
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, "-m", "mdgw", "topics", "apply"],
            env=dict(os.environ), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    for name in (
        "ticks.raw.v2",
        "ticks.raw.v2.dlq",
        "trades.executed.v2",
        "orders.lifecycle.v2",
        "positions.updates.v2",
    ):
        assert f"{name}: unchanged" in result.stdout
