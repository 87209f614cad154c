"""Order checks and the rules they use: one reason per order, in a fixed order; trading hours
in the venue's time zone; notional rounding; the per-account token bucket."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

import pytest

from marketcore.instruments import InstrumentKey
from marketcore.trading.model import OrderSpec, OrderType, RejectReason, Side, Touch
from marketcore.trading.rules import (
    DEFAULT_REFERENCE,
    US_EQUITY_HOURS,
    InstrumentRules,
    RateLimiter,
    ReferenceData,
    RiskLimits,
    TradingHours,
    notional_nanos,
)
from marketcore.trading.validation import Market, check_fields, check_order, order_notional_nanos
from tests.unit.trading_builders import UNIT, order_spec

CENT = UNIT // 100
NEW_YORK = ZoneInfo("America/New_York")
RULES = InstrumentRules(tick_nanos=CENT, lot_nanos=UNIT)
TOUCH = Touch(bid_nanos=189_990_000_000, ask_nanos=190_010_000_000, last_nanos=190_000_000_000)
OPEN_MARKET = Market(RULES, is_open=True, touch=TOUCH)
LIMITS = RiskLimits(
    max_order_notional_nanos=100_000 * UNIT,
    max_open_notional_nanos=150_000 * UNIT,
    price_band_bps=500,
)


def order(
    order_type: OrderType = OrderType.LIMIT,
    quantity: int = 100 * UNIT,
    limit: int = 190 * UNIT,
    stop: int = 0,
    side: Side = Side.BUY,
) -> OrderSpec:
    return order_spec(side=side, order_type=order_type, quantity=quantity, limit=limit, stop=stop)


def reason(spec: OrderSpec, market: Market = OPEN_MARKET, open_notional: int = 0) -> object:
    problem = check_order(spec, market, LIMITS, open_notional)
    return None if problem is None else problem.reason


def ns(moment: datetime) -> int:
    return int(moment.timestamp()) * 1_000_000_000


@pytest.mark.parametrize(
    "spec",
    [
        order(),
        order(OrderType.MARKET, limit=0),
        order(OrderType.STOP, limit=0, stop=191 * UNIT),
        order(OrderType.STOP_LIMIT, limit=191 * UNIT, stop=191 * UNIT),
        order(side=Side.SELL, limit=180_500_000_000),
    ],
    ids=["limit", "market", "stop", "stop-limit", "sell-limit-in-band"],
)
def test_sound_orders_pass(spec: OrderSpec) -> None:
    assert check_order(spec, OPEN_MARKET, LIMITS, 0) is None


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (order(quantity=0), RejectReason.INVALID_QUANTITY),
        (order(quantity=-UNIT), RejectReason.INVALID_QUANTITY),
        (order(limit=0), RejectReason.INVALID_PRICE),
        (order(OrderType.STOP_LIMIT, stop=0), RejectReason.INVALID_PRICE),
        (order(OrderType.STOP, limit=0, stop=0), RejectReason.INVALID_PRICE),
        (order(OrderType.MARKET, limit=190 * UNIT), RejectReason.MALFORMED),
        (order(OrderType.LIMIT, stop=190 * UNIT), RejectReason.MALFORMED),
        (order(OrderType.STOP, limit=190 * UNIT, stop=191 * UNIT), RejectReason.MALFORMED),
    ],
)
def test_field_problems(spec: OrderSpec, expected: RejectReason) -> None:
    problem = check_fields(spec)
    assert problem is not None
    assert problem.reason is expected
    assert reason(spec) is expected


def test_instrument_problems() -> None:
    assert reason(order(), Market(None, True, TOUCH)) is RejectReason.UNKNOWN_SYMBOL
    assert reason(order(), Market(RULES, False, TOUCH)) is RejectReason.MARKET_CLOSED
    halted = Market(replace(RULES, halted=True), True, TOUCH)
    assert reason(order(), halted) is RejectReason.INSTRUMENT_HALTED


def test_grid_problems_say_the_numbers_as_decimals() -> None:
    odd_lot = check_order(order(quantity=100_500_000_000), OPEN_MARKET, LIMITS, 0)
    assert odd_lot is not None
    assert odd_lot.reason is RejectReason.INVALID_QUANTITY
    assert odd_lot.detail == "quantity 100.5 is not a multiple of the lot 1"
    off_tick = check_order(order(limit=190_005_000_000), OPEN_MARKET, LIMITS, 0)
    assert off_tick is not None
    assert off_tick.reason is RejectReason.INVALID_PRICE
    assert off_tick.detail == "limit price 190.005 is off the tick 0.01"
    stop_off = order(OrderType.STOP, limit=0, stop=191_001_000_000)
    assert reason(stop_off) is RejectReason.INVALID_PRICE


def test_price_band_around_the_mid() -> None:
    # mid 190.00, 500 bps: 180.50 .. 199.50 inclusive
    assert reason(order(limit=199_500_000_000)) is None
    assert reason(order(limit=199_510_000_000)) is RejectReason.PRICE_OUT_OF_BAND
    assert reason(order(side=Side.SELL, limit=180_490_000_000)) is RejectReason.PRICE_OUT_OF_BAND
    # a stop's own price is not banded, only a limit price
    assert reason(order(OrderType.STOP, limit=0, stop=250 * UNIT)) is None


def test_no_quote_means_no_market_data() -> None:
    assert reason(order(), Market(RULES, True, None)) is RejectReason.NO_MARKET_DATA
    assert reason(order(), Market(RULES, True, Touch())) is RejectReason.NO_MARKET_DATA


def test_order_and_account_notional_limits() -> None:
    # 500 x 190 = 95,000 fits one order; 600 x 190 = 114,000 does not
    assert reason(order(quantity=500 * UNIT)) is None
    too_big = check_order(order(quantity=600 * UNIT), OPEN_MARKET, LIMITS, 0)
    assert too_big is not None
    assert too_big.reason is RejectReason.NOTIONAL_LIMIT
    assert "per-order limit 100000" in too_big.detail
    # 60,000 already working + 95,000 > 150,000
    assert (
        reason(order(quantity=500 * UNIT), open_notional=60_000 * UNIT)
        is RejectReason.NOTIONAL_LIMIT
    )
    assert reason(order(quantity=500 * UNIT), open_notional=55_000 * UNIT) is None


def test_the_first_failure_is_the_answer() -> None:
    # malformed, unknown, closed, off the grid and out of band at once: the fields come first
    spec = order(quantity=100_500_000_000, limit=0)
    assert reason(spec, Market(None, False, None)) is RejectReason.INVALID_PRICE
    # known and closed and off the grid: closed comes first
    assert reason(order(quantity=100_500_000_000), Market(RULES, False, TOUCH)) is (
        RejectReason.MARKET_CLOSED
    )


def test_order_notional_prices() -> None:
    assert order_notional_nanos(order(limit=190 * UNIT), TOUCH) == 19_000 * UNIT
    stop = order(OrderType.STOP, limit=0, stop=200 * UNIT)
    assert order_notional_nanos(stop, TOUCH) == 20_000 * UNIT
    market_buy = order(OrderType.MARKET, limit=0)
    assert order_notional_nanos(market_buy, TOUCH) == 19_001 * UNIT  # at the ask
    market_sell = order(OrderType.MARKET, limit=0, side=Side.SELL)
    assert order_notional_nanos(market_sell, TOUCH) == 18_999 * UNIT  # at the bid
    one_sided = Touch(last_nanos=150 * UNIT)
    assert order_notional_nanos(market_buy, one_sided) == 15_000 * UNIT
    assert order_notional_nanos(market_buy, TOUCH, quantity_nanos=10 * UNIT) == 1_900_100_000_000


def test_notional_rounds_up() -> None:
    assert notional_nanos(1, 1) == 1  # 1e-18 rounds up to a nano
    assert notional_nanos(UNIT, 1) == 1
    assert notional_nanos(0, 190 * UNIT) == 0


def test_us_equity_hours_in_new_york_time() -> None:
    friday_open = ns(datetime(2026, 11, 20, 9, 30, tzinfo=NEW_YORK))
    assert US_EQUITY_HOURS.is_open(NEW_YORK, friday_open)
    assert not US_EQUITY_HOURS.is_open(NEW_YORK, friday_open - 1_000_000_000)
    friday_close = ns(datetime(2026, 11, 20, 16, 0, tzinfo=NEW_YORK))
    assert not US_EQUITY_HOURS.is_open(NEW_YORK, friday_close)
    saturday_noon = ns(datetime(2026, 11, 21, 12, 0, tzinfo=NEW_YORK))
    assert not US_EQUITY_HOURS.is_open(NEW_YORK, saturday_noon)
    # summer time: 13:30 UTC is 09:30 in New York in July
    assert US_EQUITY_HOURS.is_open(NEW_YORK, ns(datetime(2026, 7, 1, 13, 30, tzinfo=UTC)))


def test_always_open_and_custom_hours() -> None:
    sunday = ns(datetime(2026, 11, 22, 3, 0, tzinfo=UTC))
    assert TradingHours(always=True).is_open(UTC, sunday)
    weekend_only = TradingHours(open_at=time(0, 0), close_at=time(23, 59), days=frozenset({6}))
    assert weekend_only.is_open(UTC, sunday)


def test_reference_data_overrides_and_listing() -> None:
    listed = InstrumentKey("NASDAQ", "HALT")
    halted = InstrumentRules(CENT, UNIT, halted=True)
    reference = ReferenceData(DEFAULT_REFERENCE.exchanges, {listed: halted})
    assert reference.rules_for(listed) is halted
    assert reference.is_listed(listed)
    quoted_only = InstrumentKey("NASDAQ", "AAPL")
    assert reference.rules_for(quoted_only) == DEFAULT_REFERENCE.exchanges["NASDAQ"]
    assert not reference.is_listed(quoted_only)
    assert reference.rules_for(InstrumentKey("LSE", "VOD")) is None
    assert reference.time_zone(quoted_only) == NEW_YORK


@pytest.mark.parametrize(("tick", "lot"), [(0, 1), (1, 0), (-1, 1)])
def test_rules_need_a_positive_grid(tick: int, lot: int) -> None:
    with pytest.raises(ValueError, match="tick and lot must be positive"):
        InstrumentRules(tick, lot)


def test_rate_limiter_bursts_then_refills_per_account() -> None:
    limiter = RateLimiter(rate_per_s=2.0, burst=3)
    start = 1_000_000_000_000
    assert [limiter.take("a", start) for _ in range(4)] == [True, True, True, False]
    assert limiter.take("b", start)  # another account has its own bucket
    assert not limiter.take("a", start + 400_000_000)  # 0.8 of a token
    assert limiter.take("a", start + 500_000_000)  # 1 token after half a second
    assert not limiter.take("a", start + 500_000_000)
    # a long pause refills to the burst, not beyond
    later = start + 3_600 * 1_000_000_000
    assert [limiter.take("a", later) for _ in range(4)] == [True, True, True, False]
    # a clock that steps back does not mint tokens
    assert not limiter.take("a", later - 10_000_000_000)
