"""Reference data finer than a micro: tick and lot sizes to nine decimals from the reference
file, exactly; the order checks accept orders on that grid and reject those off it with the
exact numbers in the text; and an order on such an instrument fills with exact values."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from gateway.errors import ConfigError
from gateway.trading.reference_file import load_reference, parse_reference
from marketcore.instruments import InstrumentKey
from marketcore.trading.events import Executed, PositionChanged
from marketcore.trading.model import (
    OrderSpec,
    OrderStatus,
    OrderType,
    RejectReason,
    Side,
    Touch,
)
from marketcore.trading.order_manager import OrderManager, Submitted
from marketcore.trading.rules import DEFAULT_REFERENCE, InstrumentRules, RiskLimits
from marketcore.trading.simulated_venue import SimulatedVenue
from marketcore.trading.validation import Market, check_order
from tests.unit.trading_builders import order_spec

ADA_BTC = InstrumentKey("COINBASE", "ADA-BTC")
SKL_BTC = InstrumentKey("COINBASE", "SKL-BTC")
NANO_COIN = InstrumentKey("KRAKEN", "NANO-XBT")
REFERENCE_JSON = {
    "exchanges": {"KRAKEN": {"tick": "0.000000001", "lot": "0.000000001"}},
    "instruments": {
        "COINBASE|ADA-BTC": {"tick": "0.00000001", "lot": "0.00000001"},
        "COINBASE|SKL-BTC": {"tick": "0.00000001", "lot": "1"},
    },
}
LIMITS = RiskLimits(price_band_bps=1_000)
NOW_NS = int(datetime(2026, 11, 20, 17, 0, tzinfo=UTC).timestamp()) * 1_000_000_000


def test_the_reference_file_gives_ticks_and_lots_finer_than_a_micro_exactly(
    tmp_path: Path,
) -> None:
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(REFERENCE_JSON))
    reference = load_reference(path)
    assert reference.rules_for(ADA_BTC) == InstrumentRules(10, 10)  # 1e-8 = 10 nanos
    assert reference.rules_for(SKL_BTC) == InstrumentRules(10, 1_000_000_000)
    assert reference.rules_for(NANO_COIN) == InstrumentRules(1, 1)  # every symbol on KRAKEN
    # the defaults stay under the entries: Coinbase's other coins trade in 0.0001 lots
    other = InstrumentKey("COINBASE", "BTC-USD")
    assert reference.rules_for(other) == DEFAULT_REFERENCE.exchanges["COINBASE"]
    assert reference.rules_for(other) == InstrumentRules(10_000_000, 100_000)


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"tick": "0.0000000001"}, "instruments.COINBASE|ADA-BTC.tick: more than 9 decimals"),
        ({"lot": "0.0000000005"}, "instruments.COINBASE|ADA-BTC.lot: more than 9 decimals"),
        ({"tick": 0.00000001}, 'tick must be a decimal string such as "0.01"'),
        ({"tick": "0"}, "tick must be positive"),
        ({"lot": "-0.00000001"}, "lot must be positive"),
        ({"lot": "one"}, "lot: not a decimal number"),
    ],
)
def test_a_grid_that_cannot_be_carried_is_refused_naming_the_entry(
    entry: dict[str, object], problem: str
) -> None:
    with pytest.raises(ConfigError, match="ADA-BTC") as caught:
        parse_reference({"instruments": {"COINBASE|ADA-BTC": entry}}, "ref.json")
    assert problem in str(caught.value)
    assert str(caught.value).startswith("ref.json: ")


def test_a_tenth_decimal_of_zero_is_no_precision_lost() -> None:
    reference = parse_reference({"instruments": {"COINBASE|ADA-BTC": {"tick": "0.0000000100"}}})
    rules = reference.rules_for(ADA_BTC)
    assert rules is not None
    assert rules.tick_nanos == 10


_FINE = parse_reference(REFERENCE_JSON)
_ADA_RULES = _FINE.rules_for(ADA_BTC)
assert _ADA_RULES is not None
_ADA_MARKET = Market(_ADA_RULES, True, Touch(bid_nanos=22_880, ask_nanos=22_900))


def _ada(
    quantity: int, limit: int = 0, stop: int = 0, order_type: OrderType = OrderType.LIMIT
) -> OrderSpec:
    return order_spec(
        order_type=order_type,
        quantity=quantity,
        limit=limit,
        stop=stop,
        symbol="ADA-BTC",
        exchange="COINBASE",
    )


@pytest.mark.parametrize(
    ("quantity", "limit"),
    [
        (123_456_780, 22_880),  # 0.12345678 at 0.00002288
        (10, 22_890),  # one lot (0.00000001) at 0.00002289
        (1_000_000_000, 22_000),  # 1 at 0.000022
    ],
)
def test_orders_on_a_sub_micro_grid_are_accepted(quantity: int, limit: int) -> None:
    assert check_order(_ada(quantity, limit), _ADA_MARKET, LIMITS, 0) is None


@pytest.mark.parametrize(
    ("spec", "reason", "text"),
    [
        (
            _ada(123_456_785, 22_880),
            RejectReason.INVALID_QUANTITY,
            "quantity 0.123456785 is not a multiple of the lot 0.00000001",
        ),
        (
            _ada(5, 22_880),
            RejectReason.INVALID_QUANTITY,
            "quantity 0.000000005 is not a multiple of the lot 0.00000001",
        ),
        (
            _ada(10, 22_885),
            RejectReason.INVALID_PRICE,
            "limit price 0.000022885 is off the tick 0.00000001",
        ),
        (
            _ada(10, 0, 22_881, OrderType.STOP),
            RejectReason.INVALID_PRICE,
            "stop price 0.000022881 is off the tick 0.00000001",
        ),
        (
            _ada(10, 25_180),  # 0.00002518: more than 10% above the mid 0.00002289
            RejectReason.PRICE_OUT_OF_BAND,
            "limit 0.00002518 is more than 1000 bps from the reference price 0.00002289",
        ),
    ],
)
def test_orders_off_a_sub_micro_grid_are_rejected_with_exact_texts(
    spec: OrderSpec, reason: RejectReason, text: str
) -> None:
    problem = check_order(spec, _ADA_MARKET, LIMITS, 0)
    assert problem is not None
    assert (problem.reason, problem.detail) == (reason, text)


_GRID = st.integers(min_value=1, max_value=10**12)  # tick / lot in nanos: 1e-9 .. 1000
_VALUE = st.integers(min_value=1, max_value=10**19)  # price / quantity in nanos: to 1e10


@given(tick=_GRID, lot=_GRID, price=_VALUE, quantity=_VALUE)
@example(tick=10, lot=10, price=22_880, quantity=123_456_780)
@example(tick=10, lot=10, price=22_885, quantity=123_456_780)
@example(tick=1, lot=1, price=1, quantity=1)
def test_the_grid_check_is_exact_for_any_tick_and_lot(
    tick: int, lot: int, price: int, quantity: int
) -> None:
    rules = InstrumentRules(tick, lot)
    market = Market(rules, True, Touch(bid_nanos=price, ask_nanos=price))
    limits = RiskLimits(
        max_order_notional_nanos=10**40, max_open_notional_nanos=10**40, price_band_bps=1
    )
    problem = check_order(_ada(quantity, price), market, limits, 0)
    d_tick, d_lot, d_price, d_quantity = (
        Decimal(value).scaleb(-9) for value in (tick, lot, price, quantity)
    )
    on_lot = d_quantity % d_lot == 0
    on_tick = d_price % d_tick == 0
    if on_lot and on_tick:
        assert problem is None
        return
    assert problem is not None
    words = problem.detail.split()  # the numbers in the text, as exact decimals
    if not on_lot:
        assert problem.reason is RejectReason.INVALID_QUANTITY
        assert (Decimal(words[1]), Decimal(words[-1])) == (d_quantity, d_lot)
    else:
        assert problem.reason is RejectReason.INVALID_PRICE
        assert (Decimal(words[2]), Decimal(words[-1])) == (d_price, d_tick)


def test_an_order_on_a_sub_micro_instrument_fills_exactly() -> None:
    book = OrderManager(SimulatedVenue(), _FINE, LIMITS)
    # ADA-BTC 0.00002288 / 0.00002290, 500.12345678 shown on the ask
    book.on_tick(ADA_BTC, Touch(22_880, 22_900, 0, 500_123_456_780), NOW_NS)
    buy = order_spec(
        "ada-1", Side.BUY, OrderType.MARKET, 123_456_780, symbol="ADA-BTC", exchange="COINBASE"
    )
    result = book.submit(buy, "acct", NOW_NS)
    assert isinstance(result, Submitted)
    assert result.order.status is OrderStatus.FILLED
    [fill] = [e for e in result.events if isinstance(e, Executed)]
    assert (fill.price_nanos, fill.quantity_nanos) == (22_900, 123_456_780)
    [changed] = [e for e in result.events if isinstance(e, PositionChanged)]
    position = changed.position
    # 0.12345678 x 0.00002290 = 0.0000028271602620: 0.000002827 and 0.000000000160262
    assert position.net_nanos == 123_456_780
    assert position.cost_exact == 2_827_160_262_000
    assert position.cost_nanos == 2_827
    # selling it at the bid realizes 0.12345678 x (0.00002288 - 0.00002290) = -0.0000000024691356
    sell = order_spec(
        "ada-2", Side.SELL, OrderType.MARKET, 123_456_780, symbol="ADA-BTC", exchange="COINBASE"
    )
    result = book.submit(sell, "acct", NOW_NS)
    assert isinstance(result, Submitted)
    closed = book.position("acct", "ADA-BTC")
    assert closed is not None
    assert (closed.net_nanos, closed.cost_exact) == (0, 0)
    assert closed.realized_exact == -2_469_135_600
    assert closed.realized_pnl_nanos == -2
