"""The raw ceilings ``mdgw bench e2e`` sets beside each hop, on the same broker, with the same
bytes, rate and number of clients, open loop (``python -m mdgw.e2e.ceilings kafka|grpc``).

- ``kafka``: a bare confluent-kafka producer (the feed handler's producer settings) sends
  records of the pipeline's size on the same schedule; a bare consumer (assigned, reading as
  the gateway does: one poll, then what waits) takes them. Latency: consumer receipt minus
  the record's due time. Prints ``{"produce_consume": <encoded HDR histogram>, ...}``.
- ``grpc``: a bare grpc.aio server (uvloop) with the gateway's StreamPrices method path
  streams the same PriceUpdate bytes to each subscriber on the same schedule, stamped
  ``gateway_send_time_ns`` as the gateway stamps them; the bench's own clients read it.
  Prints ``port PORT``, then ``done TICKS START_NS`` when the run is over.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import threading
import time
import uuid

import grpc
import orjson
import uvloop
from confluent_kafka import TopicPartition
from hdrh.histogram import HdrHistogram

from gateway.service import convert
from marketinfra.kafka import make_consumer, make_producer, take_waiting
from marketinfra.settings import KafkaSettings

STREAM_PRICES = ("financial.marketdata.v2.MarketDataService", "StreamPrices")
HIGHEST_NS = 60_000_000_000  # an HDR histogram's range: 1 ns .. 60 s, 3 significant digits
_STAMP = struct.Struct(">q")


def new_histogram() -> HdrHistogram:
    return HdrHistogram(1, HIGHEST_NS, 3)


def _schedule(rate_per_s: float, seconds: float) -> tuple[int, float, int]:
    count = max(1, round(rate_per_s * seconds))
    return count, 1e9 / rate_per_s, time.time_ns() + 50_000_000


def _wait_until(due_ns: int) -> None:
    wait_ns = due_ns - time.time_ns()
    if wait_ns > 0:
        time.sleep(wait_ns / 1e9)


# -- kafka -------------------------------------------------------------------------------------


def kafka_ceiling(
    settings: KafkaSettings, topic: str, rate_per_s: float, seconds: float, size: int
) -> dict[str, object]:
    consumer = make_consumer(
        settings, f"e2e-ceiling-{uuid.uuid4().hex[:8]}", {"fetch.wait.max.ms": 10}
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = sorted(metadata.topics[topic].partitions)
    ends = [
        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions
    ]
    consumer.assign(
        [TopicPartition(topic, p, end) for p, end in zip(partitions, ends, strict=True)]
    )
    count, interval_ns, start_ns = _schedule(rate_per_s, seconds)
    histogram = new_histogram()
    received = 0
    done = threading.Event()

    def consume() -> None:
        nonlocal received
        deadline = time.monotonic() + seconds + 30
        while received < count and time.monotonic() < deadline:
            for message in take_waiting(consumer, 500, 0.1):
                now_ns = time.time_ns()
                value = message.value()
                if message.error() is None and value:
                    histogram.record_value(max(1, now_ns - _STAMP.unpack_from(value)[0]))
                    received += 1
        done.set()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    producer = make_producer(settings)
    padding = b"\x00" * max(0, size - _STAMP.size)
    for n in range(count):
        due_ns = start_ns + int(n * interval_ns)
        _wait_until(due_ns)
        producer.produce(topic, _STAMP.pack(due_ns) + padding, f"k{n % 10}".encode())
        producer.poll(0)
    producer.flush(30)
    done.wait(seconds + 60)
    consumer.close()
    return {"produce_consume": histogram.encode().decode(), "sent": count, "received": received}


# -- grpc --------------------------------------------------------------------------------------


class BareStreams:
    """Streams that take each due payload as it comes, like the gateway's pumps."""

    def __init__(self) -> None:
        self.queues: list[asyncio.Queue[bytes | None]] = []
        self.subscribed = asyncio.Event()
        self.expected = 0

    async def stream(self, request: bytes, context: grpc.aio.ServicerContext) -> None:  # type: ignore[type-arg]  # raw bytes both ways
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.queues.append(queue)
        if len(self.queues) >= self.expected:
            self.subscribed.set()
        number = 1
        while (payload := await queue.get()) is not None:
            await context.write(convert.stamp(payload, number, time.time_ns()))
            number += 1


def sample_payloads(symbols: list[str], count: int, stamp_ns: int) -> list[bytes]:
    """PriceUpdates shaped as the pipeline's (one trade of an ITCH stock), ``stamp_ns`` as both
    event and receipt time; ``count`` of them, the symbols taking turns."""
    from financial.marketdata.v2.common_pb2 import Decimal
    from financial.marketdata.v2.prices_pb2 import PriceUpdate

    payloads = []
    for n in range(count):
        symbol = symbols[n % len(symbols)]
        update = PriceUpdate(
            exchange="NASDAQ",
            symbol=symbol,
            venue_symbol=symbol,
            last=Decimal(units=100 + n % 1000, nanos=0),
            last_size=Decimal(units=100),
            volume=Decimal(units=100 * (n + 1)),
            event_time_ns=stamp_ns,
            received_time_ns=stamp_ns,
            feed_handler_id=f"itch.e2e-bench.{n % 100000:05d}.1764700000",
            feed_sequence=n // len(symbols) + 1,
        )
        payloads.append(update.SerializeToString())
    return payloads


async def _grpc_ceiling(
    rate_per_s: float, seconds: float, subscribers: int, symbols: list[str]
) -> None:
    streams = BareStreams()
    streams.expected = subscribers
    server = grpc.aio.server()
    service, method = STREAM_PRICES
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                service, {method: grpc.unary_stream_rpc_method_handler(streams.stream)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    sys.stdout.write(f"port {port}\n")
    sys.stdout.flush()
    await streams.subscribed.wait()
    count, interval_ns, start_ns = _schedule(rate_per_s, seconds)
    sent = 0
    while sent < count:
        now_ns = time.time_ns()
        while sent < count and start_ns + int(sent * interval_ns) <= now_ns:
            due_ns = start_ns + int(sent * interval_ns)
            (payload,) = sample_payloads([symbols[sent % len(symbols)]], 1, due_ns)
            for queue in streams.queues:
                queue.put_nowait(payload)
            sent += 1
        if sent < count:
            await asyncio.sleep(
                max(0.0, (start_ns + int(sent * interval_ns) - time.time_ns()) / 1e9)
            )
    for queue in streams.queues:
        queue.put_nowait(None)
    sys.stdout.write(f"done {count} {start_ns}\n")
    sys.stdout.flush()
    await asyncio.sleep(1.0)  # the streams' last writes
    await server.stop(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mdgw.e2e.ceilings")
    parser.add_argument("kind", choices=["kafka", "grpc"])
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--size", type=int, default=120, help="kafka: record bytes")
    parser.add_argument("--topic", default="")
    parser.add_argument("--subscribers", type=int, default=1)
    parser.add_argument("--symbols", default="E2E0")
    parser.add_argument("--linger-ms", type=float, default=1.0, help="kafka: producer linger")
    args = parser.parse_args(argv)
    if args.kind == "kafka":
        settings = KafkaSettings().model_copy(update={"linger_ms": args.linger_ms})
        result = kafka_ceiling(settings, args.topic, args.rate, args.seconds, args.size)
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return 0
    uvloop.run(_grpc_ceiling(args.rate, args.seconds, args.subscribers, args.symbols.split(",")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
