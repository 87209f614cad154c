"""The handler's hot path (pipeline, producer buffer policy), capture lines, replay pacing
and the CLI wiring, with fakes instead of Kafka and venues."""

import argparse
from collections.abc import Mapping

import pytest

from feedhandlers import cli
from feedhandlers.adapters.kafka_sink import (
    BUFFER_FULL,
    CONFLATED,
    KafkaTickSink,
)
from feedhandlers.capture import LineKind, parse_capture_line, venue_of_url
from feedhandlers.config import FeedHandlerSettings
from feedhandlers.parsing import FrameKind, FrameResult
from feedhandlers.pipeline import PARSER_BUG, FeedPipeline
from feedhandlers.replay import ReplayPace, replay_capture
from feedhandlers.simulator.walk import QuoteWalk
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketinfra.kafka import ConfigValue, brokers_up
from marketinfra.settings import KafkaSettings
from tests.support import ListSink, nanos

READ_NS = 1_618_677_810_300_000_000  # just after the tickers' time, 2021-04-17T16:43:30.244Z


def _ticker(product: str, price: str, time: str = "2021-04-17T16:43:30.244075Z") -> bytes:
    return (
        f'{{"type":"ticker","product_id":"{product}","price":"{price}","best_bid":"{price}",'
        f'"best_ask":"999","volume_24h":"10","last_size":"1","time":"{time}"}}'
    ).encode()


def test_pipeline_numbers_ticks_per_instrument_and_keys_them() -> None:
    sink = ListSink()
    pipeline = FeedPipeline(CoinbaseParser(), sink, "fh-1")
    for product, price in [("BTC-USD", "1"), ("ETH-USD", "2"), ("BTC-USD", "3")]:
        pipeline.on_frame(_ticker(product, price), READ_NS)
    decoded = [(key, PriceUpdate.FromString(value)) for key, value in sink.records]
    assert [(k, u.feed_sequence, nanos(u.last)) for k, u in decoded] == [
        (b"COINBASE|BTC-USD", 1, 1_000_000_000),
        (b"COINBASE|ETH-USD", 1, 2_000_000_000),
        (b"COINBASE|BTC-USD", 2, 3_000_000_000),
    ]
    assert {u.feed_handler_id for _, u in decoded} == {"fh-1"}
    assert {u.received_time_ns for _, u in decoded} == {READ_NS}
    assert pipeline.counters.ticks == 3


def test_pipeline_reports_each_ticks_venue_event_to_receipt_latency() -> None:
    observed: list[float] = []
    pipeline = FeedPipeline(
        CoinbaseParser(), ListSink(), "fh", observe_event_receipt=observed.append
    )
    pipeline.on_frame(_ticker("BTC-USD", "1"), READ_NS)
    # the ticker's time 16:43:30.244075, read at 16:43:30.300
    assert observed == [pytest.approx(0.055925)]


def test_pipeline_counts_and_skips_malformed_frames() -> None:
    pipeline = FeedPipeline(CoinbaseParser(), ListSink(), "fh")
    for frame in [b"{", b"[]", b'{"type":"ticker"}', b"\xff\xfe", b'{"type":"match","price":1}']:
        result = pipeline.on_frame(frame, 1)
        assert result.kind is FrameKind.MALFORMED
    assert pipeline.counters.rejected["malformed"] == 5
    assert pipeline.counters.frames[FrameKind.MALFORMED] == 5


class ExplodingParser:
    exchange = "TEST"

    def parse(self, frame: bytes | str, received_ns: int) -> FrameResult:
        raise RuntimeError("a bug")

    def reset(self) -> None:
        pass


def test_a_parser_bug_costs_one_frame_not_the_session() -> None:
    pipeline = FeedPipeline(ExplodingParser(), ListSink(), "fh")
    assert pipeline.on_frame(b"x", 1).kind is FrameKind.MALFORMED
    assert pipeline.counters.rejected[PARSER_BUG] == 1


# --- the producer buffer policy, with a fake librdkafka ----------------------------------


class AckedMessage:
    """A delivered record as librdkafka reports it: ``latency()`` since ``produce()``."""

    def __init__(self, latency_s: float) -> None:
        self._latency_s = latency_s

    def latency(self) -> float:
        return self._latency_s


