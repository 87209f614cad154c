"""The recorded Binance spot capture (tests/data/binance, see its README) through the parser,
and USD-M futures frames written from Binance's documented field list."""

from collections import Counter
from pathlib import Path

import orjson
import pytest

from feedhandlers.capture import CaptureLine, read_frames
from feedhandlers.parsing import FrameKind
from feedhandlers.venues.binance import schema
from feedhandlers.venues.binance.parse import BinanceParser
from feedhandlers.venues.binance.schema import Market
from marketcore.normalization import RejectReason
from marketcore.ticks import Tick

CAPTURE = Path(__file__).parents[1] / "data" / "binance" / "BINANCE.ws.1.0"


@pytest.fixture(scope="module")
def frames() -> list[CaptureLine]:
    return read_frames(CAPTURE)


def test_capture_holds_book_tickers_trades_and_streams_we_ignore(
    frames: list[CaptureLine],
) -> None:
    streams = Counter(orjson.loads(f.payload)["stream"].split("@", 1)[1] for f in frames)
    assert streams == {"bookTicker": 84, "aggTrade": 2, "depth@100ms": 177, "kline_1m": 2}
    parser = BinanceParser()
    kinds = Counter(parser.parse(f.payload, f.time_ns).kind for f in frames)
    assert kinds == {FrameKind.DATA: 86, FrameKind.IGNORED: 179}


def test_first_book_ticker_becomes_a_tick_without_event_time(frames: list[CaptureLine]) -> None:
    parser = BinanceParser()
    for frame in frames:
        result = parser.parse(frame.payload, frame.time_ns)
        if result.ticks:
            break
    assert result.ticks == [
        Tick(
            exchange="BINANCE",
            symbol="NKN-USDT",
            bid_micros=352_100,
            ask_micros=352_600,
            bid_size_micros=672_000_000,
            ask_size_micros=3_199_000_000,
            event_time_ns=0,  # spot bookTicker carries no event time
            received_time_ns=1_633_998_513_377_805_000,
            venue_symbol="NKNUSDT",
        )
    ]


def test_agg_trade_sets_last_and_keeps_the_quote(frames: list[CaptureLine]) -> None:
    parser = BinanceParser()
    trade_ticks: list[Tick] = []
    for frame in frames:
        result = parser.parse(frame.payload, frame.time_ns)
        if b"aggTrade" in frame.payload:
            trade_ticks.extend(result.ticks)
    first = trade_ticks[0]
    assert (first.symbol, first.last_micros, first.last_size_micros) == (
        "NKN-USDT",
        352_800,
        58_000_000,
    )
    assert first.event_time_ns == 1_633_998_523_963_000_000  # the trade time T
    assert 0 < first.bid_micros < first.ask_micros


def test_prices_finer_than_a_micro_are_refused_and_counted(frames: list[CaptureLine]) -> None:
    parser = BinanceParser()
    reasons: Counter[str] = Counter()
    symbols: set[str] = set()
    for frame in frames:
        result = parser.parse(frame.payload, frame.time_ns)
        reasons.update(r.reason for r in result.rejections)
        symbols.update(t.symbol for t in result.ticks)
    assert set(reasons) == {RejectReason.PRICE_NOT_REPRESENTABLE}
    assert "LRC-BTC" not in symbols  # quoted in 1e-8 BTC: not representable in micros
    assert "NKN-USDT" in symbols


# USD-M futures frames: not in the capture; written from the field list of Binance's USD-M
# futures "Individual Symbol Book Ticker Streams" and "Aggregate Trade Streams".
FUTURES_BOOK_TICKER = (
    b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":400900217,'
    b'"E":1568014460893,"T":1568014460891,"s":"BTCUSDT","b":"25.35190000","B":"31.21000000",'
    b'"a":"25.36520000","A":"40.66000000"}}'
)
FUTURES_AGG_TRADE = (
    b'{"e":"aggTrade","E":123456789,"s":"BTCUSDT","a":5933014,"p":"0.001","q":"100",'
    b'"f":100,"l":105,"T":123456785,"m":true}'
)


def test_usdm_book_ticker_uses_the_transaction_time_and_a_perp_symbol() -> None:
    parser = BinanceParser(Market.USDM)
    received_ns = 1_568_014_460_893_000_005  # read just after the event time E
    (tick,) = parser.parse(FUTURES_BOOK_TICKER, received_ns).ticks
    assert tick == Tick(
        exchange="BINANCE_USDM",
        symbol="BTC-USDT-PERP",
        bid_micros=25_351_900,
        ask_micros=25_365_200,
        bid_size_micros=31_210_000,
        ask_size_micros=40_660_000,
        event_time_ns=1_568_014_460_891_000_000,
        received_time_ns=received_ns,
        venue_symbol="BTCUSDT",
    )
    (trade,) = parser.parse(FUTURES_AGG_TRADE, 123_456_789_000_001).ticks  # read after E
    assert (trade.last_micros, trade.last_size_micros) == (1_000, 100_000_000)
    assert trade.event_time_ns == 123_456_785_000_000
    assert trade.bid_micros == 25_351_900  # the quote is kept


def test_configured_symbols_decide_how_a_venue_symbol_splits() -> None:
    parser = BinanceParser(Market.SPOT, {"ETHBTC": "ETH-BTC"})
    frame = b'{"u":1,"s":"ETHBTC","b":"0.060000","B":"1","a":"0.061000","A":"2"}'
    (tick,) = parser.parse(frame, 1).ticks
    assert tick.symbol == "ETH-BTC"
    assert schema.venue_symbol("BTC-USDT-PERP") == "BTCUSDT"
    assert schema.venue_symbol("BTC-USDT-240329") == "BTCUSDT_240329"
    assert schema.normalized_symbol("BTCUSDT_240329", Market.USDM) == "BTC-USDT-240329"
    assert schema.normalized_symbol("FDUSDBUSD", Market.SPOT) == "FDUSD-BUSD"


def test_subscription_replies_and_errors_are_not_data() -> None:
    parser = BinanceParser()
    assert parser.parse(b'{"result":null,"id":1}', 1).kind is FrameKind.CONTROL
    error = parser.parse(b'{"error":{"code":2,"msg":"Invalid request"},"id":1}', 1)
    assert error.kind is FrameKind.VENUE_ERROR
    assert [r.reason for r in error.rejections] == [RejectReason.VENUE_ERROR]
