"""One exact decimal through every hop's codec: venue text -> parse -> Kafka bytes -> tick
writer row (CQL decimal) -> gRPC message -> CLI text, and through the trading core's notional
and position arithmetic. Across the whole range, nothing is ever rounded.

(tests/integration/test_exact_end_to_end.py runs a sub-micro instrument through the real
servers; this checks the whole range, which no venue would send.)
"""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

from cassandra.cqltypes import DecimalType
from hypothesis import given
from hypothesis import strategies as st

from financial.marketdata.v2.prices_pb2 import PriceUpdate, QuoteResponse
from gateway import cli
from gateway.core.quotes import DayBar, Quote
from gateway.core.updates import FeedUpdate
from gateway.service.convert import decode_update, quote_response
from marketcore.fixed_point import NANOS_LIMIT, NANOS_PER_UNIT, format_nanos, parse_nanos
from marketcore.ticks import Tick
from marketcore.trading.model import Side
from marketcore.trading.positions import NANOS, Position, apply_fill
from marketcore.trading.rules import notional_nanos
from marketinfra.cql_decimal import CqlDecimal, from_cql, install
from marketinfra.tick_codec import tick_to_proto
from tickwriter.decode import decode_tick

install()

# Every value a Decimal carries, biased toward the ranges the issue names: prices to 1e10
# and sizes to 1e15, with nine decimals, plus the extremes of the wire.
VALUES = st.one_of(
    st.integers(min_value=1, max_value=10**10 * NANOS_PER_UNIT),
    st.integers(min_value=1, max_value=10**15 * NANOS_PER_UNIT),
    st.integers(min_value=1, max_value=NANOS_LIMIT - 1),
    st.sampled_from([1, 999_999_999, 10**9, 22_880, 13_050, NANOS_LIMIT - 1]),
)


def _venue_text(nanos: int, extra_zeros: int) -> str:
    """How a venue might spell it: nine places, or fewer, or trailing zeros beyond nine."""
    return (
        format_nanos(nanos, min_decimals=0)
        if extra_zeros < 0
        else (format_nanos(nanos, min_decimals=9) + "0" * extra_zeros)
    )


def _cql_round_trip(nanos: int) -> tuple[int, Decimal]:
    stored = DecimalType.deserialize(DecimalType.serialize(CqlDecimal(nanos), 5), 5)
    return from_cql(stored), stored


def _printed(label: str, text: str) -> int:
    match = re.search(rf"\b{label}\s+(\S+)", text)
    assert match is not None, text
    return parse_nanos(match.group(1))


@given(price=VALUES, size=VALUES, extra_zeros=st.integers(min_value=-1, max_value=4))
def test_a_value_crosses_every_hop_exactly(price: int, size: int, extra_zeros: int) -> None:
    text = _venue_text(price, extra_zeros)
    assert parse_nanos(text) == price  # the feed handler's parse
    tick = Tick(
        exchange="KRAKEN", symbol="ADA-BTC", bid_nanos=price, ask_nanos=price + 1,
        last_nanos=price, volume_nanos=size, bid_size_nanos=size, ask_size_nanos=size,
        last_size_nanos=size, event_time_ns=1_764_000_000_000_000_000, feed_handler_id="p",
        feed_sequence=1,
    )  # fmt: skip
    payload = tick_to_proto(tick).SerializeToString()  # the Kafka value

    row = decode_tick(payload)  # the tick writer
    assert row.tick == tick
    for value in (row.tick.bid_nanos, row.tick.volume_nanos):
        back, stored = _cql_round_trip(value)  # the tick_data decimal columns
        assert back == value
        with localcontext() as context:
            context.prec = 60
            assert stored == Decimal(format_nanos(value, min_decimals=0))

    update = decode_update(payload)  # the gateway's feed
    assert isinstance(update, FeedUpdate)
    bar = DayBar("2025-11-24", price, price, price, price, 1, 1)
    answer = QuoteResponse.FromString(  # over gRPC: bytes in, bytes out
        quote_response(
            Quote(update, bar, price, "2025-11-24"), from_store=False
        ).SerializeToString()
    )
    printed = cli.format_quote(answer)  # mdgw quote
    assert _printed("bid", printed) == price
    assert _printed("x", printed) == size
    assert _printed("low", printed) == price
    assert _printed("close", printed) == price
    line = cli.format_update_line(PriceUpdate.FromString(payload), 9)  # mdgw stream
    assert _printed("ask", line) == price + 1


@given(quantity=VALUES, buy=VALUES, sell=VALUES)
def test_the_trading_core_is_exact_over_the_range(quantity: int, buy: int, sell: int) -> None:
    with localcontext() as context:
        context.prec = 80
        q, p_buy, p_sell = (Decimal(v) / NANOS_PER_UNIT for v in (quantity, buy, sell))
        # notional: rounded up to a nano, never in the client's favour
        exact = q * p_buy * NANOS_PER_UNIT
        assert notional_nanos(quantity, buy) == int(
            exact.to_integral_value(rounding="ROUND_CEILING")
        )
        # a round trip: bought at one price, sold at another, realises the exact difference
        position = apply_fill(Position("acct", "ADA-BTC"), Side.BUY, quantity, buy)
        assert position.cost_exact == quantity * buy
        flat = apply_fill(position, Side.SELL, quantity, sell)
        assert (flat.net_nanos, flat.cost_exact) == (0, 0)
        assert Decimal(flat.realized_exact) / NANOS / NANOS_PER_UNIT == q * (p_sell - p_buy)
