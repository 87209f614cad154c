"""The gateway's Kafka feed says it is not reading when its brokers are gone or when its
statistics (due every second, served by the consume loop) stop: readiness follows."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from gateway.adapters.kafka_feed import KafkaFeed
from marketinfra.settings import KafkaSettings

UP = '{"brokers": {"b1": {"nodeid": 1, "state": "UP"}}}'
DOWN = '{"brokers": {"b1": {"nodeid": 1, "state": "DOWN"}}}'


class Clock:
    now_s = 500.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def running_thread() -> Iterator[threading.Thread]:
    done = threading.Event()
    thread = threading.Thread(target=done.wait, daemon=True)
    thread.start()
    yield thread
    done.set()
    thread.join()


def test_connected_needs_brokers_and_fresh_statistics(running_thread: threading.Thread) -> None:
    clock = Clock()
    loop = asyncio.new_event_loop()
    try:
        feed = KafkaFeed(KafkaSettings(), "t", lambda _: None, loop, silent_after_s=10, clock=clock)
        assert not feed.connected  # not started
        feed._thread = running_thread  # as start() leaves it
        assert feed.connected  # positioned at start: the brokers answered
        feed._on_stats(UP)
        clock.now_s += 9
        assert feed.connected
        clock.now_s += 2  # 11 s without statistics: the consume loop is not turning
        assert not feed.connected
        feed._on_stats(UP)
        assert feed.connected
        feed._on_stats(DOWN)
        assert not feed.connected
        feed._on_stats(UP)
        assert feed.connected
    finally:
        loop.close()
