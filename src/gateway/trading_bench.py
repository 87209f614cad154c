"""``mdgw bench trading``: orders through the gateway beside two raw ceilings, same run.

- SubmitOrders: orders/s from clients sending batches of market orders that all fill (each
  order commits four records to Kafka in the trading log's transactions: NEW, the execution,
  FILLED and the position). LiveTrading: order-to-execution-report latency, one order at a
  time per session (closed loop), p50/p99.
- The ceiling that does the same durable work: a bare grpc.aio server (client streaming; a
  bidirectional echo) whose handlers commit the same four records per order before they
  answer, with a raw confluent-kafka transactional producer on the trading log's settings
  (``journal.transactional_overrides``: acks=all, idempotence, one transactional id, linger 0)
  and its commit policy (one thread; whatever calls are waiting go into one transaction, up to
  ``MAX_RECORDS_PER_TRANSACTION`` records). The records are the order core's own, encoded
  ahead of time, to per-run topics of the same partitions. The headline is gateway / this
  ceiling: what the order core, the servicers and the desk cost on top of the Kafka work.
- For context, the same bare server writing nothing.

The three run interleaved (``--repeats`` rounds, the order reversed every other round, so a
drift of the machine's load falls on all three alike); each figure is the median of the rounds,
with the range beside it. Needs the real Kafka (``mdgw infra up``): the bench makes its own
topics and deletes them. The servers run in this process on uvloop (the gateway with an
in-process feed holding one deep quote); clients run in another process and send pre-encoded
requests. Compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import queue
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import uvloop
from confluent_kafka import KafkaException
from pydantic import SecretStr

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import (
    ExecutionReport,
    OrderBatchSummary,
    OrderRequest,
    OrderResult,
    TradingMessage,
)
from gateway import app, metrics
from gateway.config import GatewaySettings
from gateway.fakes import ManualFeed, MemoryQuoteStore
from gateway.market import MarketData
from gateway.security import SERVICE
from gateway.trading import convert
from gateway.trading.convert import Malformed, Record, TradingTopics, spec_from_proto
from gateway.trading.journal import (
    MAX_RECORDS_PER_TRANSACTION,
    TRANSACTION_TIMEOUT_MS,
    transactional_overrides,
)
from gateway.trading.reference_file import load_reference
from gateway.trading.runtime import risk_limits
from marketcore.fixed_point import NANOS_PER_UNIT
from marketcore.instruments import InstrumentKey
from marketcore.ticks import Tick
from marketcore.trading.events import RequestRefused
from marketcore.trading.model import Touch
from marketcore.trading.order_manager import OrderManager
from marketcore.trading.simulated_venue import SimulatedVenue
from marketinfra.decimal_codec import to_decimal
from marketinfra.kafka import make_admin, make_producer
from marketinfra.logging import configure_logging
from marketinfra.settings import KafkaSettings, LogSettings
from marketinfra.tick_codec import tick_to_proto
from mdgw.machine import describe_machine, load_average

TOKEN = "bench-token-0123456789abcdef"
EXCHANGE = "BENCH"
SYMBOL = "BENCH-USD"
BARE_SERVICE = "bench.BareTrading"
LOCAL_POOL = [("grpc.use_local_subchannel_pool", 1)]
QUOTE_NANOS = (100_000_000_000, 100_010_000_000)  # bid, ask: a deep quote every order fills at
RECORDS_PER_ORDER = 4  # NEW, the execution, FILLED, the position
PARTITIONS = 8


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "trading",
        help="SubmitOrders and LiveTrading vs a raw Kafka-transaction ceiling (needs Kafka)",
    )
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per case")
    parser.add_argument("--batch", type=int, default=100, help="orders per SubmitOrders call")
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved rounds of every case (median)"
    )
    parser.set_defaults(handler=run)


# -- clients (another process) ----------------------------------------------------------------


def _order(n: int, prefix: str) -> bytes:
    return OrderRequest(
        order_id=f"{prefix}-{n}",
        symbol=SYMBOL,
        exchange=EXCHANGE,
        side=common.SIDE_BUY if n % 2 == 0 else common.SIDE_SELL,
        quantity=to_decimal(NANOS_PER_UNIT),
        order_type=common.ORDER_TYPE_MARKET,
    ).SerializeToString()


def _submit_client(
    target: str, method: str, batch: int, concurrency: int, warmup_s: float, seconds: float
) -> int:
    """Orders/s answered, closed loop: ``concurrency`` calls of ``batch`` orders in flight."""

    async def main() -> int:
        prefix = uuid.uuid4().hex[:8]
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        counter = [0, 0]  # orders sent, orders answered while measuring
        measuring = [False]
        stop_at = time.perf_counter() + warmup_s + seconds
        async with grpc.aio.insecure_channel(target, options=LOCAL_POOL) as channel:
            call: grpc.aio.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(method)

            async def loop() -> None:
                while time.perf_counter() < stop_at:
                    first = counter[0]
                    counter[0] += batch

                    async def requests(start: int = first) -> AsyncIterator[bytes]:
                        for n in range(start, start + batch):
                            yield _order(n, prefix)

                    await call(requests(), metadata=metadata, timeout=30)
                    if measuring[0]:
                        counter[1] += batch

            async def measure() -> None:
                await asyncio.sleep(warmup_s)
                measuring[0] = True

            await asyncio.gather(measure(), *(loop() for _ in range(concurrency)))
        return counter[1]

    return uvloop.run(main())


def _session_client(target: str, method: str, warmup_s: float, seconds: float) -> list[float]:
    """Milliseconds from writing a new order to reading its execution report, one at a time."""

    async def main() -> list[float]:
        prefix = uuid.uuid4().hex[:8]
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        latencies: list[float] = []
        async with grpc.aio.insecure_channel(target, options=LOCAL_POOL) as channel:
            live: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(method)
            call = live(metadata=metadata)
            started_at = time.perf_counter()
            stop_at = started_at + warmup_s + seconds
            n = 0
            while time.perf_counter() < stop_at:
                n += 1
                message = TradingMessage(new_order=OrderRequest.FromString(_order(n, prefix)))
                sent = time.perf_counter()
                await call.write(message.SerializeToString())
                while True:
                    data = await call.read()
                    if not isinstance(data, bytes):
                        raise TypeError("the session ended before the execution report")
                    answer = TradingMessage.FromString(data)
                    if answer.WhichOneof("payload") in ("execution", "reject"):
                        break
                    if answer.HasField("status") and answer.status.status in (
                        common.ORDER_STATUS_REJECTED,
                    ):
                        raise RuntimeError(f"the bench order was rejected: {answer.status.text}")
                if sent - started_at >= warmup_s:
                    latencies.append((time.perf_counter() - sent) * 1000)
            await call.done_writing()
            while await call.read() is not grpc.aio.EOF:  # what is still pending
                pass
        return latencies

    return uvloop.run(main())


# -- servers (this process) -------------------------------------------------------------------


class RawTransactions:
    """The ceiling's Kafka work: one transactional producer with the trading log's settings,
    and its commit policy: a thread takes whatever appends are waiting (up to
    ``MAX_RECORDS_PER_TRANSACTION`` records), commits them in one transaction, then completes
    their futures. No retries, no metrics: a failure fails the bench."""

    def __init__(
        self, kafka: KafkaSettings, transactional_id: str, loop: asyncio.AbstractEventLoop
    ) -> None:
        self._kafka = kafka
        self._transactional_id = transactional_id
        self._loop = loop
        self._queue: queue.SimpleQueue[tuple[list[Record], asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="bench-raw-log", daemon=True)
        self.transactions = 0
        self.records = 0

    def start(self, timeout_s: float) -> None:
        overrides = transactional_overrides(
            self._kafka, self._transactional_id, TRANSACTION_TIMEOUT_MS
        )
        self._producer = make_producer(self._kafka, overrides)
        self._producer.init_transactions(timeout_s)
        self._thread.start()

    def append(self, records: list[Record]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = self._loop.create_future()
        self._queue.put((records, done))
        return done

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(30)

    def _run(self) -> None:
        producer = self._producer
        while (first := self._queue.get()) is not None:
            batch = [first]
            count = len(first[0])
            stopping = False
            while count < MAX_RECORDS_PER_TRANSACTION:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
                count += len(item[0])
            failure: BaseException | None = None
            try:
                producer.begin_transaction()
                for records, _ in batch:
                    for record in records:
                        producer.produce(record.topic, record.value, record.key)
                producer.commit_transaction(TRANSACTION_TIMEOUT_MS / 1000)
            except (KafkaException, BufferError) as exc:
                failure = exc
            self.transactions += 1
            self.records += count
            for _, done in batch:
                self._loop.call_soon_threadsafe(_settle, done, failure)
            if stopping:
                return


def _settle(done: asyncio.Future[None], failure: BaseException | None) -> None:
    if done.done():
        return
    if failure is None:
        done.set_result(None)
    else:
        done.set_exception(failure)


class OrderRecords:
    """Per order, the four records the gateway's order core writes for a market order that
    fills, made by that core (``OrderManager`` and ``convert.records``) ahead of time, for a
    pool of orders shaped like the clients' (ids of the same length, alternating sides, a
    position that moves): the ceiling writes records of the same sizes without doing the
    gateway's work. The status records are keyed by the client's order id."""

    POOL = 1_000

    def __init__(self, settings: GatewaySettings, topics: TradingTopics) -> None:
        manager = OrderManager(
            SimulatedVenue(), load_reference(settings.trading_reference_file), risk_limits(settings)
        )
        now = time.time_ns()
        manager.on_tick(InstrumentKey(EXCHANGE, SYMBOL), Touch(*QUOTE_NANOS), now)
        prefix = uuid.uuid4().hex[:8]  # as long as a client's
        self._orders_topic = topics.orders
        self._pool: list[list[Record]] = []
        for n in range(self.POOL):
            spec = spec_from_proto(OrderRequest.FromString(_order(n, prefix)), "bench")
            if isinstance(spec, Malformed):
                raise TypeError(f"the bench order is malformed: {spec}")
            outcome = manager.submit(spec, "bench", now + n)
            if isinstance(outcome, RequestRefused) or outcome.order.reject is not None:
                raise RuntimeError(f"the bench order was refused: {outcome}")
            records = convert.records(outcome.events, topics)
            if len(records) != RECORDS_PER_ORDER:
                raise RuntimeError(f"a bench order made {len(records)} records, not 4")
            self._pool.append(records)
        self._next = 0

    def of(self, order_id: str) -> list[Record]:
        self._next = (self._next + 1) % self.POOL
        key = order_id.encode()
        return [
            Record(r.topic, key, r.value) if r.topic == self._orders_topic else r
            for r in self._pool[self._next]
        ]

    @property
    def bytes_per_order(self) -> float:
        return statistics.mean(
            sum(len(r.key) + len(r.value) for r in records) for records in self._pool
        )


async def _bare_server(
    durable: tuple[RawTransactions, OrderRecords] | None = None,
) -> tuple[grpc.aio.Server, int]:
    """Client streaming: read the batch, answer a summary of one result per order. Bidi:
    answer every message with an execution report (the echo). With ``durable``, the ceiling:
    each call's orders' records are committed to Kafka before the answer."""
    report = TradingMessage(
        execution=ExecutionReport(execution_id="x-1", fill_quantity=to_decimal(NANOS_PER_UNIT))
    ).SerializeToString()

    async def submit(requests: AsyncIterator[bytes], context: Any) -> bytes:
        results = []
        records: list[Record] = []
        async for request in requests:
            order = OrderRequest.FromString(request)
            results.append(OrderResult(order_id=order.order_id, status=common.ORDER_STATUS_FILLED))
            if durable is not None:
                records += durable[1].of(order.order_id)
        if durable is not None:
            await durable[0].append(records)
        return OrderBatchSummary(accepted=len(results), results=results).SerializeToString()

    async def live(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            message = TradingMessage.FromString(request)
            if durable is not None:
                await durable[0].append(durable[1].of(message.new_order.order_id))
            yield report

    def identity(data: bytes) -> bytes:
        return data

    handlers = {
        "SubmitOrders": grpc.stream_unary_rpc_method_handler(submit, identity, identity),
        "LiveTrading": grpc.stream_stream_rpc_method_handler(live, identity, identity),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(BARE_SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


def _settings(kafka: KafkaSettings, run_id: str, reference: Path) -> GatewaySettings:
    return GatewaySettings(
        insecure=True,
        port=0,
        auth_tokens=SecretStr(
            json.dumps({TOKEN: {"account": "bench", "permissions": ["trading"]}})
        ),
        kafka=kafka,
        trading="own",
        trading_id=f"bench-trading-{run_id}",
        orders_topic=f"bench.{run_id}.orders",
        trades_topic=f"bench.{run_id}.trades",
        positions_topic=f"bench.{run_id}.positions",
        trading_reference_file=reference,
        max_orders_per_second=1e9,
        order_burst=1_000_000_000,
        max_order_notional=10**12,
        max_open_notional=10**12,
        max_batch_orders=100_000,
    )


async def _gateway(settings: GatewaySettings) -> tuple[app.Gateway, ManualFeed]:
    feeds: list[ManualFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feeds.append(ManualFeed(market, loop))
        return feeds[0]

    gateway = await app.start(settings, store=MemoryQuoteStore(), feed_factory=feed_factory)
    now = time.time_ns()
    bid, ask = QUOTE_NANOS
    # a deep two-sided quote (no sizes: every order fills whole at the touch)
    feeds[0].push(
        [
            tick_to_proto(
                Tick(
                    exchange=EXCHANGE, symbol=SYMBOL, bid_nanos=bid, ask_nanos=ask,
                    event_time_ns=now, received_time_ns=now, feed_handler_id="bench",
                    feed_sequence=1,
                )
            )
        ]
    )  # fmt: skip
    return gateway, feeds[0]


def _topic_names(run_id: str) -> list[str]:
    return [
        f"bench.{run_id}.{side}{name}"
        for side in ("", "raw.")
        for name in ("orders", "trades", "positions")
    ]


def _topics(kafka: KafkaSettings, run_id: str, create: bool) -> None:
    from confluent_kafka.admin import NewTopic

    admin = make_admin(kafka)
    names = _topic_names(run_id)
    if create:
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names]
        )
    else:
        futures = admin.delete_topics(names, operation_timeout=10)
    for future in futures.values():
        future.result(timeout=30)
    if not create:
        return
    # the gateway reads them back at once: wait until the broker serves their metadata
    deadline = time.monotonic() + 30
    while True:
        listed = admin.list_topics(timeout=10).topics
        served = [n for n in names if n in listed and listed[n].error is None]
        if len(served) == len(names) and all(
            len(listed[n].partitions) == PARTITIONS for n in names
        ):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bench topics {names} were not served within 30 s")
        time.sleep(0.05)


@dataclass
class Side:
    """One server's rounds: orders/s per SubmitOrders round, LiveTrading latencies per round."""

    label: str
    orders_per_s: list[float] = field(default_factory=list)
    latencies_ms: list[list[float]] = field(default_factory=list)
    # SubmitOrders: orders per Kafka transaction (all of a round, warm-up included)
    orders_per_transaction: list[float] = field(default_factory=list)

    @property
    def median_orders_per_s(self) -> float:
        return statistics.median(self.orders_per_s)

    def p50s(self) -> list[float]:
        return [
            statistics.median(sample) if sample else float("nan") for sample in self.latencies_ms
        ]

    def all_latencies(self) -> list[float]:
        return [ms for sample in self.latencies_ms for ms in sample]


