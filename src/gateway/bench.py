"""``mdgw bench gateway``: what the gateway delivers beside a bare grpc.aio server, same run.

- StreamPrices and StreamPriceBatches: updates/s received by 1, 10, 100 and 1,000 subscribers
  (each its own connection, every subscriber on the same 100 symbols, throttle 0). Beside it, a
  bare grpc.aio server streaming pre-encoded messages of the same shape as fast as it can. The
  gateway runs whole (interceptor, auth, fan-out, conflation, stamping) with a synthetic
  in-process feed offering twice the per-subscriber rate the faster bare server reached, so it
  is never starved; both RPCs get the same feed (set from the bare batch stream, the faster).
  Kafka is left out (see ``mdgw bench tickwriter`` for Kafka).
- GetQuote: requests/s from closed-loop clients, and p50/p99 at half that rate (open loop),
  beside a bare grpc.aio unary echo of the same request.
- Workers: every case runs for each count in ``--workers``: N server processes on one port
  (SO_REUSEPORT, as ``mdgw gateway --workers N``), each with its own feed, beside N bare
  server processes on one port. The kernel spreads connections over the processes, so the
  clients open several (one per subscriber; a few per unary client).

The headline is gateway / bare per RPC: each row's own ceiling is the bare server doing the
same RPC shape. (Batches against StreamPrices is mostly message framing, which the bare servers
show too, so it is printed for context only.) Bare and gateway are measured interleaved, so a
drift of the machine's load cannot put a row above its ceiling: ``--repeats`` rounds of every
case, bare then gateway, the order reversed every other round; each figure is the median of
the rounds, and the ratio's spread (the range of each round's gateway over the same round's
bare) is printed beside it.

Clients run in two worker processes and receive raw bytes (no decoding) from both servers.
Servers run in processes of their own, on uvloop. Absolute figures swing with machine load;
compare the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

import grpc
import uvloop
from pydantic import SecretStr

from financial.marketdata.v2.prices_pb2 import (
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
from marketinfra.logging import configure_logging
from marketinfra.settings import LogSettings
from marketinfra.tick_codec import tick_to_proto
from mdgw.machine import describe_machine, load_average

TOKEN = "bench-token-0123456789abcdef"
SYMBOLS = [f"SYM{n:03d}" for n in range(100)]
EXCHANGE = "BENCH"
CLIENT_PROCESSES = 2
BARE_SERVICE = "bench.Bare"
BATCH = 10  # updates per StreamPriceBatches message asked for
BATCH_DELAY_MS = 5
FEED_RATE_CAP = 200_000.0  # synthetic ticks/s: beyond this the feed alone fills the core
LOCAL_POOL = [("grpc.use_local_subchannel_pool", 1)]
UNARY_CONNECTIONS = 4  # per client process: the kernel spreads connections over workers
_LOST = (
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("gateway", help="StreamPrices and GetQuote vs bare grpc.aio")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per case")
    parser.add_argument("--warmup", type=float, default=1.0, help="unmeasured time per case")
    parser.add_argument(
        "--subscribers", default="1,10,100,1000", help="comma-separated subscriber counts"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="GetQuote calls in flight")
    parser.add_argument(
        "--repeats", type=int, default=3, help="interleaved bare/gateway rounds of every case"
    )
    parser.add_argument(
        "--workers",
        default=f"1,{os.cpu_count() or 1}",
        help="comma-separated server process counts (default: 1 and one per core)",
    )
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


async def _unary_job(job: UnaryJob) -> tuple[int, list[float], int]:
    channels = [
        grpc.aio.insecure_channel(job.target, options=LOCAL_POOL) for _ in range(UNARY_CONNECTIONS)
    ]
    try:
        return await _unary_calls(job, [channel.unary_unary(job.method) for channel in channels])
    finally:
        for channel in channels:
            await channel.close()


async def _answered(
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes],
    request: bytes,
    metadata: tuple[tuple[str, str], ...],
) -> bool:
    """False for a call lost to an overloaded machine (the run goes on; the count is printed)."""
    try:
        await call(request, metadata=metadata, timeout=5)
    except grpc.aio.AioRpcError as exc:
        if exc.code() not in _LOST:
            raise
        return False
    return True


async def _unary_calls(
    job: UnaryJob, calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]]
) -> tuple[int, list[float], int]:
    """(calls answered while measuring, their latencies, calls that failed)."""
    latencies_ms: list[float] = []
    measuring = [False]
    stop_at = time.perf_counter() + job.warmup_s + job.seconds
    count = [0]
    failed = [0]

    async def one(index: int) -> None:
        started = time.perf_counter()
        call = calls[index % len(calls)]
        if not await _answered(call, job.requests[index % len(job.requests)], job.metadata):
            failed[0] += 1
            return
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

    runners = [closed_loop(n) for n in range(job.concurrency)] if not job.rate else [open_loop()]
    await asyncio.gather(measure(), *runners)
    return count[0], latencies_ms, failed[0]


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
    return tick_to_proto(
        Tick(
            exchange=EXCHANGE, symbol=symbol, bid_nanos=100_000_000_000 + n % 1000 * 1000,
            ask_nanos=100_010_000_000 + n % 1000 * 1000, last_nanos=100_005_000_000,
            bid_size_nanos=100_000_000_000, ask_size_nanos=200_000_000_000,
            event_time_ns=time.time_ns(), received_time_ns=time.time_ns(),
            feed_handler_id="bench", feed_sequence=n,
        )
    )  # fmt: skip


async def _bare_server(port: int) -> tuple[grpc.aio.Server, int]:
    """The ceiling: no interceptor, no auth, no fan-out; pre-encoded messages and an echo."""
    encoded = [_price(symbol, n).SerializeToString() for n, symbol in enumerate(SYMBOLS)]

    async def write_forever(
        messages: list[bytes], context: grpc.aio.ServicerContext[Any, Any]
    ) -> None:
        # context.write, not an async generator: measured faster here, so the higher ceiling
        try:
            while True:
                for message in messages:
                    await context.write(message)
        except Exception:  # grpc raises a private error type for a dead call, as the gateway
            if context.cancelled() or context.done():
                return  # the subscriber went away: the case is over
            raise

    async def stream(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await write_forever(encoded, context)

    batches = [
        PriceUpdateBatch(
            updates=[_price(symbol, n) for n, symbol in enumerate(SYMBOLS[i : i + BATCH])]
        ).SerializeToString()
        for i in range(0, len(SYMBOLS), BATCH)
    ]

    async def stream_batches(_request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await write_forever(batches, context)

    async def echo(request: bytes, _context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        return request

    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Stream": grpc.unary_stream_rpc_method_handler(stream),
        "StreamBatches": grpc.unary_stream_rpc_method_handler(stream_batches),
        "Echo": grpc.unary_unary_rpc_method_handler(echo),
    }
    server = grpc.aio.server(options=[("grpc.so_reuseport", 1)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(BARE_SERVICE, handlers),))
    port = server.add_insecure_port(f"127.0.0.1:{port}")
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

    @property
    def connected(self) -> bool:
        return self.alive

    def ticks(self, count: int) -> list[FeedUpdate]:
        updates = []
        now = time.time_ns()
        for _ in range(count):
            self.sequence += 1
            symbol = SYMBOLS[self.sequence % len(SYMBOLS)]
            tick = Tick(
                exchange=EXCHANGE, symbol=symbol, bid_nanos=100_000_000_000,
                ask_nanos=100_010_000_000,
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


async def _gateway(port: int) -> tuple[app.Gateway, SyntheticFeed]:
    feeds: list[SyntheticFeed] = []

    def feed_factory(market: MarketData, loop: asyncio.AbstractEventLoop) -> SyntheticFeed:
        feeds.append(SyntheticFeed(market, loop))
        return feeds[0]

    settings = GatewaySettings(
        insecure=True,
        port=port,
        reuse_port=True,
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


class _ServerCommand(NamedTuple):
    feed_rate: float | None  # None: stop


def _server_process(kind: str, port: int, connection: Connection) -> None:
    configure_logging(LogSettings(level="WARNING"))  # the tables are the output
    uvloop.run(_serve(kind, port, connection))


async def _serve(kind: str, port: int, connection: Connection) -> None:
    """One server process: bind (sharing ``port`` when given), report the port, then follow
    commands (the gateway's feed rate) until told to stop."""
    feed: SyntheticFeed | None = None
    stop: Callable[[], Awaitable[None]]
    if kind == "bare":
        server, port = await _bare_server(port)
        stop = partial(server.stop, 0)
    else:
        gateway, feed = await _gateway(port)
        port = gateway.port
        stop = partial(app.stop, gateway)
    connection.send(port)
    try:
        while True:
            command: _ServerCommand = await asyncio.to_thread(connection.recv)
            if command.feed_rate is None:
                return
            if feed is not None:
                feed.rate = command.feed_rate
            connection.send(True)
    finally:
        await stop()


class ServerGroup:
    """``count`` server processes of one kind (``bare`` or ``gateway``) on one port."""

    def __init__(self, kind: str, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._processes: list[Any] = []
        self.port = 0
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_server_process, args=(kind, self.port, theirs), daemon=True
            )
            process.start()
            self._pipes.append(ours)
            self._processes.append(process)
            self.port = ours.recv()  # the first binds a free port; the others share it

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def set_feed_rate(self, rate: float) -> None:
        for pipe in self._pipes:
            pipe.send(_ServerCommand(rate))
        for pipe in self._pipes:
            pipe.recv()

    def cpu_seconds(self) -> float:
        """CPU time its processes have used so far (Linux ``/proc``; NaN elsewhere)."""
        return sum(_process_cpu_seconds(process.pid) for process in self._processes)

    def __len__(self) -> int:
        return len(self._processes)

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.send(_ServerCommand(None))
        for process in self._processes:
            process.join(10)
            if process.is_alive():
                process.kill()


def _process_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()  # the name may hold spaces
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


async def _timed(group: ServerGroup, work: Awaitable[Any]) -> tuple[Any, float]:
    """``work``'s result, and the cores ``group`` used meanwhile (CPU seconds per second)."""
    cpu, started = group.cpu_seconds(), time.monotonic()
    result = await work
    return result, (group.cpu_seconds() - cpu) / (time.monotonic() - started)


# -- the run ----------------------------------------------------------------------------------


@dataclass
class StreamRow:
    """One case, measured in interleaved rounds: per round, what bare and gateway delivered."""

    rpc: str
    workers: int
    subscribers: int
    bare_samples: list[float]
    gateway_samples: list[float]
    feed_rate: float
    gateway_cores_samples: list[float]  # CPU the gateway processes used, in cores

    @property
    def bare(self) -> float:
        return statistics.median(self.bare_samples)

    @property
    def gateway(self) -> float:
        return statistics.median(self.gateway_samples)

    @property
    def gateway_cores(self) -> float:
        return statistics.median(self.gateway_cores_samples)

    @property
    def ratio(self) -> float:
        return self.gateway / self.bare

    def round_ratios(self) -> list[float]:
        return _round_ratios(self.gateway_samples, self.bare_samples)


@dataclass
class QuoteSample:
    rps: float  # closed loop
    p50_ms: float  # at half that rate, open loop
    p99_ms: float
    cores: float  # the servers' CPU, closed loop
    failed: int = 0  # calls lost (cancelled, deadline passed, unavailable), both phases


@dataclass
class QuoteRow:
    workers: int
    bare_samples: list[QuoteSample]
    gateway_samples: list[QuoteSample]

    @property
    def bare_rps(self) -> float:
        return statistics.median(sample.rps for sample in self.bare_samples)

    @property
    def gateway_rps(self) -> float:
        return statistics.median(sample.rps for sample in self.gateway_samples)

    @property
    def bare_p50_ms(self) -> float:
        return statistics.median(sample.p50_ms for sample in self.bare_samples)

    @property
    def bare_p99_ms(self) -> float:
        return statistics.median(sample.p99_ms for sample in self.bare_samples)

    @property
    def gateway_p50_ms(self) -> float:
        return statistics.median(sample.p50_ms for sample in self.gateway_samples)

    @property
    def gateway_p99_ms(self) -> float:
        return statistics.median(sample.p99_ms for sample in self.gateway_samples)

    @property
    def bare_cores(self) -> float:
        return statistics.median(sample.cores for sample in self.bare_samples)

    @property
    def gateway_cores(self) -> float:
        return statistics.median(sample.cores for sample in self.gateway_samples)

    @property
    def ratio(self) -> float:
        return self.gateway_rps / self.bare_rps

    def round_ratios(self) -> list[float]:
        return _round_ratios(
            [sample.rps for sample in self.gateway_samples],
            [sample.rps for sample in self.bare_samples],
        )


def _round_ratios(gateway: list[float], bare: list[float]) -> list[float]:
    """Each round's gateway over the same round's bare (measured next to each other)."""
    return [g / b for g, b in zip(gateway, bare, strict=True) if b]


def _sides(round_: int) -> tuple[str, str]:
    """Bare first in even rounds, gateway first in odd ones: a steady drift of the machine's
    load then falls on both sides alike."""
    return ("bare", "gateway") if round_ % 2 == 0 else ("gateway", "bare")


def _percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def _counts(text: str) -> list[int]:
    return [int(n) for n in text.split(",") if n.strip()]


@dataclass(frozen=True, slots=True)
class _StreamCase:
    label: str
    rpc: str  # the gateway's
    bare_method: str
    request: bytes
    batched: bool


async def _streams(
    clients: Workers, bare: ServerGroup, gateway: ServerGroup, args: argparse.Namespace
) -> list[StreamRow]:
    """Per subscriber count: StreamPriceBatches (batches of ``BATCH``), then StreamPrices, each
    beside the bare servers streaming pre-built messages of the same shape, interleaved."""
    auth = (("authorization", f"Bearer {TOKEN}"),)
    plain = PriceSubscription(symbols=SYMBOLS, exchange=EXCHANGE).SerializeToString()
    batched = PriceSubscription(
        symbols=SYMBOLS, exchange=EXCHANGE, max_batch_size=BATCH, max_delay_ms=BATCH_DELAY_MS
    ).SerializeToString()
    # batches first: the first bare batch stream sets the feed rate for both RPCs
    cases = [
        _StreamCase(
            f"StreamPriceBatches ({BATCH})", "StreamPriceBatches", "StreamBatches", batched, True
        ),
        _StreamCase("StreamPrices", "StreamPrices", "Stream", plain, False),
    ]
    workers = len(gateway)
    rows = []
    for subscribers in _counts(args.subscribers):
        counts = _split(subscribers, CLIENT_PROCESSES)
        samples: dict[tuple[str, str], list[float]] = {}
        cores: dict[str, list[float]] = {}
        rate = 0.0
        for round_ in range(args.repeats):
            for case in cases:
                for side in _sides(round_):
                    metadata: tuple[tuple[str, str], ...] = ()
                    if side == "bare":
                        target, method = bare.target, f"/{BARE_SERVICE}/{case.bare_method}"
                    else:
                        target, method, metadata = gateway.target, f"/{SERVICE}/{case.rpc}", auth
                    jobs = [
                        StreamJob(
                            target, method, case.request if side == "gateway" else b"",
                            metadata, n, args.warmup, args.seconds, case.batched,
                        )
                        for n in counts
                    ]  # fmt: skip
                    if side == "bare":
                        received = await clients.run(jobs)
                    else:
                        # It offers more than a subscriber of either RPC can take, so the
                        # gateway is never starved (the surplus is conflated, which is part of
                        # its work); each worker's feed runs in its process, so its cost
                        # counts against the gateway.
                        await asyncio.to_thread(gateway.set_feed_rate, rate)
                        received, used = await _timed(gateway, clients.run(jobs))
                        cores.setdefault(case.label, []).append(used)
                        await asyncio.to_thread(gateway.set_feed_rate, 0)
                        await asyncio.sleep(0.5)  # let the cancelled streams close
                    delivered = sum(received) / args.seconds
                    samples.setdefault((case.label, side), []).append(delivered)
                    if not rate and side == "bare" and case.batched:
                        rate = max(1_000.0, min(2 * delivered / subscribers, FEED_RATE_CAP))
        for case in cases[::-1]:  # StreamPrices first in the table
            rows.append(
                StreamRow(
                    case.label, workers, subscribers, samples[(case.label, "bare")],
                    samples[(case.label, "gateway")], rate, cores[case.label],
                )
            )  # fmt: skip
    return rows


async def _quote_case(
    clients: Workers,
    servers: ServerGroup,
    method: str,
    metadata: tuple[tuple[str, str], ...],
    args: argparse.Namespace,
) -> QuoteSample:
    target = servers.target
    requests = tuple(QuoteRequest(symbol=s, exchange=EXCHANGE).SerializeToString() for s in SYMBOLS)
    per_client = max(1, args.concurrency // CLIENT_PROCESSES)

    def job(rate: float) -> UnaryJob:
        return UnaryJob(
            target, method, requests, metadata, per_client, args.warmup, args.seconds, rate
        )

    results, cores = await _timed(servers, clients.run([job(0) for _ in range(CLIENT_PROCESSES)]))
    rps = sum(count for count, _, _ in results) / args.seconds
    paced = await clients.run([job(rps / 2 / CLIENT_PROCESSES) for _ in range(CLIENT_PROCESSES)])
    latencies = [ms for _, sample, _ in paced for ms in sample]
    failed = sum(lost for _, _, lost in results + paced)
    return QuoteSample(
        rps, statistics.median(latencies), _percentile(latencies, 0.99), cores, failed
    )


async def _quotes(
    clients: Workers, bare: ServerGroup, gateway: ServerGroup, args: argparse.Namespace
) -> QuoteRow:
    auth = (("authorization", f"Bearer {TOKEN}"),)
    row = QuoteRow(len(gateway), [], [])
    for round_ in range(args.repeats):
        for side in _sides(round_):
            if side == "bare":
                echo = await _quote_case(clients, bare, f"/{BARE_SERVICE}/Echo", (), args)
                row.bare_samples.append(echo)
            else:
                quote = await _quote_case(clients, gateway, f"/{SERVICE}/GetQuote", auth, args)
                row.gateway_samples.append(quote)
    return row


async def measure(args: argparse.Namespace) -> tuple[list[StreamRow], list[QuoteRow]]:
    clients = await asyncio.to_thread(Workers, CLIENT_PROCESSES)
    streams: list[StreamRow] = []
    quotes: list[QuoteRow] = []
    try:
        for count in _counts(args.workers):
            bare = await asyncio.to_thread(ServerGroup, "bare", count)
            gateway = await asyncio.to_thread(ServerGroup, "gateway", count)
            try:
                streams += await _streams(clients, bare, gateway, args)
                quotes.append(await _quotes(clients, bare, gateway, args))
            finally:
                await asyncio.to_thread(gateway.close)
                await asyncio.to_thread(bare.close)
    finally:
        clients.close()
    return streams, quotes


def _spread(ratios: list[float]) -> str:
    return f"{min(ratios):.0%}-{max(ratios):.0%}" if ratios else "-"


def _above_ceiling(ratio: float, rounds: list[float]) -> str:
    """A row above its own ceiling is noise: say so, with the spread that shows it."""
    return f"  (above 100%: noise within the rounds' {_spread(rounds)})" if ratio > 1 else ""


def print_streams(streams: list[StreamRow]) -> None:
    rounds = len(streams[0].bare_samples) if streams else 0
    print(
        f"\nPrice streams, updates/s delivered (100 symbols, throttle 0); median of {rounds} "
        "interleaved rounds"
    )
    print(
        f"{'rpc':<24} {'workers':>7} {'subscribers':>11} {'bare grpc.aio':>14} {'gateway':>10}"
        f" {'gateway/bare':>12} {'rounds':>10} {'gateway cores':>14}  gateway feed (per worker)"
    )
    for row in streams:
        note = _above_ceiling(row.ratio, row.round_ratios())
        print(
            f"{row.rpc:<24} {row.workers:>7} {row.subscribers:>11} {row.bare:>14,.0f} "
            f"{row.gateway:>10,.0f} {row.ratio:>12.0%} {_spread(row.round_ratios()):>10} "
            f"{row.gateway_cores:>14.2f}  {row.feed_rate:,.0f} ticks/s offered{note}"
        )
    print_framing(streams)


def print_framing(streams: list[StreamRow]) -> None:
    """Batches over StreamPrices, on both sides: context, not the headline (the bare servers
    gain as much from the framing alone)."""
    plain = {(r.workers, r.subscribers): r for r in streams if r.rpc == "StreamPrices"}
    gains = [
        (row, plain[(row.workers, row.subscribers)])
        for row in streams
        if row.rpc != "StreamPrices" and (row.workers, row.subscribers) in plain
    ]
    if not gains:
        return
    print("\nContext: batches / StreamPrices (mostly framing: the bare servers show it too)")
    print(f"{'workers':>7} {'subscribers':>11} {'bare':>7} {'gateway':>8}")
    for batches, single in gains:
        print(
            f"{batches.workers:>7} {batches.subscribers:>11} {batches.bare / single.bare:>6.1f}x "
            f"{batches.gateway / single.gateway:>7.1f}x"
        )


def print_quotes(quotes: list[QuoteRow]) -> None:
    print(
        "\nGetQuote (memory) vs unary echo: closed-loop requests/s; latency at half that load; "
        "median of the interleaved rounds"
    )
    print(
        f"{'workers':>7} {'echo req/s':>11} {'GetQuote req/s':>15} {'ratio':>6} {'rounds':>10}"
        f" {'echo p50/p99 ms':>16} {'GetQuote p50/p99 ms':>20}"
        f" {'cores echo/GetQuote':>20} {'req/s per core echo/GetQuote':>29}"
    )
    for row in quotes:
        per_core = (
            f"{row.bare_rps / row.bare_cores:,.0f}/{row.gateway_rps / row.gateway_cores:,.0f}"
        )
        print(
            f"{row.workers:>7} {row.bare_rps:>11,.0f} {row.gateway_rps:>15,.0f}"
            f" {row.ratio:>6.0%} {_spread(row.round_ratios()):>10}"
            f" {row.bare_p50_ms:>7.2f}/{row.bare_p99_ms:<8.2f}"
            f" {row.gateway_p50_ms:>11.2f}/{row.gateway_p99_ms:<8.2f}"
            f" {row.bare_cores:>10.2f}/{row.gateway_cores:<9.2f} {per_core:>29}"
            f"{_above_ceiling(row.ratio, row.round_ratios())}"
        )
        lost = [sum(s.failed for s in side) for side in (row.bare_samples, row.gateway_samples)]
        if any(lost):
            print(f"        calls lost (echo/GetQuote, all rounds): {lost[0]}/{lost[1]}")


def headline(streams: list[StreamRow], quotes: list[QuoteRow]) -> dict[str, list[float]]:
    """Gateway / bare per RPC, every row's ratio (workers and subscriber counts)."""
    ratios: dict[str, list[float]] = {}
    for row in streams:
        ratios.setdefault(row.rpc.split()[0], []).append(row.ratio)
    if quotes:
        ratios["GetQuote"] = [row.ratio for row in quotes]
    return ratios


def print_headline(streams: list[StreamRow], quotes: list[QuoteRow]) -> None:
    print("\nHeadline, gateway / bare per RPC (over the rows: min-max, median):")
    for rpc, ratios in headline(streams, quotes).items():
        above = sum(ratio > 1 for ratio in ratios)
        note = f" ({above} row(s) above 100%: noise, see their spread)" if above else ""
        print(f"  {rpc:<20} {_spread(ratios):>10}, median {statistics.median(ratios):.0%}{note}")


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    print(f"machine: {describe_machine()}; load average {load_average()}")
    print(
        f"clients: {CLIENT_PROCESSES} processes, raw bytes; servers: N processes per case "
        "(one port, SO_REUSEPORT), uvloop"
    )
    streams, quotes = uvloop.run(measure(args))
    print_headline(streams, quotes)
    print_streams(streams)
    print_quotes(quotes)
    print(f"\n(run took {time.perf_counter() - started:.0f} s; load average {load_average()})")
    return 0
