"""Fixtures for the real Kafka and Cassandra (``mdgw infra up``).

A missing server fails the test, never skips it.

Each test session gets its own keyspace and each test its own topics, so runs do not
see each other's data. Addresses come from the same env vars as the services.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from marketinfra.cassandra import connect
from marketinfra.kafka import make_admin
from marketinfra.schema import apply_schema
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration.support import create_topics_and_wait, require_server

_HINT = "start it with `mdgw infra up`, or run only unit tests with -m 'not integration'"


@pytest.fixture(scope="session")
def kafka_settings() -> KafkaSettings:
    settings = KafkaSettings(request_timeout_ms=5_000, delivery_timeout_ms=10_000)
    for address in settings.bootstrap_servers.split(","):
        require_server("Kafka", address.strip(), _HINT)
    return settings


@pytest.fixture(scope="session")
def cassandra_base_settings() -> CassandraSettings:
    settings = CassandraSettings()
    require_server("Cassandra", f"{settings.hosts()[0]}:{settings.port}", _HINT)
    return settings


@pytest.fixture(scope="session")
def cassandra_settings(cassandra_base_settings: CassandraSettings) -> CassandraSettings:
    """Settings pointing at a keyspace of this test session's own."""
    keyspace = f"test_{uuid.uuid4().hex[:12]}"
    return cassandra_base_settings.model_copy(update={"keyspace": keyspace})


@pytest.fixture(scope="session")
def cassandra_session(cassandra_settings: CassandraSettings) -> Iterator[Session]:
    cluster, session = connect(cassandra_settings, use_keyspace=False)
    apply_schema(session, cassandra_settings)
    yield session
    session.execute(f"DROP KEYSPACE IF EXISTS {cassandra_settings.keyspace}", timeout=60)
    cluster.shutdown()


@pytest.fixture(autouse=True)
def _servers_still_up(request: pytest.FixtureRequest) -> None:
    """Fail fast, naming the server, when one stopped between tests."""
    if "kafka_settings" in request.fixturenames:
        settings: KafkaSettings = request.getfixturevalue("kafka_settings")
        require_server(
            "Kafka",
            settings.bootstrap_servers.split(",")[0],
            "did it stop? see `mdgw infra logs kafka`",
        )
    if "cassandra_session" in request.fixturenames:
        base: CassandraSettings = request.getfixturevalue("cassandra_base_settings")
        require_server(
            "Cassandra",
            f"{base.hosts()[0]}:{base.port}",
            "did it stop? see `mdgw infra logs cassandra`",
        )


@pytest.fixture
def kafka_admin(kafka_settings: KafkaSettings) -> AdminClient:
    return make_admin(kafka_settings)


@pytest.fixture
def make_topic(kafka_admin: AdminClient) -> Iterator[Callable[[int], str]]:
    """Create a topic unique to this test with the given partition count; deleted afterwards."""
    created: list[str] = []

    def factory(partitions: int) -> str:
        name = f"test.{uuid.uuid4().hex[:12]}"
        created.append(name)
        create_topics_and_wait(kafka_admin, [name], partitions)  # usable, not just created
        return name

    yield factory
    if created:
        # short: when the broker died during the test, the test's own failure is what matters
        for future in kafka_admin.delete_topics(created, operation_timeout=5).values():
            future.result(timeout=5)
