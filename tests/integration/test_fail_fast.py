"""A server that is down makes a test fail within seconds with a message naming it, not hang."""

import socket
import time

import pytest

from marketinfra.cassandra import connect
from marketinfra.errors import CassandraUnavailableError
from marketinfra.kafka import make_consumer, make_producer
from marketinfra.settings import CassandraSettings, KafkaSettings
from tests.integration.support import consume_or_fail, flush_or_fail, require_server


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_kafka_fails_produce_within_seconds() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    producer = make_producer(KafkaSettings(bootstrap_servers=address))
    producer.produce("ticks.raw", value=b"x", key=b"NASDAQ|AAPL")
    started = time.monotonic()
    with pytest.raises(
        pytest.fail.Exception, match=r"not acknowledged by Kafka at .* is the broker up"
    ):
        flush_or_fail(producer, address, timeout_s=2.0)
    assert time.monotonic() - started < 5


def test_unreachable_kafka_fails_consume_within_seconds() -> None:
    address = f"127.0.0.1:{_closed_port()}"
    consumer = make_consumer(KafkaSettings(bootstrap_servers=address), group_id="nobody")
    consumer.subscribe(["ticks.raw"])
    started = time.monotonic()
    try:
        with pytest.raises(pytest.fail.Exception, match=r"got 0 of 1 record"):
            consume_or_fail(consumer, 1, address, timeout_s=2.0)
    finally:
        consumer.close()
    assert time.monotonic() - started < 5


def test_unreachable_cassandra_raises_a_clear_error_within_seconds() -> None:
    settings = CassandraSettings(port=_closed_port(), connect_timeout_s=2.0)
    started = time.monotonic()
    with pytest.raises(
        CassandraUnavailableError, match=r"Cassandra at 127\.0\.0\.1 is unavailable"
    ):
        connect(settings)
    assert time.monotonic() - started < 5


def test_missing_server_fails_instead_of_skipping() -> None:
    with pytest.raises(pytest.fail.Exception, match="Kafka is not reachable"):
        require_server("Kafka", f"127.0.0.1:{_closed_port()}", "start it")
