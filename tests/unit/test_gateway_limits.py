"""The request limits (gateway.core.limits): every string of every RPC is bounded, and an
answer refusing one never carries more than a short preview of it."""

from __future__ import annotations

import pytest

from financial.marketdata.v2 import common_pb2 as common
from financial.marketdata.v2.orders_pb2 import OrderCancelRequest, OrderRequest
from gateway.core.limits import (
    MAX_ACCOUNT_ID_LENGTH,
    MAX_CANCEL_REASON_LENGTH,
    MAX_IDENTIFIER_LENGTH,
    PREVIEW_LENGTH,
    preview,
    text_problem,
)
from gateway.core.subscriptions import (
    Invalid,
    SubscriptionLimits,
    parse_quote_query,
    parse_subscription,
)
from gateway.trading.convert import Malformed, cancel_from_proto, spec_from_proto
from marketinfra.decimal_codec import to_decimal

HUGE = "A" * 600_000  # the order: a ~600 KB symbol, under gRPC's 1 MiB limit
LONGEST_ANSWER = 200  # no refusal needs more than this to say what is wrong


def market_order(**fields: str) -> OrderRequest:
    request = OrderRequest(
        order_id="o-1",
        symbol="BTC-USD",
        exchange="COINBASE",
        side=common.SIDE_BUY,
        order_type=common.ORDER_TYPE_MARKET,
        quantity=to_decimal(1_000_000_000),
    )
    for name, value in fields.items():
        setattr(request, name, value)
    return request


def test_preview_cuts_a_long_value_and_says_how_long_it_was() -> None:
    assert preview("AAPL") == "'AAPL'"
    shown = preview(HUGE)
    assert shown.startswith("'" + "A" * PREVIEW_LENGTH + "'...")
    assert "600000 characters" in shown
    assert len(shown) < 60


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("x" * 65, "f is 65 characters; at most 64"),
        ("", "f is empty"),
        ("a\x00b", "f 'a\\x00b' has control characters"),
    ],
)
def test_text_problem_names_the_field_and_the_limit(value: str, expected: str) -> None:
    assert text_problem("f", value, 64, required=True) == expected


def test_text_problem_accepts_values_at_the_limit() -> None:
    assert text_problem("f", "x" * 64, 64, required=True) is None
    assert text_problem("f", "", 64) is None


@pytest.mark.parametrize("field", ["symbol", "exchange", "account_id"])
def test_an_order_field_past_its_limit_is_malformed_without_echoing_it(field: str) -> None:
    problem = spec_from_proto(market_order(**{field: HUGE}), "alice")
    assert isinstance(problem, Malformed)
    assert str(problem) == f"order o-1: {field} is 600000 characters; at most 64"


def test_order_fields_at_their_limits_are_an_order() -> None:
    request = market_order(
        symbol="S" * MAX_IDENTIFIER_LENGTH,
        exchange="E" * MAX_IDENTIFIER_LENGTH,
        account_id="a" * MAX_ACCOUNT_ID_LENGTH,
    )
    spec = spec_from_proto(request, "a" * MAX_ACCOUNT_ID_LENGTH)
    assert not isinstance(spec, Malformed)
    assert spec.symbol == "S" * MAX_IDENTIFIER_LENGTH


def test_an_order_symbol_with_control_characters_is_malformed() -> None:
    problem = spec_from_proto(market_order(symbol="AA\nPL"), "alice")
    assert str(problem) == "order o-1: symbol 'AA\\nPL' has control characters"


def test_a_cancel_with_a_huge_account_or_reason_is_malformed() -> None:
    for field, limit in (
        ("account_id", MAX_ACCOUNT_ID_LENGTH),
        ("reason", MAX_CANCEL_REASON_LENGTH),
    ):
        request = OrderCancelRequest(order_id="o-1", **{field: HUGE})
        problem = cancel_from_proto(request, "alice")
        assert str(problem) == f"order o-1: {field} is 600000 characters; at most {limit}"
    assert cancel_from_proto(OrderCancelRequest(order_id="o-1", reason="r" * 256), "a") == (
        "o-1",
        "a",
    )


def test_a_huge_order_id_is_refused_without_echo() -> None:
    problem = spec_from_proto(market_order(order_id=HUGE), "alice")
    assert str(problem) == "order_id is longer than 64 characters"


@pytest.mark.parametrize(
    ("symbols", "exchange", "field"),
    [([HUGE], "", "symbols"), (["AAPL"], HUGE, "exchange"), (["AAPL", "B" * 65], "", "symbols")],
)
def test_a_subscription_past_a_limit_is_invalid_without_echoing_it(
    symbols: list[str], exchange: str, field: str
) -> None:
    problem = parse_subscription(symbols, exchange, 0, SubscriptionLimits())
    assert isinstance(problem, Invalid)
    assert problem.field == field
    assert "at most 64" in str(problem)
    assert len(str(problem)) < LONGEST_ANSWER


def test_too_many_symbols_are_refused_before_any_is_looked_at() -> None:
    problem = parse_subscription([HUGE] * 1001, "", 0, SubscriptionLimits())
    assert str(problem) == "symbols: 1001 symbols; at most 1000"


def test_a_quote_query_past_a_limit_is_invalid_without_echoing_it() -> None:
    for symbol, exchange in ((HUGE, ""), ("AAPL", HUGE)):
        problem = parse_quote_query(symbol, exchange)
        assert isinstance(problem, Invalid)
        assert len(str(problem)) < LONGEST_ANSWER
