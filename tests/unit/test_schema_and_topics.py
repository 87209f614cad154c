from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import ConfigResource

from marketinfra.schema import cql_files, keyspace_cql, split_statements
from marketinfra.settings import CassandraSettings
from marketinfra.topics import ALL_TOPICS, TICKS_RAW, ChangeKind, TopicSpec, apply_topics

REPO_CQL = Path(__file__).resolve().parents[2] / "cql"


def test_split_statements_drops_comments_but_not_quoted_dashes() -> None:
    text = "-- header\nCREATE TABLE t (a text) -- trailing\n  WITH comment = 'a -- b';\n\nSELECT 1;"
    assert split_statements(text) == [
        "CREATE TABLE t (a text)\n  WITH comment = 'a -- b'",
        "SELECT 1",
    ]


def test_every_cql_file_is_idempotent_and_unqualified() -> None:
    files = cql_files(REPO_CQL)
    assert [path.name[:3] for path in files] == sorted(path.name[:3] for path in files)
    for path in files:
        for statement in split_statements(path.read_text()):
            assert "IF NOT EXISTS" in statement, path.name
            assert "market_data." not in statement, f"{path.name}: tables are keyspace-relative"
            assert "dclocal_read_repair_chance" not in statement, "removed in Cassandra 4.0"


def test_tick_data_declares_twcs_lz4_and_ttl() -> None:
    text = (REPO_CQL / "001_tick_data.cql").read_text()
    for option in (
        "TimeWindowCompactionStrategy",
        "'HOURS'",
        "LZ4Compressor",
        "0.01",
        "'99p'",
        "7776000",
    ):
        assert option in text


def test_keyspace_replication_follows_settings() -> None:
    local = CassandraSettings(keyspace="ks")
    assert "'SimpleStrategy', 'replication_factor': 1" in keyspace_cql(local)
    multi_dc = CassandraSettings(
        keyspace="ks",
        replication_strategy="NetworkTopologyStrategy",
        datacenter_replication="ldn:3,nyc:3",
    )
    assert "'NetworkTopologyStrategy', 'ldn': 3, 'nyc': 3" in keyspace_cql(multi_dc)


def test_keyspace_must_be_a_plain_identifier() -> None:
    with pytest.raises(ValueError, match="plain CQL identifier"):
        CassandraSettings(keyspace="x; DROP KEYSPACE y")


def test_topics_are_declared_once_with_keys() -> None:
    names = [spec.name for spec in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert {
        "ticks.raw.v2",
        "ticks.raw.v2.dlq",
        "trades.executed.v2",
        "orders.lifecycle.v2",
        "positions.updates.v2",
    } == set(names)
    assert TICKS_RAW.key == "EXCHANGE|SYMBOL"


def test_min_insync_replicas_follows_replication() -> None:
    assert TICKS_RAW.config(1)["min.insync.replicas"] == "1"
    assert TICKS_RAW.config(3)["min.insync.replicas"] == "2"


class _LaggingAdmin:
    """An AdminClient whose first metadata answer misses a topic that already exists (what a
    broker answers right after a create, before its metadata caught up with the controller)."""

    def __init__(self, spec: TopicSpec) -> None:
        self.spec = spec
        self.lists = 0

    def list_topics(self, topic: str | None = None, timeout: float = 0) -> SimpleNamespace:
        self.lists += 1
        if self.lists == 1:
            return SimpleNamespace(topics={})
        partitions = dict.fromkeys(range(self.spec.partitions))
        found = SimpleNamespace(error=None, partitions=partitions)
        return SimpleNamespace(topics={self.spec.name: found})

    def create_topics(self, topics: list[object], **_: object) -> dict[str, Future[None]]:
        failed: Future[None] = Future()
        error = KafkaError(KafkaError.TOPIC_ALREADY_EXISTS, "already exists")
        failed.set_exception(KafkaException(error))
        return {self.spec.name: failed}

    def describe_configs(self, resources: list[ConfigResource]) -> dict[object, Future[object]]:
        wanted = self.spec.config(1)
        described: Future[object] = Future()
        described.set_result({k: SimpleNamespace(value=v) for k, v in wanted.items()})
        return {resources[0]: described}


def test_a_topic_that_looked_missing_but_exists_is_aligned_not_an_error() -> None:
    admin = _LaggingAdmin(TICKS_RAW)
    changes = apply_topics(admin, [TICKS_RAW], replication_factor=1)  # type: ignore[arg-type]
    assert [change.kind for change in changes] == [ChangeKind.UNCHANGED]
