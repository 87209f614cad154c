"""``mdgw bench gateway``: what the gateway delivers beside a bare grpc.aio server, same run.

- StreamPrices: updates/s received by 1, 10 and 100 subscribers (each its own connection,
  every subscriber on the same 100 symbols, throttle 0). Beside it, a bare grpc.aio server
  streaming pre-encoded PriceUpdates as fast as it can. The gateway runs whole (interceptor,
  auth, fan-out, conflation, stamping) with a synthetic in-process feed offering twice the
  per-subscriber rate the bare server reached, so it is never starved; Kafka is left out (see
  ``mdgw bench tickwriter`` for Kafka).
- GetQuote: requests/s from closed-loop clients, and p50/p99 at half that rate (open loop),
  beside a bare grpc.aio unary echo of the same request.

Clients run in two worker processes, and receive raw bytes (no decoding) from both servers.
Servers run in this process on uvloop. Absolute figures swing with machine load; compare the
ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import grpc
import uvloop
from pydantic import SecretStr

from financial.marketdata.v1.prices_pb2 import (
    PriceSubscription,
    PriceUpdate,
    PriceUpdateBatch,
    QuoteRequest,
)
from gateway import app
from gateway.config import GatewaySettings
from gateway.core.updates import FeedUpdate
from gateway.fakes import MemoryQuoteStore
from gateway.market import MarketData
from gateway.security import SERVICE
from marketcore.instruments import InstrumentKey
from marketcore.ticks import Tick
from mdgw.machine import describe_machine

TOKEN = "bench-token-0123456789abcdef"
SYMBOLS = [f"SYM{n:03d}" for n in range(100)]
EXCHANGE = "BENCH"
WORKERS = 2
BARE_SERVICE = "bench.Bare"
BATCH = 10  # updates per StreamPriceBatches message asked for
BATCH_DELAY_MS = 5
FEED_RATE_CAP = 200_000.0  # synthetic ticks/s: beyond this the feed alone fills the core
LOCAL_POOL = [("grpc.use_local_subchannel_pool", 1)]


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("gateway", help="StreamPrices and GetQuote vs bare grpc.aio")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per case")
    parser.add_argument(
        "--subscribers", default="1,10,100,1000", help="comma-separated subscriber counts"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="GetQuote calls in flight")
    parser.set_defaults(handler=run)


# -- client workers (separate processes) ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamJob:
    target: str
    method: str
    request: bytes
    metadata: tuple[tuple[str, str], ...]
    subscribers: int
    warmup_s: float
    seconds: float
    batched: bool = False  # messages are PriceUpdateBatch: count the updates inside


@dataclass(frozen=True, slots=True)
class UnaryJob:
    target: str
    method: str
    requests: tuple[bytes, ...]
    metadata: tuple[tuple[str, str], ...]
    concurrency: int
    warmup_s: float
    seconds: float
    rate: float  # calls/s from this worker; 0: closed loop (as fast as answers come)


def _worker(connection: Connection) -> None:
    while True:
        job = connection.recv()
        if job is None:
            return
        if isinstance(job, StreamJob):
            connection.send(uvloop.run(_stream_job(job)))
        else:
            connection.send(uvloop.run(_unary_job(job)))


async def _stream_job(job: StreamJob) -> int:
    received = [0]
    channels = [
        grpc.aio.insecure_channel(job.target, options=LOCAL_POOL) for _ in range(job.subscribers)
    ]

    async def subscriber(channel: grpc.aio.Channel) -> None:
        method: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(job.method)
        if job.batched:
            async for message in method(job.request, metadata=job.metadata):
                received[0] += len(PriceUpdateBatch.FromString(message).updates)
        else:
            async for _ in method(job.request, metadata=job.metadata):
                received[0] += 1

    tasks = [asyncio.create_task(subscriber(channel)) for channel in channels]
    await asyncio.sleep(job.warmup_s)
    start = received[0]
    await asyncio.sleep(job.seconds)
    count = received[0] - start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for channel in channels:
        await channel.close()
    return count


async def _unary_job(job: UnaryJob) -> tuple[int, list[float]]:
    async with grpc.aio.insecure_channel(job.target, options=LOCAL_POOL) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(job.method)
        latencies_ms: list[float] = []
        measuring = [False]
        stop_at = time.perf_counter() + job.warmup_s + job.seconds
        count = [0]

        async def one(index: int) -> None:
            started = time.perf_counter()
            await call(job.requests[index % len(job.requests)], metadata=job.metadata, timeout=5)
            if measuring[0]:
                latencies_ms.append((time.perf_counter() - started) * 1000)
                count[0] += 1

        async def closed_loop(offset: int) -> None:
            index = offset
            while time.perf_counter() < stop_at:
                await one(index)
                index += job.concurrency

        async def open_loop() -> None:
            interval = 1 / job.rate
            next_at = time.perf_counter()
            pending: set[asyncio.Task[None]] = set()
            index = 0
            while next_at < stop_at:
                delay = next_at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                task = asyncio.create_task(one(index))
                pending.add(task)
                task.add_done_callback(pending.discard)
                index += 1
                next_at += interval
            await asyncio.gather(*pending)

        async def measure() -> None:
            await asyncio.sleep(job.warmup_s)
            measuring[0] = True

        runners = (
            [closed_loop(n) for n in range(job.concurrency)] if not job.rate else [open_loop()]
        )
        await asyncio.gather(measure(), *runners)
        return count[0], latencies_ms


class Workers:
    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._processes = []
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(target=_worker, args=(theirs,), daemon=True)
            process.start()
            self._pipes.append(ours)
            self._processes.append(process)

    async def run(self, jobs: list[Any]) -> list[Any]:
        for pipe, job in zip(self._pipes, jobs, strict=False):
            pipe.send(job)
        busy = self._pipes[: len(jobs)]
        return list(await asyncio.gather(*(asyncio.to_thread(pipe.recv) for pipe in busy)))

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.send(None)
        for process in self._processes:
            process.join(5)


def _split(total: int, parts: int) -> list[int]:
    return [
        n for n in (total // parts + (1 if i < total % parts else 0) for i in range(parts)) if n
    ]


# -- servers ----------------------------------------------------------------------------------


def _price(symbol: str, n: int) -> PriceUpdate:
    return PriceUpdate(
        exchange=EXCHANGE, symbol=symbol, bid_micros=100_000_000 + n % 1000,
        ask_micros=100_010_000 + n % 1000, last_micros=100_005_000, bid_size_micros=100_000_000,
        ask_size_micros=200_000_000, event_time_ns=time.time_ns(), received_time_ns=time.time_ns(),
        feed_handler_id="bench", feed_sequence=n,
    )  # fmt: skip


async def _bare_server() -> tuple[grpc.aio.Server, int]:
    """The ceiling: no interceptor, no auth, no fan-out; pre-encoded messages and an echo."""
    encoded = [_price(symbol, n).SerializeToString() for n, symbol in enumerate(SYMBOLS)]

    async def stream(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        # context.write, not an async generator: measured faster here, so the higher ceiling
        while True:
            for message in encoded:
                await context.write(message)

    batches = [
        PriceUpdateBatch(
            updates=[_price(symbol, n) for n, symbol in enumerate(SYMBOLS[i : i + BATCH])]
        ).SerializeToString()
        for i in range(0, len(SYMBOLS), BATCH)
    ]

    async def stream_batches(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        while True:
            for message in batches:
                await context.write(message)

    async def echo(request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return request

    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "StreamBatches": grpc.unary_stream_rpc_method_handler(stream_batches),
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(BARE_SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


class SyntheticFeed:
    """A ``Feed`` that offers ``rate`` fresh ticks/s over SYMBOLS from a loop task."""

    def __init__(self, market: MarketData, loop: asyncio.AbstractEventLoop) -> None:
        self._market = market
        self._loop = loop
        self._payloads = {symbol: _price(symbol, 0).SerializeToString() for symbol in SYMBOLS}
        self._keys = {symbol: InstrumentKey(EXCHANGE, symbol) for symbol in SYMBOLS}
        self._task: asyncio.Task[None] | None = None
        self.rate = 0.0
        self.sequence = 0

    def start(self, timeout_s: float) -> None:
        self._task = self._loop.create_task(self._run())

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def alive(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def crashed(self) -> BaseException | None:
        return None

    def ticks(self, count: int) -> list[FeedUpdate]:
        updates = []
        now = time.time_ns()
        for _ in range(count):
            self.sequence += 1
            symbol = SYMBOLS[self.sequence % len(SYMBOLS)]
            tick = Tick(
                exchange=EXCHANGE, symbol=symbol, bid_micros=100_000_000, ask_micros=100_010_000,
                event_time_ns=now + self.sequence, feed_handler_id="bench",
                feed_sequence=self.sequence,
            )  # fmt: skip
            updates.append(FeedUpdate(self._keys[symbol], tick, self._payloads[symbol]))
        return updates

    async def _run(self) -> None:
        interval_s = 0.005
        owed = 0.0
        while True:
            await asyncio.sleep(interval_s)
            owed += self.rate * interval_s
            count = int(owed)
            if count:
                owed -= count
                self._market.apply(self.ticks(count))


async def _gateway() -> tuple[app.Gateway, SyntheticFeed]:
    feeds: list[SyntheticFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> SyntheticFeed:
        feeds.append(SyntheticFeed(market, loop))
        return feeds[0]

    settings = GatewaySettings(
        insecure=True,
        port=0,
        auth_tokens=SecretStr(json.dumps({TOKEN: {"account": "bench"}})),
        max_lag_ms=60_000,
        max_streams=100_000,
        shutdown_grace_s=1,
        trading="off",  # market data only here; `mdgw bench trading` measures trading
    )
    gateway = await app.start(settings, store=MemoryQuoteStore(), feed_factory=feed_factory)
    feeds[0].rate = 0
    gateway.market.apply(feeds[0].ticks(len(SYMBOLS)))  # every symbol known: quotes from memory
    return gateway, feeds[0]


# -- the run ----------------------------------------------------------------------------------


@dataclass
class StreamRow:
    rpc: str
    subscribers: int
    bare: float
    gateway: float
    feed_rate: float


@dataclass
class QuoteRow:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    load_rps: float


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def _streams(
    workers: Workers,
    bare_port: int,
    gateway: app.Gateway,
    feed: SyntheticFeed,
    args: argparse.Namespace,
) -> list[StreamRow]:
    """Per subscriber count: StreamPrices, then StreamPriceBatches (batches of ``BATCH``), each
    beside the bare server streaming pre-built messages of the same shape."""
    rows = []
    plain = PriceSubscription(symbols=SYMBOLS, exchange=EXCHANGE).SerializeToString()
    batched = PriceSubscription(
        symbols=SYMBOLS, exchange=EXCHANGE, max_batch_size=BATCH, max_delay_ms=BATCH_DELAY_MS
    ).SerializeToString()
    auth = (("authorization", f"Bearer {TOKEN}"),)
    cases = [
        ("StreamPrices", "Stream", plain, False),
        (f"StreamPriceBatches ({BATCH})", "StreamBatches", batched, True),
    ]
    for subscribers in [int(n) for n in args.subscribers.split(",") if n.strip()]:
        counts = _split(subscribers, WORKERS)
        for name, bare_method, request, is_batched in cases:

            def jobs(
                target: str,
                method: str,
                metadata: tuple[tuple[str, str], ...],
                body: bytes,
                counts: list[int] = counts,
                is_batched: bool = is_batched,
            ) -> list[StreamJob]:
                return [
                    StreamJob(
                        target, method, body, metadata, n, args.warmup, args.seconds, is_batched
                    )
                    for n in counts
                ]

            bare_jobs = jobs(f"127.0.0.1:{bare_port}", f"/{BARE_SERVICE}/{bare_method}", (), b"")
            bare = sum(await workers.run(bare_jobs)) / args.seconds
            # Offer more than a subscriber can take, so the gateway is never starved (the
            # surplus is conflated, which is part of its work); the feed runs in the server's
            # process, so its cost counts against the gateway.
            feed.rate = max(1_000.0, min(2 * bare / subscribers, FEED_RATE_CAP))
            rpc = "StreamPriceBatches" if is_batched else "StreamPrices"
            gateway_jobs = jobs(f"127.0.0.1:{gateway.port}", f"/{SERVICE}/{rpc}", auth, request)
            delivered = sum(await workers.run(gateway_jobs)) / args.seconds
            rows.append(StreamRow(name, subscribers, bare, delivered, feed.rate))
            feed.rate = 0
            await asyncio.sleep(0.5)  # let the cancelled streams close
    return rows


async def _quotes(
    workers: Workers, bare_port: int, gateway: app.Gateway, args: argparse.Namespace
) -> list[QuoteRow]:
    requests = tuple(QuoteRequest(symbol=s, exchange=EXCHANGE).SerializeToString() for s in SYMBOLS)
    auth = (("authorization", f"Bearer {TOKEN}"),)
    cases: list[tuple[str, str, tuple[tuple[str, str], ...]]] = [
        ("bare grpc.aio echo", f"127.0.0.1:{bare_port}|/{BARE_SERVICE}/Echo", ()),
        ("gateway GetQuote", f"127.0.0.1:{gateway.port}|/{SERVICE}/GetQuote", auth),
    ]
    rows = []
    per_worker = max(1, args.concurrency // WORKERS)
    for name, where, metadata in cases:
        target, method = where.split("|")

        def job(
            rate: float,
            target: str = target,
            method: str = method,
            metadata: tuple[tuple[str, str], ...] = metadata,
        ) -> UnaryJob:
            return UnaryJob(
                target, method, requests, metadata, per_worker, args.warmup, args.seconds, rate
            )

        results = await workers.run([job(0) for _ in range(WORKERS)])
        rps = sum(count for count, _ in results) / args.seconds
        half = rps / 2
        paced = await workers.run([job(half / WORKERS) for _ in range(WORKERS)])
        latencies = [ms for _, sample in paced for ms in sample]
        rows.append(
            QuoteRow(name, rps, statistics.median(latencies), _percentile(latencies, 0.99), half)
        )
    return rows


async def _run(args: argparse.Namespace) -> tuple[list[StreamRow], list[QuoteRow]]:
    workers = await asyncio.to_thread(Workers, WORKERS)
    bare, bare_port = await _bare_server()
    gateway, feed = await _gateway()
    try:
        streams = await _streams(workers, bare_port, gateway, feed, args)
        quotes = await _quotes(workers, bare_port, gateway, args)
    finally:
        await app.stop(gateway)
        await bare.stop(0)
        workers.close()
    return streams, quotes


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    print(f"machine: {describe_machine()}")
    print("clients: 2 worker processes, raw bytes; servers: this process, uvloop")
    streams, quotes = uvloop.run(_run(args))
    print("\nPrice streams, updates/s delivered (100 symbols, throttle 0)")
    print(
        f"{'rpc':<24} {'subscribers':>11} {'bare grpc.aio':>14} {'gateway':>10} {'ratio':>6}"
        f" {'vs StreamPrices':>16}  gateway feed"
    )
    plain = {row.subscribers: row.gateway for row in streams if row.rpc == "StreamPrices"}
    for row in streams:
        gain = row.gateway / plain[row.subscribers] if plain.get(row.subscribers) else 0.0
        print(
            f"{row.rpc:<24} {row.subscribers:>11} {row.bare:>14,.0f} {row.gateway:>10,.0f} "
            f"{row.gateway / row.bare:>6.0%} {gain:>15.1f}x  {row.feed_rate:,.0f} ticks/s offered"
        )
    print("\nGetQuote (memory) vs unary echo: closed-loop requests/s; latency at half that load")
    print(f"{'':<20} {'requests/s':>11} {'p50 ms':>7} {'p99 ms':>7}  at")
    for quote in quotes:
        print(
            f"{quote.name:<20} {quote.rps:>11,.0f} {quote.p50_ms:>7.2f} {quote.p99_ms:>7.2f}  "
            f"{quote.load_rps:,.0f}/s"
        )
    bare_rps, gateway_rps = quotes[0].rps, quotes[1].rps
    print(f"{'ratio':<20} {gateway_rps / bare_rps:>11.0%}")
    print(f"\n(run took {time.perf_counter() - started:.0f} s)")
    return 0
