"""TickWriterService over a real gRPC channel, writing to the real Cassandra.
(UNAVAILABLE while Cassandra is down is checked in test_tickwriter_failures.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from cassandra.cluster import Session

from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.prices_pb2 import PriceUpdate, TickBatch
from marketinfra.settings import CassandraSettings
from tests.integration.tickwriter_support import (
    check_exact_row,
    exact_tick,
    make_tick,
    row_sequences,
)
from tests.support import price_update
from tickwriter.adapters.repository import CassandraRowWriter
from tickwriter.service import TickWriterServicer


@pytest.fixture
async def stub(
    cassandra_session: Session, cassandra_settings: CassandraSettings
) -> AsyncIterator[services_pb2_grpc.TickWriterServiceStub]:
    writer = CassandraRowWriter(cassandra_session, cassandra_settings.keyspace, 16, 8)
    server = grpc.aio.server()
    services_pb2_grpc.add_TickWriterServiceServicer_to_server(TickWriterServicer(writer), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        yield services_pb2_grpc.TickWriterServiceStub(channel)
    await server.stop(0)


async def test_write_tick_is_acknowledged_after_the_row_is_stored(
    stub, cassandra_session: Session
) -> None:
    ack = await stub.WriteTick(make_tick("RPC_ONE", 1), timeout=10)
    assert ack.success
    assert ack.rows_written == 1
    assert ack.write_latency_us > 0
    assert row_sequences(cassandra_session, "RPC_ONE") == [1]
    again = await stub.WriteTick(make_tick("RPC_ONE", 1), timeout=10)  # a retry: same row
    assert again.success
    assert row_sequences(cassandra_session, "RPC_ONE") == [1]


async def test_write_batch_stores_every_tick(stub, cassandra_session: Session) -> None:
    batch = TickBatch(
        ticks=[make_tick(symbol, n) for n in range(1, 41) for symbol in ("RPC_A", "RPC_B")]
    )
    ack = await stub.WriteBatch(batch, timeout=10)
    assert (ack.success, ack.rows_written) == (True, 80)
    assert row_sequences(cassandra_session, "RPC_A") == list(range(1, 41))
    assert row_sequences(cassandra_session, "RPC_B") == list(range(1, 41))


def _crossed() -> PriceUpdate:
    return make_tick("RPC_BAD", 1, bid_nanos=100_010_001_001)  # above its ask


async def test_write_tick_stores_sub_micro_values_exactly(stub, cassandra_session: Session) -> None:
    sent = exact_tick("RPC_ADA/XBT")
    ack = await stub.WriteTick(sent, timeout=10)
    assert (ack.success, ack.rows_written) == (True, 1)
    check_exact_row(cassandra_session, "RPC_ADA/XBT", sent)


def _malformed(units: int, nanos: int) -> PriceUpdate:
    """RPC_BAD's tick with the bid Decimal (units, nanos) as given (by hand: the helpers
    only write canonical ones)."""
    tick = make_tick("RPC_BAD", 1, bid_nanos=0)
    tick.bid.units, tick.bid.nanos = units, nanos
    return tick


@pytest.mark.parametrize(
    ("call", "message", "detail"),
    [
        ("WriteTick", _malformed(0, 1_000_000_000), "malformed_decimal"),
        ("WriteTick", _malformed(1, -5), "malformed_decimal"),
        (
            "WriteBatch",
            TickBatch(ticks=[make_tick("RPC_BAD", 2), _malformed(1, -5)]),
            "tick 1: malformed_decimal",
        ),
        ("WriteTick", _crossed(), "crossed_quote"),
        ("WriteTick", price_update(symbol="X", last_nanos=1, event_time_ns=1), "missing_exchange"),
        ("WriteTick", PriceUpdate(exchange="X", symbol="Y", event_time_ns=1), "no_price"),
        ("WriteBatch", TickBatch(), "no ticks"),
        ("WriteBatch", TickBatch(ticks=[make_tick("RPC_BAD", 1), _crossed()]), "tick 1: "),
    ],
)
async def test_invalid_input_is_invalid_argument_and_nothing_is_written(
    stub, cassandra_session: Session, call: str, message: object, detail: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, call)(message, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert detail in (caught.value.details() or "")
    assert row_sequences(cassandra_session, "RPC_BAD") == []
