"""``mdgw bench trading``: orders through the gateway beside bare grpc.aio, same run.

- SubmitOrders: orders/s from clients sending batches of market orders that all fill (each
  order commits four records to Kafka in the trading log's transactions: NEW, the execution,
  FILLED and the position). Beside it, a bare grpc.aio client-streaming server that reads the
  same batches and answers a summary of the same size.
- LiveTrading: order-to-execution-report latency, one order at a time per session (closed
  loop), p50/p99, beside a bare grpc.aio bidirectional echo.

Needs the real Kafka (``mdgw infra up``): the bench makes its own topics and deletes them.
The gateway runs in this process on uvloop with an in-process feed holding one deep quote;
clients run in another process and send pre-encoded requests. Compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import uvloop
from pydantic import SecretStr

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import (
    ExecutionReport,
    OrderBatchSummary,
    OrderRequest,
    OrderResult,
    TradingMessage,
)
from gateway import app
from gateway.config import GatewaySettings
from gateway.fakes import ManualFeed, MemoryQuoteStore
from gateway.market import MarketData
from gateway.security import SERVICE
from marketcore.fixed_point import NANOS_PER_UNIT
from marketcore.ticks import Tick
from marketinfra.decimal_codec import to_decimal
from marketinfra.kafka import make_admin
from marketinfra.settings import KafkaSettings
from marketinfra.tick_codec import tick_to_proto
from mdgw.machine import describe_machine

TOKEN = "bench-token-0123456789abcdef"
EXCHANGE = "BENCH"
SYMBOL = "BENCH-USD"
BARE_SERVICE = "bench.BareTrading"
LOCAL_POOL = [("grpc.use_local_subchannel_pool", 1)]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "trading", help="SubmitOrders and LiveTrading vs bare grpc.aio (needs Kafka)"
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per case")
    parser.add_argument("--batch", type=int, default=100, help="orders per SubmitOrders call")
    parser.add_argument("--concurrency", type=int, default=4, help="calls in flight")
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


async def _bare_server() -> tuple[grpc.aio.Server, int]:
    """Client streaming: read the batch, answer a summary of one result per order. Bidi:
    answer every message with an execution report (the echo)."""
    report = TradingMessage(
        execution=ExecutionReport(execution_id="x-1", fill_quantity=to_decimal(NANOS_PER_UNIT))
    ).SerializeToString()

    async def submit(requests: AsyncIterator[bytes], context: Any) -> bytes:
        results = []
        async for request in requests:
            order = OrderRequest.FromString(request)
            results.append(OrderResult(order_id=order.order_id, status=common.ORDER_STATUS_FILLED))
        return OrderBatchSummary(accepted=len(results), results=results).SerializeToString()

    async def live(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            TradingMessage.FromString(request)
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


async def _gateway(
    kafka: KafkaSettings, run_id: str, reference: Path
) -> tuple[app.Gateway, ManualFeed]:
    settings = GatewaySettings(
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
    feeds: list[ManualFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> ManualFeed:
        feeds.append(ManualFeed(market, loop))
        return feeds[0]

    gateway = await app.start(settings, store=MemoryQuoteStore(), feed_factory=feed_factory)
    now = time.time_ns()
    # a deep two-sided quote (no sizes: every order fills whole at the touch)
    feeds[0].push(
        [
            tick_to_proto(
                Tick(
                    exchange=EXCHANGE, symbol=SYMBOL, bid_nanos=100_000_000_000,
                    ask_nanos=100_010_000_000, event_time_ns=now, received_time_ns=now,
                    feed_handler_id="bench", feed_sequence=1,
                )
            )
        ]
    )  # fmt: skip
    return gateway, feeds[0]


def _topics(kafka: KafkaSettings, run_id: str, create: bool) -> None:
    from confluent_kafka.admin import NewTopic

    admin = make_admin(kafka)
    names = [f"bench.{run_id}.{name}" for name in ("orders", "trades", "positions")]
    if create:
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=8, replication_factor=1) for n in names]
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
        if len(served) == len(names) and all(len(listed[n].partitions) == 8 for n in names):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the bench topics {names} were not served within 30 s")
        time.sleep(0.05)


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    kafka = KafkaSettings()
    run_id = uuid.uuid4().hex[:10]
    await asyncio.to_thread(_topics, kafka, run_id, True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as folder:
        reference = Path(folder) / "reference.json"
        reference.write_text(json.dumps({"exchanges": {EXCHANGE: {"tick": "0.01", "lot": "1"}}}))
        bare, bare_port = await _bare_server()
        gateway, _ = await _gateway(kafka, run_id, reference)
        loop = asyncio.get_running_loop()
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        try:
            for name, target, service in (
                ("bare", f"127.0.0.1:{bare_port}", BARE_SERVICE),
                ("gateway", f"127.0.0.1:{gateway.port}", SERVICE),
            ):
                orders = await loop.run_in_executor(
                    pool, _submit_client, target, f"/{service}/SubmitOrders", args.batch,
                    args.concurrency, args.warmup, args.seconds,
                )  # fmt: skip
                latencies = await loop.run_in_executor(
                    pool, _session_client, target, f"/{service}/LiveTrading", args.warmup,
                    args.seconds,
                )  # fmt: skip
                results[name] = {"orders_per_s": orders / args.seconds, "latencies": latencies}
        finally:
            pool.shutdown()
            await app.stop(gateway)
            await bare.stop(0)
            await asyncio.to_thread(_topics, kafka, run_id, False)
    return results


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(args: argparse.Namespace) -> int:
    print(f"machine: {describe_machine()}")
    print("clients: 1 process, pre-encoded requests; servers: this process, uvloop; Kafka: real")
    results = uvloop.run(_run(args))
    bare, gateway = results["bare"], results["gateway"]
    print(
        f"\nSubmitOrders, orders/s answered (batches of {args.batch}, {args.concurrency} in flight)"
    )
    print(f"{'bare grpc.aio':>14} {'gateway':>10} {'ratio':>6}")
    ratio = gateway["orders_per_s"] / bare["orders_per_s"] if bare["orders_per_s"] else 0.0
    print(f"{bare['orders_per_s']:>14,.0f} {gateway['orders_per_s']:>10,.0f} {ratio:>6.0%}")
    print("\nLiveTrading, new order to execution report, one at a time (ms)")
    print(f"{'':<16} {'p50':>7} {'p99':>7} {'orders':>7}")
    for name, label in (("bare", "bare bidi echo"), ("gateway", "gateway")):
        latencies = results[name]["latencies"]
        print(
            f"{label:<16} {statistics.median(latencies) if latencies else float('nan'):>7.2f} "
            f"{_percentile(latencies, 0.99):>7.2f} {len(latencies):>7}"
        )
    return 0