@dataclass
class TradingResult:
    sides: dict[str, Side]  # "bare", "ceiling", "gateway"
    bytes_per_order: float


def _transactions(name: str, raw: RawTransactions) -> tuple[float, float]:
    """(transactions, records) committed so far by one side's Kafka producer."""
    if name == "ceiling":
        return raw.transactions, raw.records
    if name == "gateway":  # the journal's own counters (empty barriers commit nothing)
        count = metrics.REGISTRY.get_sample_value("gateway_journal_commit_seconds_count")
        records = metrics.REGISTRY.get_sample_value("gateway_journal_records_total")
        return count or 0.0, records or 0.0
    return 0.0, 0.0


async def measure(args: argparse.Namespace, kafka: KafkaSettings | None = None) -> TradingResult:
    kafka = kafka or KafkaSettings()
    run_id = uuid.uuid4().hex[:10]
    await asyncio.to_thread(_topics, kafka, run_id, True)
    sides = {
        "bare": Side("bare, no write"),
        "ceiling": Side("raw Kafka ceiling"),
        "gateway": Side("gateway"),
    }
    with tempfile.TemporaryDirectory() as folder:
        reference = Path(folder) / "reference.json"
        reference.write_text(json.dumps({"exchanges": {EXCHANGE: {"tick": "0.01", "lot": "1"}}}))
        settings = _settings(kafka, run_id, reference)
        loop = asyncio.get_running_loop()
        raw_topics = TradingTopics(
            *(f"bench.{run_id}.raw.{n}" for n in ("orders", "trades", "positions"))
        )
        records = OrderRecords(settings, raw_topics)
        raw = RawTransactions(kafka, f"bench-raw-{run_id}", loop)
        await asyncio.to_thread(raw.start, 30)
        bare, bare_port = await _bare_server()
        ceiling, ceiling_port = await _bare_server((raw, records))
        gateway, _ = await _gateway(settings)
        targets = {
            "bare": (f"127.0.0.1:{bare_port}", BARE_SERVICE),
            "ceiling": (f"127.0.0.1:{ceiling_port}", BARE_SERVICE),
            "gateway": (f"127.0.0.1:{gateway.port}", SERVICE),
        }
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            for round_ in range(args.repeats):
                # reversed every other round, so a drift in the machine's load is shared
                order = list(targets) if round_ % 2 == 0 else list(reversed(targets))
                for name in order:
                    target, service = targets[name]
                    transactions, written = _transactions(name, raw)
                    orders = await loop.run_in_executor(
                        pool, _submit_client, target, f"/{service}/SubmitOrders", args.batch,
                        args.concurrency, args.warmup, args.seconds,
                    )  # fmt: skip
                    sides[name].orders_per_s.append(orders / args.seconds)
                    transactions_after, written_after = _transactions(name, raw)
                    if transactions_after > transactions:
                        sides[name].orders_per_transaction.append(
                            (written_after - written)
                            / RECORDS_PER_ORDER
                            / (transactions_after - transactions)
                        )
                for name in order:
                    target, service = targets[name]
                    latencies = await loop.run_in_executor(
                        pool, _session_client, target, f"/{service}/LiveTrading", args.warmup,
                        args.seconds,
                    )  # fmt: skip
                    sides[name].latencies_ms.append(latencies)
        finally:
            pool.shutdown()
            await app.stop(gateway)
            await bare.stop(0)
            await ceiling.stop(0)
            await asyncio.to_thread(raw.stop)
            await asyncio.to_thread(_topics, kafka, run_id, False)
    return TradingResult(sides, records.bytes_per_order)


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _range(values: list[float], fmt: str) -> str:
    return f"{format(min(values), fmt)}-{format(max(values), fmt)}"


