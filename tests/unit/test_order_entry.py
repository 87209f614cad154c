"""Order entry text: exact parsing into an OrderRequest, one-line errors, one-line answers."""

from __future__ import annotations

import re
from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import (
    ExecutionReport,
    OrderRequest,
    OrderResult,
    OrderStatusUpdate,
    PositionUpdate,
    RequestKind,
    RequestReject,
    TradingMessage,
)
from gateway.order_entry import (
    describe_order,
    format_execution,
    format_message,
    format_position,
    format_reject,
    format_result,
    format_status,
    is_final,
    is_rejected,
    order_request,
    parse_command,
    reason_name,
    status_name,
)
from marketcore.fixed_point import NANOS_LIMIT
from marketinfra.decimal_codec import to_decimal
from tests.support import nanos


@pytest.mark.parametrize(
    ("limit", "stop", "expected"),
    [
        (None, None, common.ORDER_TYPE_MARKET),
        ("189.50", None, common.ORDER_TYPE_LIMIT),
        (None, "190", common.ORDER_TYPE_STOP),
        ("189.50", "190", common.ORDER_TYPE_STOP_LIMIT),
    ],
)
def test_the_order_type_follows_from_the_prices_given(
    limit: str | None, stop: str | None, expected: int
) -> None:
    request = order_request("buy", "AAPL", "100", limit=limit, stop=stop)
    assert request.order_type == expected
    assert nanos(request.quantity) == 100_000_000_000
    assert nanos(request.limit_price) == (189_500_000_000 if limit else 0)
    assert nanos(request.stop_price) == (190_000_000_000 if stop else 0)
    # an absent price is an unset field, never a zero Decimal written out
    assert request.HasField("limit_price") == (limit is not None)
    assert request.HasField("stop_price") == (stop is not None)


def test_quantities_and_prices_are_parsed_exactly_into_nanos() -> None:
    request = order_request("sell", "BTC-USD", "0.000001", limit="189.50")
    assert nanos(request.limit_price) == 189_500_000_000
    assert nanos(request.quantity) == 1_000
    assert (request.quantity.units, request.quantity.nanos) == (0, 1_000)
    assert nanos(order_request("buy", "X", "100").quantity) == 100_000_000_000
    # a float would make this 0.30000000000000004
    assert nanos(order_request("buy", "X", "1", limit="0.3").limit_price) == 300_000_000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0.000000001", 1),  # the smallest: one nano
        ("0.00001305", 13_050),  # SKL-BTC's price as Coinbase sends it
        ("0.12345678", 123_456_780),  # a satoshi-sized quantity
        ("0.000022880", 22_880),
        ("1.000000000", 1_000_000_000),
        ("1.0000000000", 1_000_000_000),  # a tenth place that is zero loses nothing
        ("9999999999.999999999", 9_999_999_999_999_999_999),  # a price near 1e10
        ("999999999999999.999999999", 999_999_999_999_999_999_999_999),  # a size near 1e15
        ("9223372036854775807.999999999", 9_223_372_036_854_775_807_999_999_999),  # the limit
    ],
)
def test_up_to_nine_decimals_are_taken_exactly(text: str, expected: int) -> None:
    request = order_request("buy", "ADA-BTC", text, limit=text, stop=text)
    assert [nanos(v) for v in (request.quantity, request.limit_price, request.stop_price)] == [
        expected
    ] * 3
    parsed = parse_command(f"buy ADA-BTC {text} limit {text}")
    assert isinstance(parsed, TradingMessage)
    assert (nanos(parsed.new_order.quantity), nanos(parsed.new_order.limit_price)) == (
        expected,
        expected,
    )


