"""``mdgw bench feed``: replay a recorded capture as fast as possible through the handler
(parse, normalize, number, encode, produce to Kafka) beside a raw confluent-kafka loop
producing the same pre-serialized records, in the same run, on the same topic settings.

Throughput: frames are held in memory, so neither side reads a file; both end with a flush,
so "acked" counts only what Kafka acknowledged. "per core": the handler is one Python
thread, so its ticks per second of that thread's CPU time is the per-core figure
(librdkafka's own threads run beside it on the other core).

Then the pipeline's own CPU cost (the replay into memory, timed), and the cost of the tick
encoding itself, v1 (int64 micros) beside v2 (``Decimal``), on the same ticks
(``encoding_bench``).

Latency: each side then produces at a fixed rate with a delivery callback per record (the
production handler has none; here it is instrumentation) and reports p50/p99 from the
moment the frame was handed to the handler (or the record to the raw producer) to Kafka's
acknowledgement. Runs in a topic of its own, deleted after.
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.admin import NewTopic

from feedhandlers import encoding_bench
from feedhandlers.adapters.kafka_sink import KafkaTickSink
from feedhandlers.app import make_parser
from feedhandlers.capture import CaptureLine, read_frames
from feedhandlers.config import VENUES, FeedHandlerSettings, Venue
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.replay import capture_venue
from marketcore.order_book import parse_book_value
from marketinfra.kafka import ConfigValue, make_admin, make_producer
from marketinfra.logging import configure_logging
from marketinfra.settings import KafkaSettings, LogSettings
from mdgw.machine import describe_machine

_PARTITIONS = 8
_DEFAULT_CAPTURE = Path(__file__).resolve().parents[2] / "tests/data/coinbase/COINBASE.ws.28.0.gz"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "feed", help="feed handler: capture replay -> Kafka ticks/s and produce latency"
    )
    parser.add_argument("--capture", type=Path, default=_DEFAULT_CAPTURE)
    parser.add_argument("--venue", choices=VENUES, help="default: from the capture")
    parser.add_argument("--repeat", type=int, default=10, help="replay the capture this often")
    parser.add_argument("--linger-ms", type=float, help="default: FEEDHANDLER_LINGER_MS")
    parser.add_argument("--rate", type=int, default=2_000, help="ticks/s for the latency run")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of the latency run")
    parser.set_defaults(handler=run)


class RecordingSink:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    def send(self, key: bytes, value: bytes, received_ns: int = 0) -> None:
        self.records.append((key, value))


@dataclass(frozen=True, slots=True)
class Throughput:
    ticks: int
    produced_s: float  # until the last produce() returned
    acked_s: float  # until flush() returned: everything acknowledged
    thread_cpu_s: float  # the producing Python thread's CPU time (through the flush)
    process_cpu_s: float  # the whole process, librdkafka threads included

    def line(self, label: str) -> str:
        return (
            f"{label:<22} {self.ticks / self.acked_s:>10,.0f} ticks/s acked   "
            f"{self.ticks / self.produced_s:>10,.0f} ticks/s produced   "
            f"{self.ticks / self.thread_cpu_s:>10,.0f} ticks per thread-CPU-s   "
            f"process CPU {self.process_cpu_s / self.acked_s:.0%} of one core"
        )


def _timed(work: Callable[[], None], producer: Any) -> tuple[float, float, float, float]:
    thread0, process0, wall0 = time.thread_time(), time.process_time(), time.perf_counter()
    work()
    produced = time.perf_counter() - wall0
    remaining = producer.flush(120)
    if remaining:
        raise RuntimeError(f"{remaining} records not acknowledged: is Kafka up?")
    return (
        produced,
        time.perf_counter() - wall0,
        time.thread_time() - thread0,
        time.process_time() - process0,
    )


def _handler_throughput(
    settings: KafkaSettings, topic: str, venue: Venue, frames: list[CaptureLine], repeat: int
) -> Throughput:
    sink = KafkaTickSink(settings, topic, wait_when_full=True)
    pipeline = FeedPipeline(make_parser(venue), sink, f"bench.{uuid.uuid4().hex[:8]}")
    _warm_up(sink.producer, topic)

    def work() -> None:
        on_frame = pipeline.on_frame
        for n in range(repeat):
            _new_pass(pipeline)
            for frame in frames:
                on_frame(frame.payload, frame.time_ns)
            if n % 2:
                sink.poll()

    produced, acked, thread_cpu, process_cpu = _timed(work, sink.producer)
    return Throughput(sink.accepted, produced, acked, thread_cpu, process_cpu)


def _raw_config(settings: KafkaSettings) -> dict[str, ConfigValue]:
    """The handler's producer settings (marketinfra defaults plus the sink's), for parity."""
    return {
        "queue.buffering.max.messages": 100_000,
        "queue.buffering.max.kbytes": 65_536,
        "delivery.report.only.error": True,
        "on_delivery": lambda error, message: None,
    }


def _raw_throughput(
    settings: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]]
) -> Throughput:
    producer = make_producer(settings, _raw_config(settings))
    _warm_up(producer, topic)

    def work() -> None:
        produce, poll = producer.produce, producer.poll
        for n, (key, value) in enumerate(records):
            try:
                produce(topic, value, key)
            except BufferError:
                poll(0.01)
                produce(topic, value, key)
            if n % 1000 == 0:
                poll(0)

    produced, acked, thread_cpu, process_cpu = _timed(work, producer)
    return Throughput(len(records), produced, acked, thread_cpu, process_cpu)


def _warm_up(producer: Any, topic: str) -> None:
    """Metadata and the idempotent producer id before the clock starts."""
    producer.produce(topic, b"warm-up", b"BENCH|WARMUP")
    if producer.flush(30):
        raise RuntimeError("Kafka did not acknowledge the warm-up record")


def _percentiles(latencies_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(latencies_ms)
    if not ordered:
        return float("nan"), float("nan")
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _paced(count: int, rate: int, step: Callable[[int], None], poll: Callable[[], object]) -> None:
    interval = 1 / rate
    next_at = time.perf_counter()
    for n in range(count):
        delay = next_at - time.perf_counter()
        if delay > 0:
            poll()
            time.sleep(delay)
        step(n)
        next_at += interval


def _with_latency_reports(factory: Callable[..., Any]) -> Callable[..., Any]:
    def make(settings: KafkaSettings, config: Mapping[str, ConfigValue]) -> Any:
        return factory(settings, {**config, "delivery.report.only.error": False})

    return make


def _handler_latency(
    settings: KafkaSettings, topic: str, venue: Venue, frames: list[CaptureLine], args: Any
) -> tuple[float, float]:
    """Frame handed to the handler -> Kafka acknowledged, at ``args.rate`` ticks/s."""
    sink = KafkaTickSink(
        settings,
        topic,
        producer_factory=_with_latency_reports(make_producer),
        stats_interval_ms=60_000,
    )
    producer: Producer = sink.producer  # type: ignore[assignment]  # the real one, here
    pipeline = FeedPipeline(make_parser(venue), sink, f"bench.{uuid.uuid4().hex[:8]}")
    _warm_up(producer, topic)
    latencies_ms: list[float] = []
    started_ns = 0

    def acked(error: KafkaError | None, _message: Message, sent_ns: int) -> None:
        if error is None:
            latencies_ms.append((time.perf_counter_ns() - sent_ns) / 1e6)

    def produce(topic_name: str, value: bytes, key: bytes) -> None:
        sent_ns = started_ns
        producer.produce(topic_name, value, key, on_delivery=lambda e, m: acked(e, m, sent_ns))

    sink._produce = produce  # benchmark instrumentation: a delivery callback per record
    count = int(args.rate * args.seconds)
    replayed = _cycle(frames, pipeline)

    def step(_n: int) -> None:
        """Feed frames in recorded order until one makes a tick (the paced unit)."""
        nonlocal started_ns
        for frame in replayed:
            started_ns = time.perf_counter_ns()
            if pipeline.on_frame(frame.payload, frame.time_ns).ticks:
                return

    _paced(count, args.rate, step, lambda: producer.poll(0))
    producer.flush(30)
    return _percentiles(latencies_ms)


def _new_pass(pipeline: FeedPipeline) -> None:
    """A new connection replaying the capture, with nothing remembered from the last pass:
    the book-value cache would otherwise make every pass after the first a replay of known
    texts, cheaper than any live feed."""
    pipeline.parser.reset()
    parse_book_value.cache_clear()


def _cycle(frames: list[CaptureLine], pipeline: FeedPipeline) -> Iterator[CaptureLine]:
    """The capture over and over, as a new connection each pass."""
    while True:
        _new_pass(pipeline)
        yield from frames


def _raw_latency(
    settings: KafkaSettings, topic: str, records: list[tuple[bytes, bytes]], args: Any
) -> tuple[float, float]:
    producer = make_producer(
        settings, {**_raw_config(settings), "delivery.report.only.error": False}
    )
    _warm_up(producer, topic)
    latencies_ms: list[float] = []

    def step(n: int) -> None:
        key, value = records[n % len(records)]
        sent_ns = time.perf_counter_ns()

        def acked(error: KafkaError | None, _message: Message) -> None:
            if error is None:
                latencies_ms.append((time.perf_counter_ns() - sent_ns) / 1e6)

        producer.produce(topic, value, key, on_delivery=acked)

    _paced(int(args.rate * args.seconds), args.rate, step, lambda: producer.poll(0))
    producer.flush(30)
    return _percentiles(latencies_ms)


def run(args: argparse.Namespace) -> int:
    path: Path = args.capture
    venue: Venue | None = args.venue or capture_venue(path)  # type: ignore[assignment]
    if venue is None or venue not in VENUES:
        print(f"cannot tell the venue of {path}: give --venue")
        return 2
    configure_logging(LogSettings(level="ERROR"))  # per-reason rejection notes are noise here
    linger_ms = FeedHandlerSettings().linger_ms if args.linger_ms is None else args.linger_ms
    settings = KafkaSettings().model_copy(update={"linger_ms": linger_ms})
    frames = read_frames(path)
    recorder = RecordingSink()
    probe = FeedPipeline(make_parser(venue), recorder, "bench.probe")
    probe_cpu_s = time.thread_time()
    for n in range(args.repeat):
        _new_pass(probe)
        for frame in frames:
            probe.on_frame(frame.payload, frame.time_ns)
        if n == 0:
            per_pass = len(recorder.records)
    probe_cpu_s = time.thread_time() - probe_cpu_s
    topic = f"bench.feed.{uuid.uuid4().hex[:8]}"
    admin = make_admin(settings)
    admin.create_topics([NewTopic(topic, num_partitions=_PARTITIONS, replication_factor=1)])[
        topic
    ].result(30)
    print(f"machine: {describe_machine()}")
    print(
        f"capture: {path.name} ({venue}), {len(frames):,} frames -> {per_pass:,} ticks per pass, "
        f"x{args.repeat}; linger.ms {settings.linger_ms:g}; topic {_PARTITIONS} partitions"
    )
    try:
        ours = _handler_throughput(settings, topic, venue, frames, args.repeat)
        raw = _raw_throughput(settings, topic, recorder.records)
        ours_p50, ours_p99 = _handler_latency(settings, topic, venue, frames, args)
        raw_p50, raw_p99 = _raw_latency(settings, topic, recorder.records, args)
    finally:
        for future in admin.delete_topics([topic]).values():
            future.result(30)
    print(ours.line("handler (WS path)"))
    print(raw.line("raw confluent-kafka"))
    print(
        f"{'ratio':<22} {ours.ticks / ours.acked_s / (raw.ticks / raw.acked_s):>10.0%} acked, "
        f"{ours.ticks / ours.thread_cpu_s / (raw.ticks / raw.thread_cpu_s):.0%} per thread-CPU-s"
    )
    print(
        f"latency at {args.rate:,} ticks/s for {args.seconds:g} s: "
        f"handler frame->ack p50 {ours_p50:.2f} ms, p99 {ours_p99:.2f} ms; "
        f"raw produce->ack p50 {raw_p50:.2f} ms, p99 {raw_p99:.2f} ms"
    )
    replayed = len(frames) * args.repeat
    print(
        f"pipeline alone (parse, normalize, encode; no Kafka), thread CPU: "
        f"{probe_cpu_s / replayed * 1e6:.2f} us/frame, "
        f"{probe_cpu_s / len(recorder.records) * 1e6:.2f} us/tick"
    )
    for line in encoding_bench.measure([value for _, value in recorder.records]).lines():
        print(line)
    return 0
