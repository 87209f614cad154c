"""The feed handler's delivery watchdog wired up: a producer that stops reporting (the issue's
handler that "dropped every tick from then on" with no error) fails liveness, counted and
logged; an ordinary outage only makes it not ready."""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from feedhandlers import metrics
from feedhandlers.adapters.kafka_sink import KafkaTickSink
from feedhandlers.app import DELIVERY, PRODUCER, FeedHandler, make_parser
from feedhandlers.config import FeedHandlerSettings
from feedhandlers.metrics_publisher import MetricsPublisher
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.replay import OfflineSource
from marketinfra.kafka import ConfigValue
from marketinfra.settings import KafkaSettings


class SilentProducer:
    """Takes records and never reports on them (what the wedged producer did)."""

    def __init__(self) -> None:
        self.queued = 0

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        self.queued += 1

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return self.queued

    def __len__(self) -> int:
        return self.queued


class Clock:
    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s


def _handler(producer: SilentProducer, clock: Clock) -> FeedHandler:
    settings = FeedHandlerSettings(
        venue="coinbase",
        symbols="BTC-USD",
        kafka=KafkaSettings(delivery_timeout_ms=120_000),
    )

    def factory(_: KafkaSettings, config: Mapping[str, ConfigValue]) -> SilentProducer:
        assert callable(config["error_cb"]), "librdkafka's client errors must reach our log"
        assert callable(config["on_delivery"])
        return producer

    sink = KafkaTickSink(settings.kafka, "ticks", producer_factory=factory)
    pipeline = FeedPipeline(make_parser("coinbase"), sink, "fh-test")
    return FeedHandler(
        settings,
        pipeline,
        sink,
        OfflineSource("coinbase"),
        MetricsPublisher("coinbase"),
        clock=clock,
    )


def _stalls() -> float:
    value = metrics.REGISTRY.get_sample_value(
        "feedhandler_delivery_stalls_total", {"venue": "coinbase"}
    )
    return value or 0.0


def test_the_stall_limit_defaults_to_the_delivery_timeout_plus_a_margin() -> None:
    settings = FeedHandlerSettings(kafka=KafkaSettings(delivery_timeout_ms=120_000))
    assert settings.delivery_stall_after_s() == 150.0
    assert FeedHandlerSettings(delivery_stall_s=40).delivery_stall_after_s() == 40.0


def test_a_producer_that_stops_reporting_fails_liveness_once_counted_and_logged() -> None:
    producer, clock = SilentProducer(), Clock()
    handler = _handler(producer, clock)
    handler.upkeep()
    assert handler.liveness.ready
    assert DELIVERY not in handler.readiness.unmet()
    stalls_before = _stalls()

    handler.sink.send(b"COINBASE|BTC-USD", b"tick")
    clock.now_s += 11  # no acknowledgement for over delivery_slow_s (10 s): not delivering
    handler.upkeep()
    assert handler.readiness.unmet()[DELIVERY].startswith("records waiting")
    assert handler.liveness.ready, "an outage alone is no reason to restart"

    with structlog.testing.capture_logs() as logs:
        clock.now_s += 140  # 151 s without a single report: librdkafka broke its promise
        handler.upkeep()
        clock.now_s += 10
        handler.upkeep()  # still stalled: counted and logged once
    assert handler.liveness.unmet()[PRODUCER].startswith("producer stalled")
    assert _stalls() == stalls_before + 1
    assert [entry["event"] for entry in logs if entry["log_level"] == "error"] == [
        "delivery_stalled"
    ]


def test_losing_and_regaining_the_brokers_is_logged() -> None:
    handler = _handler(SilentProducer(), Clock())
    up = '{"brokers": {"b1": {"nodeid": 1, "state": "UP"}}}'
    down = '{"brokers": {"b1": {"nodeid": 1, "state": "DOWN"}}}'
    with structlog.testing.capture_logs() as logs:
        handler.sink._on_stats(up)
        handler.sink._on_stats(down)
        handler.sink._on_stats(down)
        handler.sink._on_stats(up)
    assert [entry["event"] for entry in logs] == ["kafka_brokers_down", "kafka_brokers_up"]
