"""The gateway's pure core: fan-out, the quote view and its day, request validation, and the
wire stamping at the proto edge."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from financial.marketdata.v2.prices_pb2 import PriceUpdate, PriceUpdateBatch
from gateway.core.fanout import FanOut
from gateway.core.quotes import DayBar, QuoteBook, TradingDays, extend_bar, merge_bars
from gateway.core.subscriptions import (
    Invalid,
    QuoteQuery,
    Subscription,
    SubscriptionLimits,
    parse_quote_query,
    parse_subscription,
)
from gateway.core.updates import FeedUpdate, day_price_nanos
from gateway.errors import ConfigError
from gateway.security import DEV_ACCOUNT, Account, AuthFailure, Permission, parse_tokens
from gateway.service import convert
from marketcore.instruments import InstrumentKey
from marketcore.ticks import Tick
from tests.support import price_update

SECOND = 1_000_000_000
# 2026-11-20 15:00 UTC = 10:00 in New York (EST)
FRIDAY_NS = int(dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC).timestamp()) * SECOND
DAY = 86_400 * SECOND
AAPL = InstrumentKey("NASDAQ", "AAPL")


def update(
    key: InstrumentKey = AAPL, at_ns: int = FRIDAY_NS, last: int = 100, seq: int = 1
) -> FeedUpdate:
    tick = Tick(
        exchange=key.exchange, symbol=key.symbol, last_nanos=last, event_time_ns=at_ns,
        feed_handler_id="fh", feed_sequence=seq,
    )  # fmt: skip
    return FeedUpdate(key, tick, f"{key}:{seq}".encode())


def subscription(*symbols: str, exchange: str | None = None) -> Subscription:
    return Subscription(frozenset(symbols), exchange, throttle_ns=0)


# -- fan-out ----------------------------------------------------------------------------------


def test_fanout_offers_the_same_update_object_to_every_matching_subscriber() -> None:
    fanout: FanOut[FeedUpdate] = FanOut(max_lag_ns=SECOND)
    woken: list[str] = []
    everywhere = fanout.add(subscription("AAPL"), lambda: woken.append("everywhere"))
    nyse_only = fanout.add(subscription("AAPL", exchange="NYSE"), lambda: woken.append("nyse"))
    other = fanout.add(subscription("MSFT"), lambda: woken.append("other"))
    tick = update()
    assert fanout.publish(AAPL, tick, now_ns=1) == 1
    nyse = InstrumentKey("NYSE", "AAPL")
    assert fanout.publish(nyse, update(nyse), 2) == 2
    assert everywhere.outbox.take(3, 10)[0] is tick
    assert len(nyse_only.outbox) == 1
    assert len(other.outbox) == 0
    assert woken == ["everywhere", "everywhere", "nyse"]


def test_fanout_wakes_only_when_an_instrument_becomes_pending() -> None:
    fanout: FanOut[FeedUpdate] = FanOut(max_lag_ns=SECOND)
    woken = []
    fanout.add(subscription("AAPL"), lambda: woken.append(1))
    for seq in range(5):
        fanout.publish(AAPL, update(seq=seq), now_ns=seq)
    assert len(woken) == 1  # four replacements woke nobody


SYMBOLS_ABC = ("AAA", "BBB", "CCC")


def test_a_filling_batch_is_woken_once_when_full() -> None:
    fanout: FanOut[FeedUpdate] = FanOut(max_lag_ns=SECOND)
    woken = []
    subscriber = fanout.add(subscription(*SYMBOLS_ABC), lambda: woken.append(1))
    subscriber.wake_at = 3  # the sender waits for a batch of 3
    for n, symbol in enumerate(SYMBOLS_ABC):
        key = InstrumentKey("NASDAQ", symbol)
        fanout.publish(key, update(key, seq=n), now_ns=n)
        assert len(woken) == (1 if n == 2 else 0)


def test_removed_subscribers_receive_nothing() -> None:
    fanout: FanOut[FeedUpdate] = FanOut(max_lag_ns=SECOND)
    subscriber = fanout.add(subscription("AAPL", "MSFT"), lambda: None)
    fanout.remove(subscriber, now_ns=0)
    fanout.remove(subscriber, now_ns=0)  # twice is harmless
    assert fanout.publish(AAPL, update(), now_ns=1) == 0
    assert len(fanout) == 0


def test_lagging_subscribers_are_reported_with_a_reason() -> None:
    fanout: FanOut[FeedUpdate] = FanOut(max_lag_ns=100)
    slow = fanout.add(subscription("AAPL"), lambda: None)
    fast = fanout.add(subscription("AAPL"), lambda: None)
    fanout.publish(AAPL, update(), now_ns=0)
    fast.outbox.take(50, 10)
    assert fanout.lagging(now_ns=90) == []
    [(who, reason)] = fanout.lagging(now_ns=200)
    assert who is slow
    assert "client too slow" in reason


def test_sequence_numbers_are_contiguous_per_stream() -> None:
    fanout: FanOut[FeedUpdate] = FanOut(max_lag_ns=SECOND)
    subscriber = fanout.add(subscription("AAPL"), lambda: None)
    assert subscriber.number(3) == 1
    assert subscriber.number(1) == 4
    assert subscriber.sent == 4


def test_close_all_marks_and_wakes_every_subscriber() -> None:
    fanout: FanOut[FeedUpdate] = FanOut(max_lag_ns=SECOND)
    woken = []
    subscribers = [fanout.add(subscription("AAPL"), lambda: woken.append(1)) for _ in range(3)]
    assert fanout.close_all("bye", now_ns=0) == 3
    assert all(s.closing == "bye" and s.done for s in subscribers)
    assert len(woken) == 3


# -- quote view -------------------------------------------------------------------------------


def test_quote_book_keeps_the_newest_update_and_reports_stale_ones() -> None:
    book = QuoteBook(started_ns=FRIDAY_NS - DAY)
    assert book.apply(update(seq=1, at_ns=FRIDAY_NS + 10))
    assert not book.apply(update(seq=2, at_ns=FRIDAY_NS + 5))  # older event time
    assert not book.apply(update(seq=1, at_ns=FRIDAY_NS + 10))  # redelivered
    assert book.apply(update(seq=3, at_ns=FRIDAY_NS + 10))  # same time, later sequence
    latest = book.latest(AAPL)
    assert latest is not None
    assert latest.tick.feed_sequence == 3


def test_day_bar_open_high_low_close_and_late_ticks_count_for_extremes() -> None:
    book = QuoteBook(started_ns=FRIDAY_NS - DAY)  # running since before the day began
    for seconds, price in ((0, 100), (10, 120), (20, 90), (30, 110)):
        book.apply(update(at_ns=FRIDAY_NS + seconds * SECOND, last=price, seq=seconds + 1))
    book.apply(update(at_ns=FRIDAY_NS + 5 * SECOND, last=80, seq=99))  # late: low, not latest
    memory = book.quote(QuoteQuery("AAPL", None))
    assert memory is not None
    bar = memory.quote.bar
    assert bar is not None
    assert (bar.open_nanos, bar.high_nanos, bar.low_nanos, bar.close_nanos) == (
        100,
        120,
        80,
        110,
    )
    assert memory.quote.trade_date == "2026-11-20"
    assert memory.quote.latest.tick.last_nanos == 110
    assert memory.needs_store  # no previous close known yet


def test_rollover_makes_the_previous_complete_close_the_prev_close() -> None:
    book = QuoteBook(started_ns=FRIDAY_NS - DAY)
    book.apply(update(at_ns=FRIDAY_NS, last=100, seq=1))
    book.merge_stored(AAPL, "2026-11-20", None, previous_close_nanos=95)
    monday = FRIDAY_NS + 3 * DAY
    book.apply(update(at_ns=monday, last=130, seq=2))
    memory = book.quote(QuoteQuery("AAPL", "NASDAQ"))
    assert memory is not None
    assert memory.quote.trade_date == "2026-11-23"
    assert memory.quote.prev_close_nanos == 100
    assert not memory.needs_store  # the gateway ran through Monday's open


def test_the_start_day_is_merged_with_the_store_once() -> None:
    book = QuoteBook(started_ns=FRIDAY_NS)  # started mid-day: memory missed the open
    book.apply(update(at_ns=FRIDAY_NS + SECOND, last=100, seq=1))
    memory = book.quote(QuoteQuery("AAPL", None))
    assert memory is not None
    assert memory.needs_store
    stored = DayBar("2026-11-20", 90, 130, 85, 99, FRIDAY_NS - 3600 * SECOND, FRIDAY_NS)
    book.merge_stored(AAPL, "2026-11-20", stored, previous_close_nanos=88)
    memory = book.quote(QuoteQuery("AAPL", None))
    assert memory is not None
    assert not memory.needs_store
    bar = memory.quote.bar
    assert bar is not None
    assert (bar.open_nanos, bar.high_nanos, bar.low_nanos, bar.close_nanos) == (
        90,
        130,
        85,
        100,
    )
    assert memory.quote.prev_close_nanos == 88


def test_a_merge_for_a_day_memory_left_is_ignored() -> None:
    book = QuoteBook(started_ns=FRIDAY_NS)
    book.apply(update(at_ns=FRIDAY_NS + DAY, last=100))
    book.merge_stored(AAPL, "2026-11-20", DayBar("2026-11-20", 1, 1, 1, 1, 0, 0), 5)
    memory = book.quote(QuoteQuery("AAPL", None))
    assert memory is not None
    assert memory.quote.prev_close_nanos == 0


def test_quote_without_exchange_picks_the_most_recent_instrument() -> None:
    book = QuoteBook(started_ns=FRIDAY_NS)
    nyse = InstrumentKey("NYSE", "AAPL")
    book.apply(update(AAPL, at_ns=FRIDAY_NS + 1))
    book.apply(update(nyse, at_ns=FRIDAY_NS + 2))
    memory = book.quote(QuoteQuery("AAPL", None))
    assert memory is not None
    assert memory.quote.latest.key == nyse
    assert book.quote(QuoteQuery("AAPL", "ARCA")) is None


def test_snapshot_and_unknown_symbols_follow_the_subscription() -> None:
    book = QuoteBook(started_ns=FRIDAY_NS)
    book.apply(update(AAPL, at_ns=FRIDAY_NS + 2))
    book.apply(update(InstrumentKey("NYSE", "MSFT"), at_ns=FRIDAY_NS + 1))
    wanted = subscription("AAPL", "MSFT", "TSLA")
    assert [u.key.symbol for u in book.snapshot(wanted)] == ["MSFT", "AAPL"]  # oldest first
    assert book.unknown_symbols(wanted) == ["TSLA"]
    on_nasdaq = subscription("AAPL", "MSFT", exchange="NASDAQ")
    assert book.unknown_symbols(on_nasdaq) == ["MSFT"]


def test_trading_days_follow_the_venue_time_zone_across_midnight_and_dst() -> None:
    days = TradingDays()
    # 2026-03-08: US clocks go forward; 04:59 UTC = 23:59 EST on the 7th, 05:00 UTC = 00:00 EST
    before = int(dt.datetime(2026, 3, 8, 4, 59, tzinfo=dt.UTC).timestamp()) * SECOND
    assert days.of("NASDAQ", before) == "2026-03-07"
    assert days.of("NASDAQ", before + 60 * SECOND) == "2026-03-08"
    # the 8th is 23 hours long in New York: 04:00 UTC on the 9th is already the 9th
    assert days.of("NASDAQ", before + 60 * SECOND + 23 * 3600 * SECOND) == "2026-03-09"
    assert days.of("COINBASE", before) == "2026-03-08"  # UTC


@given(st.lists(st.tuples(st.integers(1, 10**6), st.integers(1, 1000)), min_size=1, max_size=30))
def test_merging_bars_is_order_independent_and_idempotent(points) -> None:
    bars = [DayBar("d", p, p, p, p, t, t) for t, p in points]
    forward = backward = None
    for bar in bars:
        forward = merge_bars(forward, bar)
    for bar in reversed(bars):
        backward = merge_bars(backward, bar)
    assert forward is not None
    assert backward is not None
    assert forward == backward
    assert merge_bars(forward, forward) == forward


@given(
    st.tuples(st.integers(1, 1000), st.integers(1, 1000), st.integers(1, 1000)),
    st.integers(1, 10**6),
    st.integers(1, 10**6),
    st.integers(1, 1000),
    st.integers(1, 10**6),
)
def test_extending_a_bar_with_a_later_tick_is_merging_it(prices, first, span, price, after):
    low, high = min(prices), max(prices)
    bar = DayBar("d", prices[0], high, low, prices[2], first, first + span)
    at = first + span + after
    assert extend_bar(bar, price, at) == merge_bars(
        bar, DayBar("d", price, price, price, price, at, at)
    )


def test_day_price_is_last_else_mid() -> None:
    assert day_price_nanos(Tick("X", "Y", last_nanos=5, bid_nanos=1, ask_nanos=3)) == 5
    assert day_price_nanos(Tick("X", "Y", bid_nanos=1, ask_nanos=4)) == 2
    assert day_price_nanos(Tick("X", "Y", bid_nanos=1)) == 0


# -- requests ---------------------------------------------------------------------------------


def test_subscription_validation() -> None:
    limits = SubscriptionLimits(max_symbols=3)
    good = parse_subscription(["AAPL", "BTC-USD", "AAPL"], "", 250, limits)
    assert good == Subscription(frozenset({"AAPL", "BTC-USD"}), None, 250_000_000)
    for symbols, exchange, throttle, field in (
        ([], "", 0, "symbols"),
        (["A", "B", "C", "D"], "", 0, "symbols"),
        (["AA PL"], "", 0, "symbols"),
        (["AAPL"], "NAS|DAQ", 0, "exchange"),
        (["AAPL"], "", -1, "throttle_ms"),
        (["AAPL"], "", 60_001, "throttle_ms"),
    ):
        problem = parse_subscription(symbols, exchange, throttle, limits)
        assert isinstance(problem, Invalid)
        assert problem.field == field


@pytest.mark.parametrize(
    ("symbols", "exchange", "field", "hint"),
    [
        (["aapl"], "", "symbols", "'AAPL'"),
        (["AAPL", "btc-usd"], "", "symbols", "'BTC-USD'"),
        (["AAPL"], "nasdaq", "exchange", "'NASDAQ'"),
    ],
)
def test_a_lower_case_identifier_is_refused_naming_the_normalized_spelling(
    symbols: list[str], exchange: str, field: str, hint: str
) -> None:
    problem = parse_subscription(symbols, exchange, 0, SubscriptionLimits())
    assert isinstance(problem, Invalid)
    assert problem.field == field
    assert hint in problem.detail
    assert "upper case" in problem.detail
    quote = parse_quote_query(symbols[-1], exchange)
    assert isinstance(quote, Invalid)
    assert hint in str(quote)


def test_batch_parameters_default_to_throttle_then_the_server_default() -> None:
    limits = SubscriptionLimits(default_batch_size=100, default_delay_ms=10)
    throttled = parse_subscription(["A"], "", 200, limits, batched=True)
    assert isinstance(throttled, Subscription)
    assert (throttled.max_batch_size, throttled.max_delay_ns) == (100, 200_000_000)
    plain = parse_subscription(["A"], "", 0, limits, batched=True, max_batch_size=7)
    assert isinstance(plain, Subscription)
    assert (plain.max_batch_size, plain.max_delay_ns) == (7, 10_000_000)
    assert isinstance(
        parse_subscription(["A"], "", 0, limits, batched=True, max_batch_size=10**6), Invalid
    )


def test_quote_query_validation() -> None:
    assert parse_quote_query("AAPL", "") == QuoteQuery("AAPL", None)
    assert parse_quote_query("AAPL", "NYSE") == QuoteQuery("AAPL", "NYSE")
    assert isinstance(parse_quote_query("", ""), Invalid)
    assert isinstance(parse_quote_query("AAPL", "NY SE"), Invalid)


# -- proto edge -------------------------------------------------------------------------------

_INT64 = st.integers(0, 2**63 - 1)


@given(_INT64, st.integers(1, 2**64 - 1), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8))
def test_stamping_appends_the_stream_fields_to_the_encoded_update(
    bid: int, sequence: int, send_ns: int, symbol: str
) -> None:
    original = price_update(exchange="X", symbol=symbol, bid_nanos=bid, stream_sequence=7)
    decoded = PriceUpdate.FromString(convert.stamp(original.SerializeToString(), sequence, send_ns))
    expected = price_update()
    expected.CopyFrom(original)
    expected.stream_sequence = sequence
    expected.gateway_send_time_ns = send_ns
    assert decoded == expected


@given(st.one_of(st.integers(0, 2**15), st.integers(0, 2**64 - 1)))
def test_varint_is_protobufs_encoding(value: int) -> None:
    encoded = price_update(stream_sequence=value).SerializeToString()
    assert convert.varint(value) == (encoded[1:] if value else b"\x00")  # [0]: the field tag


@given(
    st.lists(st.tuples(st.text(max_size=8), _INT64), max_size=12),
    st.integers(1, 2**64 - 20),
    st.integers(-(2**63), 2**63 - 1),
)
def test_stamped_batch_is_the_price_update_batch_protobuf_would_build(
    updates: list[tuple[str, int]], first: int, send_ns: int
) -> None:
    originals = [price_update(symbol=symbol, bid_nanos=bid) for symbol, bid in updates]
    encoded = convert.stamped_batch([u.SerializeToString() for u in originals], first, send_ns)
    expected = PriceUpdateBatch()
    for offset, original in enumerate(originals):
        update = expected.updates.add()
        update.CopyFrom(original)
        update.stream_sequence = first + offset
        update.gateway_send_time_ns = send_ns
    assert PriceUpdateBatch.FromString(encoded) == expected


def test_decode_update_refuses_what_the_tick_writer_refuses() -> None:
    good = price_update(exchange="NASDAQ", symbol="AAPL", bid_nanos=1, event_time_ns=1)
    assert isinstance(convert.decode_update(good.SerializeToString()), FeedUpdate)
    assert convert.decode_update(b"") == "empty"
    assert convert.decode_update(b"\xff\xff") == "undecodable"
    crossed = price_update(exchange="N", symbol="A", bid_nanos=5, ask_nanos=4, event_time_ns=1)
    assert convert.decode_update(crossed.SerializeToString()) == "crossed_quote"
    spaced = price_update(exchange="N", symbol=" A", bid_nanos=5, event_time_ns=1)
    assert convert.decode_update(spaced.SerializeToString()) == "bad_identifier"


# -- tokens -----------------------------------------------------------------------------------

TOKEN = "token-0123456789abcdef"
METHOD = "/financial.marketdata.v2.MarketDataService/GetQuote"
TRADE = "/financial.marketdata.v2.MarketDataService/SubmitOrders"


def test_token_table_maps_bearer_tokens_to_accounts_and_permissions() -> None:
    table = parse_tokens(json.dumps({TOKEN: {"account": "a1"}}))
    bearer = {"authorization": f"Bearer {TOKEN}"}
    assert table.authenticate(METHOD, bearer) == Account("a1", frozenset({Permission.MARKET_DATA}))
    assert table.authenticate(TRADE, bearer) == AuthFailure.FORBIDDEN
    assert table.authenticate(METHOD, {}) == AuthFailure.MISSING
    assert table.authenticate(METHOD, {"authorization": "Basic abc"}) == AuthFailure.MISSING
    assert table.authenticate(METHOD, {"authorization": "Bearer nope"}) == AuthFailure.INVALID
    assert table.authenticate("/grpc.health.v1.Health/Check", {}) is None


def test_without_tokens_in_insecure_mode_everyone_is_the_dev_account() -> None:
    table = parse_tokens("", required=False)
    assert table.authenticate(TRADE, {}) == DEV_ACCOUNT


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not JSON"),
        ("[]", "JSON object"),
        (json.dumps({"short": {"account": "a"}}), "at least 16"),
        (json.dumps({TOKEN: {"acct": "a"}}), "expected"),
        (json.dumps({TOKEN: {"account": "a", "permissions": ["admin"]}}), "unknown permission"),
        (json.dumps({TOKEN: {"account": "desk/1"}}), "an account id is"),
        (json.dumps({TOKEN: {"account": ""}}), "an account id is"),
    ],
)
def test_bad_token_config_is_a_clear_error_without_the_token(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_tokens(text)
    assert TOKEN not in str(caught.value)