def print_result(result: TradingResult, args: argparse.Namespace) -> None:
    sides = result.sides
    bare, ceiling, gateway = sides["bare"], sides["ceiling"], sides["gateway"]
    rounds = len(gateway.orders_per_s)
    print(
        f"\n{rounds} interleaved rounds of {args.seconds:g} s per case; median of the rounds "
        f"(range). Records: 4 per order, {result.bytes_per_order:.0f} bytes of keys and values"
    )
    print(
        f"\nSubmitOrders, orders/s answered (batches of {args.batch}, {args.concurrency} in flight)"
    )
    print(f"{'':<20} {'orders/s':>9} {'range':>15} {'orders per transaction':>23}")
    for side in (ceiling, gateway, bare):
        grouped = side.orders_per_transaction
        per_transaction = f"{statistics.median(grouped):,.0f}" if grouped else "-"
        print(
            f"{side.label:<20} {side.median_orders_per_s:>9,.0f} "
            f"{_range(side.orders_per_s, ',.0f'):>15} {per_transaction:>23}"
        )
    print("\nLiveTrading, new order to execution report, one at a time (ms; p50, p99 of all")
    print("rounds' orders; range of the rounds' p50s)")
    print(f"{'':<20} {'p50':>7} {'p99':>7} {'p50 range':>12} {'orders':>7}")
    for side in (ceiling, gateway, bare):
        latencies = side.all_latencies()
        p50 = statistics.median(latencies) if latencies else float("nan")
        print(
            f"{side.label:<20} {p50:>7.2f} {_percentile(latencies, 0.99):>7.2f} "
            f"{_range(side.p50s(), '.2f'):>12} {len(latencies):>7}"
        )
    print("\nHeadline, gateway against the ceiling that does the same Kafka work:")
    print(
        f"  SubmitOrders {_ratio(gateway.orders_per_s, ceiling.orders_per_s)} of the ceiling's "
        f"orders/s; {_ratio(gateway.orders_per_s, bare.orders_per_s)} of a bare server writing "
        "nothing"
    )
    latencies = gateway.all_latencies()
    ceiling_latencies = ceiling.all_latencies()
    if latencies and ceiling_latencies:
        p50 = statistics.median(latencies) / statistics.median(ceiling_latencies)
        p99 = _percentile(latencies, 0.99) / _percentile(ceiling_latencies, 0.99)
        print(f"  LiveTrading latency {p50:.2f}x the ceiling's at p50, {p99:.2f}x at p99")
        if min(p50, p99) < 1:  # faster than its own ceiling: only the broker's tail differs
            print("  (below 1x: noise; both wait on the same commits, whose tail is the broker's)")


def _ratio(ours: list[float], ceiling: list[float]) -> str:
    """Median over median, with the range of the rounds' own ratios (each round's gateway
    over the same round's ceiling)."""
    median = statistics.median(ours) / statistics.median(ceiling)
    pairs = [a / b for a, b in zip(ours, ceiling, strict=True) if b]
    return f"{median:.0%} (rounds {_range(pairs, '.0%')})"


def run(args: argparse.Namespace) -> int:
    configure_logging(LogSettings(level="WARNING"))  # the tables are the output
    print(f"machine: {describe_machine()}; load average {load_average()}")
    print("clients: 1 process, pre-encoded requests; servers: this process, uvloop; Kafka: real")
    result = uvloop.run(measure(args))
    print_result(result, args)
    print(f"load average after: {load_average()}")
    return 0