def test_receipt_to_ack_is_the_time_before_produce_plus_the_produce_latency() -> None:
    reports = []

    class Producer:
        def produce(self, topic: str, value: bytes, key: bytes, on_delivery=None) -> None:
            reports.append(on_delivery)

        def poll(self, timeout: float) -> int:
            return 0

    observed: list[float] = []
    sink = KafkaTickSink(
        KafkaSettings(),
        "t",
        producer_factory=lambda settings, config: Producer(),
        observe_receipt_ack=observed.append,
        wall_ns=lambda: 5_000_000_000,
    )
    sink.send(b"k", b"v", received_ns=4_999_000_000)  # produced 1 ms after its receipt
    (report,) = reports
    report(None, AckedMessage(0.004))  # acknowledged 4 ms after produce()
    assert observed == [pytest.approx(0.005)]
    assert sink.accepted == 1


class FakeProducer:
    """Holds up to ``capacity`` records; ``deliver()`` plays Kafka acknowledging them."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.queue: list[tuple[bytes, bytes]] = []
        self.delivered: list[tuple[bytes, bytes]] = []
        self.config: Mapping[str, ConfigValue] = {}

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        if len(self.queue) >= self.capacity:
            raise BufferError("queue full")
        self.queue.append((key, value))

    def deliver(self) -> None:
        self.delivered.extend(self.queue)
        self.queue.clear()

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        self.deliver()
        return 0

    def __len__(self) -> int:
        return len(self.queue)


def _sink(
    capacity: int, overflow: int = 10, **kwargs: object
) -> tuple[KafkaTickSink, FakeProducer]:
    fake = FakeProducer(capacity)

    def factory(settings: KafkaSettings, config: Mapping[str, ConfigValue]) -> FakeProducer:
        fake.config = config
        return fake

    sink = KafkaTickSink(
        KafkaSettings(),
        "t",
        overflow_max_instruments=overflow,
        producer_factory=factory,
        **kwargs,  # type: ignore[arg-type]  # test-only pass-through of keyword options
    )
    return sink, fake


def test_full_queue_conflates_per_instrument_and_keeps_order() -> None:
    sink, fake = _sink(capacity=2, overflow=2)
    sink.send(b"A", b"a1")
    sink.send(b"B", b"b1")
    sink.send(b"A", b"a2")  # queue full: A's slot
    sink.send(b"A", b"a3")  # replaces a2
    sink.send(b"C", b"c1")  # a second slot
    sink.send(b"D", b"d1")  # no slot left
    assert sink.dropped == {CONFLATED: 1, BUFFER_FULL: 1}
    assert sink.depth() == 4
    fake.deliver()
    sink.send(b"B", b"b2")  # slots drain first (oldest first), then the new record
    fake.deliver()
    sink.poll()
    fake.deliver()
    assert fake.delivered == [
        (b"A", b"a1"),
        (b"B", b"b1"),
        (b"A", b"a3"),
        (b"C", b"c1"),
        (b"B", b"b2"),
    ]
    assert sink.accepted == 5


def test_close_drains_the_overflow_and_reports_nothing_lost() -> None:
    sink, fake = _sink(capacity=1)
    sink.send(b"A", b"1")
    sink.send(b"B", b"2")
    assert sink.overflow_depth() == 1
    fake.deliver()
    assert sink.close(timeout_s=1.0) == 0
    assert fake.delivered == [(b"A", b"1"), (b"B", b"2")]


def test_delivery_errors_are_counted_by_code() -> None:
    sink, _ = _sink(capacity=1)

    class Error:
        def name(self) -> str:
            return "_MSG_TIMED_OUT"

        def str(self) -> str:
            return "Local: Message timed out"

    class Message:
        def key(self) -> bytes:
            return b"COINBASE|BTC-USD"

    sink._on_delivery(Error(), Message())  # type: ignore[arg-type]  # duck-typed fakes
    assert sink.delivery_errors == {"_MSG_TIMED_OUT": 1}


def test_each_acknowledged_record_gives_its_latency_to_the_histogram() -> None:
    observed: list[float] = []

    def factory(settings: KafkaSettings, config: Mapping[str, ConfigValue]) -> FakeProducer:
        assert config["delivery.report.only.error"] is False  # successes come back too
        return FakeProducer(1)

    sink = KafkaTickSink(
        KafkaSettings(), "ticks", producer_factory=factory, observe_latency=observed.append
    )

    class Delivered:
        def latency(self) -> float:
            return 0.004

    sink._on_delivery(None, Delivered())  # type: ignore[arg-type]  # duck-typed fake
    assert observed == [0.004]
    assert sink.delivery_errors == {}


def test_brokers_up_counts_connected_brokers_not_bootstrap_placeholders() -> None:
    stats = {
        "brokers": {
            "bootstrap": {"nodeid": -1, "state": "UP"},
            "b1": {"nodeid": 1, "state": "UP"},
            "b2": {"nodeid": 2, "state": "TRY_CONNECT"},
        }
    }
    assert brokers_up(stats) == 1
    assert brokers_up({}) == 0


# --- captures and replay -----------------------------------------------------------------


def test_capture_lines_are_told_apart() -> None:
    frame = parse_capture_line(b'1618677817.079694: {"type":"ticker"}\n')
    assert (frame.kind, frame.time_ns, frame.payload) == (
        LineKind.FRAME,
        1_618_677_817_079_694_000,
        b'{"type":"ticker"}',
    )
    connect = parse_capture_line(b"wss://ws-feed.pro.coinbase.com <-> 1618677816.8434298\n")
    assert (connect.kind, connect.url) == (LineKind.CONNECT, "wss://ws-feed.pro.coinbase.com")
    sent = parse_capture_line(b'wss://ws.kraken.com <- 1618678132.845013: {"event":"subscribe"}')
    assert (sent.kind, sent.payload) == (LineKind.SENT, b'{"event":"subscribe"}')
    for junk in (b"", b"\n", b"garbage", b"12: ", b"1x: {}"):
        assert parse_capture_line(junk).kind in (LineKind.OTHER, LineKind.FRAME)
    assert venue_of_url("wss://stream.binance.com:9443/stream?streams=a") == "binance"


def test_replay_pace_spreads_frames_by_recorded_time_over_speed() -> None:
    assert ReplayPace(1).due_s(0, 2_000_000_000) == 2.0
    assert ReplayPace(10).due_s(0, 2_000_000_000) == pytest.approx(0.2)
    assert ReplayPace(0).due_s(0, 2_000_000_000) == 0.0
    with pytest.raises(ValueError, match="speed"):
        ReplayPace(-1)


async def test_replay_as_fast_as_possible_keeps_recorded_times_and_resets_on_connect() -> None:
    sink = ListSink()
    pipeline = FeedPipeline(CoinbaseParser(), sink, "replay.x")
    lines = [
        b"wss://ws-feed.pro.coinbase.com <-> 1618677800.0\n",
        b"1618677810.300000001: " + _ticker("BTC-USD", "1") + b"\n",
        b"not a frame\n",
        b"wss://ws-feed.pro.coinbase.com <-> 1618677811.0\n",
        b"1618677812.5: " + _ticker("BTC-USD", "2") + b"\n",
    ]
    stats = await replay_capture(map(parse_capture_line, lines), pipeline, ReplayPace(0))
    assert (stats.frames, stats.connects) == (2, 2)
    received = [PriceUpdate.FromString(v).received_time_ns for _, v in sink.records]
    assert received == [1_618_677_810_300_000_001, 1_618_677_812_500_000_000]


# --- configuration and CLI ---------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mdgw")
    cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_feed_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDHANDLER_VENUE", "kraken")
    monkeypatch.setenv("FEEDHANDLER_SYMBOLS", "XBT-USD")
    args = _parser().parse_args(["feed", "--symbols", "BTC-USD, ETH-USD", "--topic", "x.y"])
    settings = cli._settings(args)
    assert settings.venue == "kraken"  # from the environment
    assert settings.symbol_list() == ["BTC-USD", "ETH-USD"]
    assert settings.ticks_topic == "x.y"
    assert args.handler is cli._run_feed


def test_simulate_and_speed_arguments() -> None:
    args = _parser().parse_args(["simulate", "--symbols", "3", "--rate", "50", "--port", "0"])
    assert cli.simulated_symbols(args.symbols) == ["SIM0-USD", "SIM1-USD", "SIM2-USD"]
    assert cli.simulated_symbols("btc-usd,eth-usd") == ["BTC-USD", "ETH-USD"]
    assert cli.parse_speed("max") == 0.0
    assert cli.parse_speed("10") == 10.0
    with pytest.raises(ValueError, match="speed"):
        cli.parse_speed("-2")


def test_settings_refuse_an_empty_symbol_list() -> None:
    with pytest.raises(ValueError, match="at least one symbol"):
        FeedHandlerSettings(symbols=" , ")


def test_random_walk_keeps_bid_below_ask_and_above_the_floor() -> None:
    values = iter([0.0, 0.99, 0.5] * 400)
    walk = QuoteWalk(bid_ticks=12, floor_ticks=10)
    for _ in range(300):
        quote = walk.step(lambda: next(values))
        assert 10 <= quote.bid_ticks < quote.ask_ticks <= quote.bid_ticks + walk.max_spread_ticks