@pytest.mark.parametrize("field", ["quantity", "limit", "stop"])
@pytest.mark.parametrize("text", ["1.0000000001", "0.0000000005", "1e-10", "189.5000000001"])
def test_a_tenth_decimal_is_refused_never_rounded(field: str, text: str) -> None:
    what = {"quantity": "quantity", "limit": "limit price", "stop": "stop price"}[field]
    options = {"quantity": "1", field: text}
    quantity = options.pop("quantity")
    with pytest.raises(ValueError, match="decimals") as caught:
        order_request("buy", "X", quantity, **options)
    assert str(caught.value) == (
        f"{what} {text!r} has more than 9 decimals: prices and quantities are exact to 9 "
        "places, never rounded"
    )


def test_fields_are_carried_over_and_an_id_is_made_when_none_is_given() -> None:
    request = order_request(
        "SELL",
        "AAPL",
        "5",
        exchange="NASDAQ",
        time_in_force="IOC",
        order_id="mine-1",
        account_id="alice",
    )
    assert request.side == common.SIDE_SELL
    assert (request.symbol, request.exchange, request.order_id, request.account_id) == (
        "AAPL",
        "NASDAQ",
        "mine-1",
        "alice",
    )
    assert request.time_in_force == common.TIME_IN_FORCE_IOC
    first, second = (order_request("buy", "AAPL", "1").order_id for _ in range(2))
    assert first.startswith("cli-")
    assert len(first) == 20
    assert first != second
    assert order_request("buy", "X", "1").time_in_force == common.TIME_IN_FORCE_DAY
    assert order_request("buy", "X", "1", time_in_force="gtc").time_in_force == (
        common.TIME_IN_FORCE_GTC
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"side": "hold"}, "side must be buy or sell, not 'hold'"),
        ({"quantity": "abc"}, "quantity must be a positive number"),
        ({"quantity": "0"}, "quantity must be a positive number"),
        ({"quantity": "-5"}, "quantity must be a positive number"),
        ({"quantity": "1.0000000001"}, "quantity '1.0000000001' has more than 9 decimals"),
        ({"quantity": "1e30"}, "quantity '1e30' is beyond the largest value carried"),
        ({"limit": "1e19"}, "limit price '1e19' is beyond the largest value carried"),
        ({"limit": "cheap"}, "limit price must be a positive number"),
        ({"limit": "0"}, "limit price must be a positive number"),
        ({"stop": "-1"}, "stop price must be a positive number"),
        ({"time_in_force": "fok"}, "time in force must be day, ioc or gtc, not 'fok'"),
        ({"order_id": ""}, "order id must be 1 to 64"),
        ({"order_id": "a b"}, "order id must be 1 to 64"),
        ({"order_id": "x" * 65}, "order id must be 1 to 64"),
        ({"symbol": ""}, "symbol must be one word"),
        ({"symbol": "AA PL"}, "symbol must be one word"),
    ],
)
def test_bad_input_is_one_clear_line(kwargs: dict[str, str], message: str) -> None:
    options = dict(kwargs)
    side, symbol = options.pop("side", "buy"), options.pop("symbol", "AAPL")
    quantity = options.pop("quantity", "1")
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        order_request(side, symbol, quantity, **options)
    assert "\n" not in str(caught.value)


def test_enum_names_lose_their_prefix_and_unknown_numbers_show_as_numbers() -> None:
    assert status_name(common.ORDER_STATUS_FILLED) == "FILLED"
    assert reason_name(common.REJECT_REASON_PRICE_OUT_OF_BAND) == "PRICE_OUT_OF_BAND"
    assert status_name(common.OrderStatus.ValueType(99)) == "99"


def test_rejected_and_final() -> None:
    assert is_rejected(OrderResult(status=common.ORDER_STATUS_REJECTED))
    assert not is_rejected(OrderResult(status=common.ORDER_STATUS_NEW))
    assert is_final(common.ORDER_STATUS_CANCELLED)
    assert not is_final(common.ORDER_STATUS_PARTIALLY_FILLED)


