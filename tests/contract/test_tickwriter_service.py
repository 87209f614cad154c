"""TickWriterService over a real grpc.aio server and channel (port 0), with a fake writer behind
it: acknowledgements, bad input, Cassandra down and unexpected errors, and the per-call log
context. The same calls against the real Cassandra are in tests/integration."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from dataclasses import dataclass, field

import grpc
import pytest
import structlog

from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.common_pb2 import Decimal
from financial.marketdata.v2.prices_pb2 import PriceUpdate, TickBatch
from tests.support import price_update
from tickwriter.daily_bars import DailyBar
from tickwriter.errors import WriteFailed, WriteRefused
from tickwriter.rows import Row, TickRow
from tickwriter.service import BindRpcContext, GuardCalls, TickWriterServicer, add_to_server

EVENT_NS = 1_763_800_000_000_000_000


@dataclass
class FakeWriter:
    failure: Exception | None = None
    calls: list[tuple[list[Row], list[DailyBar]]] = field(default_factory=list)
    log_context: list[dict[str, object]] = field(default_factory=list)

    def write(self, rows: Sequence[Row], bars: Collection[DailyBar] = ()) -> float:
        self.log_context.append(structlog.contextvars.get_contextvars())
        if self.failure is not None:
            raise self.failure
        self.calls.append((list(rows), list(bars)))
        return 0.0042


@pytest.fixture
def writer() -> FakeWriter:
    return FakeWriter()


@pytest.fixture
async def channel(writer: FakeWriter) -> AsyncIterator[grpc.aio.Channel]:
    server = grpc.aio.server(interceptors=[BindRpcContext(), GuardCalls(None)])
    add_to_server(TickWriterServicer(writer), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel
    finally:
        await server.stop(0)


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> services_pb2_grpc.TickWriterServiceStub:
    return services_pb2_grpc.TickWriterServiceStub(channel)


def tick(symbol: str = "AAPL", sequence: int = 1, **fields: object) -> PriceUpdate:
    """AAPL bid 189.00, ask 189.01, last 189.005 + ``sequence`` nanos (exact sub-micro steps)."""
    values: dict[str, object] = {
        "exchange": "NASDAQ",
        "symbol": symbol,
        "bid_nanos": 189_000_000_000,
        "ask_nanos": 189_010_000_000,
        "last_nanos": 189_005_000_000 + sequence,
        "event_time_ns": EVENT_NS + sequence,
        "feed_handler_id": "fh",
        "feed_sequence": sequence,
    }
    return price_update(**{**values, **fields})


async def test_write_tick_acks_with_the_measured_latency_after_rows_and_bar_are_written(
    stub: services_pb2_grpc.TickWriterServiceStub, writer: FakeWriter
) -> None:
    ack = await stub.WriteTick(tick(), timeout=5)
    assert (ack.success, ack.rows_written, ack.write_latency_us, ack.error) == (True, 1, 4200, "")
    ((rows, bars),) = writer.calls
    assert isinstance(rows[0], TickRow)
    assert rows[0].payload == tick().SerializeToString()  # the bytes as sent: one schema
    assert rows[0].trade_date == "2025-11-22"
    assert [(bar.symbol, bar.close_nanos) for bar in bars] == [("AAPL", 189_005_000_001)]


async def test_write_batch_writes_every_tick_in_one_call_with_one_bar_per_instrument(
    stub: services_pb2_grpc.TickWriterServiceStub, writer: FakeWriter
) -> None:
    batch = TickBatch(ticks=[tick(symbol, n) for n in range(1, 6) for symbol in ("A", "B")])
    ack = await stub.WriteBatch(batch, timeout=5)
    assert (ack.success, ack.rows_written) == (True, 10)
    ((rows, bars),) = writer.calls
    assert len(rows) == 10
    assert sorted((bar.symbol, bar.open_nanos, bar.close_nanos) for bar in bars) == [
        ("A", 189_005_000_001, 189_005_000_005),
        ("B", 189_005_000_001, 189_005_000_005),
    ]


def _with_bid(bid: Decimal) -> PriceUpdate:
    update = tick(symbol="MALFORMED", bid_nanos=0)
    update.bid.CopyFrom(bid)
    return update


@pytest.mark.parametrize(
    ("call", "message", "detail"),
    [
        ("WriteTick", tick(bid_nanos=189_020_000_000), "invalid_tick:crossed_quote"),
        ("WriteTick", tick(exchange=""), "invalid_tick:missing_exchange"),
        ("WriteTick", tick(last_nanos=-1), "invalid_tick:negative_price"),
        ("WriteTick", PriceUpdate(exchange="X", symbol="Y", event_time_ns=1), "no_price"),
        ("WriteTick", tick(event_time_ns=0), "no_event_time"),
        # not canonical Decimals (|nanos| > 999,999,999; nanos of the other sign): built by
        # hand, since the helpers only write canonical ones
        ("WriteTick", _with_bid(Decimal(units=0, nanos=1_000_000_000)), "malformed_decimal"),
        ("WriteTick", _with_bid(Decimal(units=1, nanos=-5)), "malformed_decimal"),
        (
            "WriteBatch",
            TickBatch(ticks=[tick(), _with_bid(Decimal(units=-1, nanos=5))]),
            "tick 1: malformed_decimal",
        ),
        ("WriteBatch", TickBatch(), "batch has no ticks"),
        ("WriteBatch", TickBatch(ticks=[tick(), tick(symbol="")]), "tick 1: "),
    ],
)
async def test_bad_input_is_invalid_argument_with_the_reason_and_nothing_is_written(
    stub: services_pb2_grpc.TickWriterServiceStub,
    writer: FakeWriter,
    call: str,
    message: PriceUpdate | TickBatch,
    detail: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, call)(message, timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert detail in (caught.value.details() or "")
    assert writer.calls == []


async def test_an_oversized_batch_is_refused_before_anything_is_written(
    stub: services_pb2_grpc.TickWriterServiceStub, writer: FakeWriter
) -> None:
    batch = TickBatch(ticks=[tick("A", n) for n in range(10_001)])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.WriteBatch(batch, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert writer.calls == []


@pytest.mark.parametrize("call", ["WriteTick", "WriteBatch"])
async def test_cassandra_down_is_unavailable_so_the_caller_retries(
    stub: services_pb2_grpc.TickWriterServiceStub, writer: FakeWriter, call: str
) -> None:
    writer.failure = WriteFailed("unavailable", "no host available")
    message = tick() if call == "WriteTick" else TickBatch(ticks=[tick()])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, call)(message, timeout=5)
    assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
    assert "no host available" in (caught.value.details() or "")


async def test_an_unexpected_error_is_internal_without_its_details(
    stub: services_pb2_grpc.TickWriterServiceStub, writer: FakeWriter
) -> None:
    writer.failure = RuntimeError("secret internals")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.WriteTick(tick(), timeout=5)
    assert caught.value.code() is grpc.StatusCode.INTERNAL
    assert caught.value.details() == "internal error"


async def test_every_log_line_of_a_call_carries_the_rpc_and_request_id(
    stub: services_pb2_grpc.TickWriterServiceStub, writer: FakeWriter
) -> None:
    await stub.WriteTick(tick(), timeout=5, metadata=(("x-request-id", "req-42"),))
    assert writer.log_context[-1] == {
        "rpc": "/financial.marketdata.v2.TickWriterService/WriteTick",
        "request_id": "req-42",
    }


@pytest.mark.parametrize("call", ["WriteTick", "WriteBatch"])
@pytest.mark.parametrize("garbage", [b"\xff\xff\xff", b"\x0a\xff\x01"])
async def test_bytes_that_are_not_the_request_are_invalid_argument(
    channel: grpc.aio.Channel, writer: FakeWriter, call: str, garbage: bytes
) -> None:
    raw = channel.unary_unary(f"/financial.marketdata.v2.TickWriterService/{call}")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await raw(garbage, timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() in ("not a PriceUpdate", "not a TickBatch")
    assert writer.calls == []


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        ({"symbol": "A" * 500_000}, "symbol is 500000 characters; at most 64"),
        ({"exchange": "X" * 65}, "exchange is 65 characters; at most 64"),
        ({"venue_symbol": "v" * 70_000}, "venue_symbol is 70000 characters"),
        ({"feed_handler_id": "f" * 257}, "feed_handler_id is 257 characters; at most 256"),
    ],
)
async def test_an_oversized_string_is_invalid_argument_not_internal(
    stub: services_pb2_grpc.TickWriterServiceStub,
    writer: FakeWriter,
    fields: dict[str, str],
    detail: str,
) -> None:
    for call, message in (
        ("WriteTick", tick(**fields)),
        ("WriteBatch", TickBatch(ticks=[tick(), tick(**fields)])),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await getattr(stub, call)(message, timeout=10)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert detail in (caught.value.details() or "")
        assert len(caught.value.details() or "") < 200  # the length, never the string
    assert writer.calls == []


async def test_a_tick_over_the_record_limit_is_invalid_argument(
    stub: services_pb2_grpc.TickWriterServiceStub, writer: FakeWriter
) -> None:
    big = tick()
    big.MergeFromString(b"\xc2\x3e" + _varint(20_000) + b"x" * 20_000)  # unknown field 1000
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.WriteTick(big, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "oversized_record" in (caught.value.details() or "")
    assert "at most 16384" in (caught.value.details() or "")
    assert writer.calls == []


@pytest.mark.parametrize("call", ["WriteTick", "WriteBatch"])
async def test_a_tick_cassandra_refuses_for_good_is_invalid_argument_not_internal(
    stub: services_pb2_grpc.TickWriterServiceStub, writer: FakeWriter, call: str
) -> None:
    writer.failure = WriteRefused("serialization", "error: 'H' format requires 0 <= number")
    message = tick() if call == "WriteTick" else TickBatch(ticks=[tick()])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, call)(message, timeout=5)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "refused" in (caught.value.details() or "")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)
