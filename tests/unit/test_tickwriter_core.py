from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from financial.marketdata.v2.common_pb2 import Decimal
from financial.marketdata.v2.orders_pb2 import ExecutionReport, OrderStatusUpdate
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.ticks import Tick
from marketcore.trading_calendar import trade_date_text
from tests.support import price_update
from tickwriter.batching import FlushPolicy, chunk_by_partition, commit_positions, should_flush
from tickwriter.config import TickWriterSettings
from tickwriter.decode import decode_order_event, decode_tick, decode_trade
from tickwriter.errors import RecordRejected
from tickwriter.replay_time import parse_replay_time
from tickwriter.rows import tick_discriminator, tick_row, tick_trade_date

POLICY = FlushPolicy(max_records=200, max_wait_ms=50)


def test_flush_when_full_when_old_or_when_nothing_more_waits() -> None:
    assert not should_flush(POLICY, 0, 1000, drained=True)
    assert should_flush(POLICY, 200, 0, drained=False)
    assert should_flush(POLICY, 3, 50, drained=False)
    assert should_flush(POLICY, 3, 1, drained=True)  # early flush at low load
    assert not should_flush(POLICY, 3, 1, drained=False)


@given(st.lists(st.tuples(st.sampled_from("ABC"), st.integers()), max_size=200), st.integers(1, 7))
def test_chunks_keep_one_partition_each_in_arrival_order(
    items: list[tuple[str, int]], size: int
) -> None:
    chunks = chunk_by_partition(items, lambda item: item[0], size)
    assert all(0 < len(chunk) <= size for chunk in chunks)
    assert all(len({item[0] for item in chunk}) == 1 for chunk in chunks)
    for key in "ABC":
        flattened = [item for chunk in chunks for item in chunk if item[0] == key]
        assert flattened == [item for item in items if item[0] == key]


def test_commit_position_is_one_past_the_highest_offset() -> None:
    handled = [("t", 0, 5), ("t", 0, 7), ("t", 1, 2), ("u", 0, 0)]
    assert commit_positions(handled) == {("t", 0): 8, ("t", 1): 3, ("u", 0): 1}


def _tick(**fields: object) -> PriceUpdate:
    base = {
        "exchange": "NASDAQ",
        "symbol": "AAPL",
        "bid_nanos": 1_000_000_000,  # 1.00
        "ask_nanos": 1_010_000_000,  # 1.01
    }
    return price_update(**{**base, "event_time_ns": 1_710_000_000_000_000_000, **fields})


def _with_ask(ask: Decimal) -> bytes:
    """A tick whose ask is ``ask`` exactly as given (built by hand: the helpers only write
    canonical Decimals)."""
    update = _tick()
    update.ask.CopyFrom(ask)
    return update.SerializeToString()


def test_same_tick_decodes_to_the_same_row() -> None:
    payload = _tick(feed_handler_id="fh", feed_sequence=9).SerializeToString()
    assert decode_tick(payload) == decode_tick(payload)


def test_discriminator_prefers_the_feed_sequence_then_the_bytes() -> None:
    with_sequence = Tick(
        "X", "Y", last_nanos=1, event_time_ns=1, feed_handler_id="fh", feed_sequence=3
    )
    assert tick_discriminator(with_sequence, b"bytes") == b"fh:3"
    assert tick_discriminator(Tick("X", "Y", last_nanos=1, event_time_ns=1), b"bytes") == b"bytes"


def test_two_ticks_in_one_instant_get_two_rows() -> None:
    first = tick_row(
        Tick("X", "Y", last_nanos=1, event_time_ns=5, feed_handler_id="f", feed_sequence=1), b""
    )
    second = tick_row(
        Tick("X", "Y", last_nanos=1, event_time_ns=5, feed_handler_id="f", feed_sequence=2), b""
    )
    assert first.tick_time != second.tick_time


def test_trade_date_follows_the_venue_calendar() -> None:
    # 03:30 UTC is the previous evening in New York
    row = decode_tick(_tick(event_time_ns=1_710_473_400 * 10**9).SerializeToString())
    assert row.trade_date == "2024-03-14"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "empty_value"),
        (b"", "empty_value"),
        (b"\xff\xff\xff", "undecodable"),
        (_tick(bid_nanos=2_000_000_000).SerializeToString(), "invalid_tick:crossed_quote"),
        (_with_ask(Decimal(units=1, nanos=1_000_000_000)), "malformed_decimal"),
        (_with_ask(Decimal(units=1, nanos=-5)), "malformed_decimal"),
        (_with_ask(Decimal(units=-1, nanos=5)), "malformed_decimal"),
        (_with_ask(Decimal(units=0, nanos=-1_000_000_000)), "malformed_decimal"),
        (_tick(exchange="").SerializeToString(), "invalid_tick:missing_exchange"),
    ],
)
def test_bad_records_are_rejected_with_a_reason(payload: bytes | None, reason: str) -> None:
    with pytest.raises(RecordRejected) as caught:
        decode_tick(payload)
    assert caught.value.reason == reason


def test_trades_and_order_events_need_their_identity() -> None:
    with pytest.raises(RecordRejected, match="missing execution_id"):
        decode_trade(b"\x12\x02o1")  # order_id only
    with pytest.raises(RecordRejected, match="event_sequence"):
        decode_order_event(b"\x0a\x02o1")


NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", datetime(2026, 11, 22, 11, 45, tzinfo=UTC)),
        ("2h", datetime(2026, 11, 22, 10, 0, tzinfo=UTC)),
        ("2026-11-22T09:30:00", datetime(2026, 11, 22, 9, 30, tzinfo=UTC)),
        ("2026-11-22T09:30:00+01:00", datetime(2026, 11, 22, 8, 30, tzinfo=UTC)),
    ],
)
def test_replay_time_reads_iso_times_and_spans(text: str, expected: datetime) -> None:
    assert parse_replay_time(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2027-01-01T00:00:00Z", "5 weeks"])
def test_replay_time_refuses_nonsense_and_the_future(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a time|future"):
        parse_replay_time(text, NOW)


def test_settings_refuse_unknown_kinds_at_startup() -> None:
    assert TickWriterSettings(consume="trades, ticks").consumed_topics() == {
        "trades.executed.v2": "trades",
        "ticks.raw.v2": "ticks",
    }
    with pytest.raises(ValidationError, match="kinds are ticks, trades, orders"):
        TickWriterSettings(consume="ticks,quotes")


@given(
    st.sampled_from(["NASDAQ", "NYSE", "BINANCE"]),
    st.integers(0, 4_102_444_800 * 10**9),  # 1970 .. 2100
)
def test_remembered_trade_date_is_the_calendar_rule(exchange: str, event_time_ns: int) -> None:
    assert tick_trade_date(exchange, event_time_ns) == trade_date_text(exchange, event_time_ns)


@pytest.mark.parametrize(
    "utc",
    [
        datetime(2026, 3, 8, 5, 0, tzinfo=UTC),  # New York midnight, EST
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),  # clocks go forward
        datetime(2026, 11, 1, 4, 0, tzinfo=UTC),  # New York midnight, EDT
        datetime(2026, 11, 1, 6, 0, tzinfo=UTC),  # clocks go back
    ],
)
def test_remembered_trade_date_at_new_york_midnight_and_dst_changes(utc: datetime) -> None:
    boundary_ns = int(utc.timestamp()) * 10**9
    for at in (boundary_ns - 1, boundary_ns, boundary_ns + 1):
        assert tick_trade_date("NASDAQ", at) == trade_date_text("NASDAQ", at)
    assert tick_trade_date("NASDAQ", boundary_ns - 1) != tick_trade_date("NASDAQ", boundary_ns) or (
        utc.hour in (6, 7)  # a DST change is not a date change
    )


def test_order_events_of_two_accounts_with_one_order_id_are_two_entities() -> None:
    # order ids are per account: alice's and bob's "o-1" must not share an event_store partition
    alice, bob = (
        decode_order_event(
            OrderStatusUpdate(order_id="o-1", account_id=account, event_sequence=1)
            .SerializeToString()
        )
        for account in ("alice", "bob")
    )  # fmt: skip
    assert (alice.entity_type, alice.entity_id) == ("order", "alice/o-1")
    assert bob.partition == ("order", "bob/o-1")


def test_sub_micro_prices_and_sizes_and_a_huge_volume_decode_exactly() -> None:
    """Values v1 could not carry: 8-decimal prices (ADA-BTC), a satoshi-sized size and a
    cumulative volume of about 1e15 units with nine decimals, each in nanos to the last digit.
    The Decimals are set field by field from the wire's definition (units + nanos / 1e9), not
    through our codec."""
    update = PriceUpdate(exchange="KRAKEN", symbol="ADA/XBT", event_time_ns=1_710_000_000 * 10**9)
    for field, (units, nanos) in {
        "bid": (0, 22_880),  # 0.000022880
        "ask": (0, 22_890),
        "last": (0, 22_881),
        "volume": (999_999_999_999_999, 123_456_789),
        "bid_size": (0, 10),  # 0.00000001
        "ask_size": (12, 345_678_901),
        "last_size": (0, 1),
    }.items():
        getattr(update, field).units = units
        getattr(update, field).nanos = nanos
    tick = decode_tick(update.SerializeToString()).tick
    assert (tick.bid_nanos, tick.ask_nanos, tick.last_nanos) == (22_880, 22_890, 22_881)
    assert tick.volume_nanos == 999_999_999_999_999_123_456_789
    assert (tick.bid_size_nanos, tick.ask_size_nanos, tick.last_size_nanos) == (
        10,
        12_345_678_901,
        1,
    )


@pytest.mark.parametrize("field", ["fill_price", "fill_quantity", "fees"])
def test_a_trade_with_a_malformed_decimal_is_rejected(field: str) -> None:
    report = ExecutionReport(
        execution_id="e1", account_id="A", symbol="AAPL", execution_time_ns=1,
        fill_quantity=Decimal(units=1), fill_price=Decimal(units=189),
    )  # fmt: skip
    getattr(report, field).CopyFrom(Decimal(units=1, nanos=-5))
    with pytest.raises(RecordRejected) as caught:
        decode_trade(report.SerializeToString())
    assert caught.value.reason == "malformed_decimal"