def _limit_order() -> OrderRequest:
    return order_request("buy", "AAPL", "100", limit="189.5", exchange="NASDAQ", order_id="o-1")


def test_an_order_is_described_as_a_person_would_say_it() -> None:
    assert describe_order(_limit_order()) == "buy 100 AAPL on NASDAQ limit 189.50 DAY"
    assert describe_order(order_request("sell", "BTC-USD", "0.5")) == (
        "sell 0.5 BTC-USD at market DAY"
    )
    left_to_the_gateway = order_request("buy", "AAPL", "1", limit="2")
    assert describe_order(left_to_the_gateway, exchange="NASDAQ").startswith("buy 1 AAPL on NASDAQ")
    stop_limit = order_request("sell", "X", "2", stop="10.25", limit="10", time_in_force="gtc")
    assert describe_order(stop_limit) == "sell 2 X stop 10.25 limit 10.00 GTC"


def test_results_are_one_line_with_the_reason_when_rejected() -> None:
    accepted = OrderResult(order_id="o-1", status=common.ORDER_STATUS_NEW)
    assert format_result(accepted) == "o-1  NEW"
    assert format_result(accepted, _limit_order()) == (
        "o-1  NEW  buy 100 AAPL on NASDAQ limit 189.50 DAY"
    )
    rejected = OrderResult(
        order_id="o-2",
        status=common.ORDER_STATUS_REJECTED,
        reject_reason=common.REJECT_REASON_PRICE_OUT_OF_BAND,
        reject_text="limit too far from the quote",
    )
    assert format_result(rejected) == (
        "o-2  REJECTED  PRICE_OUT_OF_BAND: limit too far from the quote"
    )
    duplicate = OrderResult(order_id="o-1", status=common.ORDER_STATUS_FILLED, duplicate=True)
    assert "duplicate" in format_result(duplicate)


def test_status_lines_show_the_fill_progress_and_reason() -> None:
    update = OrderStatusUpdate(
        order_id="o-1",
        status=common.ORDER_STATUS_PARTIALLY_FILLED,
        filled_quantity=to_decimal(40_000_000_000),
        remaining_quantity=to_decimal(60_000_000_000),
        order=_limit_order(),
    )
    assert format_status(update) == (
        "o-1  PARTIALLY_FILLED  buy 100 AAPL on NASDAQ limit 189.50 DAY  filled 40 of 100"
    )
    cancelled = OrderStatusUpdate(
        order_id="o-1", status=common.ORDER_STATUS_CANCELLED, text="cancelled by the client"
    )
    assert format_status(cancelled).endswith("CANCELLED  filled 0 of 0  cancelled by the client")


def test_fills_positions_and_rejects_are_one_line_each() -> None:
    fill = ExecutionReport(
        execution_id="o-1-1",
        order_id="o-1",
        fill_price=to_decimal(189_450_000_000),
        fill_quantity=to_decimal(40_000_000_000),
        symbol="AAPL",
        exchange="NASDAQ",
        side=common.SIDE_BUY,
        cumulative_quantity=to_decimal(40_000_000_000),
        remaining_quantity=to_decimal(60_000_000_000),
        venue="SIM",
    )
    assert format_execution(fill) == (
        "o-1  FILL o-1-1  bought 40 AAPL on NASDAQ at 189.45  filled 40, 60 left  venue SIM"
    )
    position = PositionUpdate(
        symbol="AAPL",
        net_quantity=to_decimal(-2_500_000_000),
        cost=to_decimal(-473_625_000_000),
        realized_pnl=to_decimal(1_250_000_000),
    )
    assert format_position(position) == (
        "POSITION  AAPL  short 2.5  cost -473.625  realized P&L 1.25"
    )
    reject = RequestReject(
        order_id="o-1",
        request=RequestKind.REQUEST_KIND_CANCEL,
        reject_reason=common.REJECT_REASON_TOO_LATE_TO_CANCEL,
        text="the order is already FILLED",
        order_status=common.ORDER_STATUS_FILLED,
    )
    assert format_reject(reject) == (
        "o-1  CANCEL REFUSED  TOO_LATE_TO_CANCEL: the order is already FILLED  (order is FILLED)"
    )
    assert format_message(TradingMessage(reject=reject)) == format_reject(reject)
    assert format_message(TradingMessage(execution=fill)) == format_execution(fill)
    assert format_message(TradingMessage(position=position)) == format_position(position)
    assert format_message(TradingMessage()) == "(empty message)"


def test_session_commands_parse_into_messages() -> None:
    command = parse_command("buy BTC-USD 0.5 limit 99.5 gtc exchange COINBASE id s-1")
    assert isinstance(command, TradingMessage)
    order = command.new_order
    assert (order.order_id, order.symbol, order.exchange) == ("s-1", "BTC-USD", "COINBASE")
    assert (nanos(order.quantity), nanos(order.limit_price)) == (500_000_000, 99_500_000_000)
    assert order.order_type == common.ORDER_TYPE_LIMIT
    assert order.time_in_force == common.TIME_IN_FORCE_GTC
    market = parse_command("SELL AAPL 1")
    assert isinstance(market, TradingMessage)
    assert market.new_order.order_type == common.ORDER_TYPE_MARKET
    assert market.new_order.order_id.startswith("cli-")
    cancel = parse_command("cancel s-1")
    assert isinstance(cancel, TradingMessage)
    assert cancel.cancel.order_id == "s-1"
    assert parse_command("help") == "help"
    assert parse_command("quit") == "quit"
    assert parse_command("   \n") is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("hold AAPL 1", "unknown command 'hold'"),
        ("buy AAPL", "usage: buy SYMBOL QTY"),
        ("buy AAPL 1 limit", "limit needs a value"),
        ("buy AAPL 1 limit 2 limit 3", "limit given twice"),
        ("buy AAPL 1 day ioc", "time in force given twice"),
        ("buy AAPL 1 fast", "unexpected 'fast'"),
        ("buy AAPL x", "quantity must be a positive number"),
        ("cancel", "usage: cancel ORDER_ID"),
        ("cancel a b", "usage: cancel ORDER_ID"),
    ],
)
def test_bad_session_commands_say_why(line: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        parse_command(line)
    assert "\n" not in str(caught.value)


_EXACT = st.one_of(
    st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(10**15), places=9),
    st.integers(min_value=1, max_value=NANOS_LIMIT).map(lambda n: Decimal(n).scaleb(-9)),
)


def _spellings(value: Decimal, extra_zeros: int) -> list[str]:
    """How a person may type it: plainly, with trailing zeros, or in exponent form."""
    plain = format(value, "f")
    padded = format(value, ".9f") + "0" * extra_zeros
    return [plain, padded, format(value.normalize(), "E")]


@given(value=_EXACT, extra_zeros=st.integers(min_value=0, max_value=3))
def test_any_value_with_nine_decimals_is_taken_exactly(value: Decimal, extra_zeros: int) -> None:
    with localcontext() as context:
        context.prec = 60
        expected = int(value.scaleb(9))
    for text in _spellings(value, extra_zeros):
        request = order_request("buy", "X", text, limit=text)
        assert (nanos(request.quantity), nanos(request.limit_price)) == (expected, expected), text


@given(value=_EXACT, finer=st.integers(min_value=1, max_value=10**6 - 1))
def test_any_value_with_a_digit_past_the_ninth_is_refused(value: Decimal, finer: int) -> None:
    with localcontext() as context:
        context.prec = 60
        text = format(value + Decimal(finer).scaleb(-9 - len(str(finer))), "f")
    with pytest.raises(ValueError, match="has more than 9 decimals") as caught:
        order_request("buy", "X", text)
    assert str(caught.value).startswith(f"quantity {text!r} has more than 9 decimals")
