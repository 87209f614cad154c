"""The recorded Binance spot capture (tests/data/binance, see its README) through the parser,
and USD-M futures frames written from Binance's documented field list.

Expected values are the venue's own text, converted by Python's ``decimal`` (``_exact``) or
written out as literals, never taken from our parser."""

from collections import Counter
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from feedhandlers.capture import CaptureLine, read_frames
from feedhandlers.parsing import FrameKind
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.venues.binance import schema
from feedhandlers.venues.binance.parse import BinanceParser
from feedhandlers.venues.binance.schema import Market
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.normalization import RejectReason
from marketcore.ticks import Tick
from tests.support import ListSink, nanos

CAPTURE = Path(__file__).parents[1] / "data" / "binance" / "BINANCE.ws.1.0"


@pytest.fixture(scope="module")
def frames() -> list[CaptureLine]:
    return read_frames(CAPTURE)


def _exact(text: str) -> int:
    """Venue text in nanos, by Python's decimal (the expected value, not the parser's)."""
    value = Decimal(text).scaleb(9)
    assert value == value.to_integral_value(), f"{text} has more than nine decimals"
    return int(value)


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
            bid_nanos=352_100_000,  # "0.35210000"
            ask_nanos=352_600_000,
            bid_size_nanos=672_000_000_000,  # "672.00000000"
            ask_size_nanos=3_199_000_000_000,
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
    assert (first.symbol, first.last_nanos, first.last_size_nanos) == (
        "NKN-USDT",
        352_800_000,
        58_000_000_000,
    )
    assert first.event_time_ns == 1_633_998_523_963_000_000  # the trade time T
    assert 0 < first.bid_nanos < first.ask_nanos


def test_prices_quoted_below_a_micro_are_exact(frames: list[CaptureLine]) -> None:
    parser = BinanceParser()
    ticks = [t for f in frames for t in parser.parse(f.payload, f.time_ns).ticks]
    lrc = [t for t in ticks if t.symbol == "LRC-BTC"]
    blz = [t for t in ticks if t.symbol == "BLZ-ETH"]
    # the first lrcbtc@bookTicker: b "0.00000637" B "6500.00000000" a "0.00000638" A "27122..."
    assert lrc[0] == Tick(
        exchange="BINANCE",
        symbol="LRC-BTC",
        bid_nanos=6_370,
        ask_nanos=6_380,
        bid_size_nanos=6_500_000_000_000,
        ask_size_nanos=27_122_000_000_000,
        received_time_ns=1_633_998_519_510_019_000,
        venue_symbol="LRCBTC",
    )
    # lrcbtc@aggTrade: p "0.00000638" q "177.00000000" T 1633998534486, beside its quote
    trade = next(t for t in lrc if t.last_nanos)  # later quotes keep it
    assert (trade.last_nanos, trade.last_size_nanos) == (6_380, 177_000_000_000)
    assert trade.event_time_ns == 1_633_998_534_486_000_000
    assert (trade.bid_nanos, trade.ask_nanos, trade.ask_size_nanos) == (
        6_370,
        6_380,
        2_285_000_000_000,
    )
    # the one blzeth@bookTicker: b "0.00006547" B "100.00000000" a "0.00006560" A "1528..."
    assert blz == [
        Tick(
            exchange="BINANCE",
            symbol="BLZ-ETH",
            bid_nanos=65_470,
            ask_nanos=65_600,
            bid_size_nanos=100_000_000_000,
            ask_size_nanos=1_528_000_000_000,
            received_time_ns=1_633_998_525_253_930_000,
            venue_symbol="BLZETH",
        )
    ]
    lrc_frames = [f for f in frames if orjson.loads(f.payload)["data"].get("s") == "LRCBTC"]
    sent = Counter(orjson.loads(f.payload)["stream"] for f in lrc_frames)
    assert sent["lrcbtc@bookTicker"] + sent["lrcbtc@aggTrade"] == len(lrc) == 10  # none refused


def test_whole_capture_has_no_precision_refusal_and_no_zeroed_size(
    frames: list[CaptureLine],
) -> None:
    """Every frame through the handler's pipeline (parse, number, encode) beside the venue's
    text: refusals counted by reason, sizes reported as unknown, and every record's values
    compared with the latest bookTicker (quote) and aggTrade (last) of its symbol."""
    sink = ListSink()
    pipeline = FeedPipeline(BinanceParser(), sink, "contract")
    latest: dict[str, dict[str, int]] = {}
    mismatched: Counter[str] = Counter()
    zeroed: Counter[str] = Counter()  # the venue sent a non-zero value, the record says 0
    published = 0
    for frame in frames:
        message = orjson.loads(frame.payload)
        stream, data = message["stream"], message["data"]
        values = latest.setdefault(
            data["s"], dict.fromkeys(("bid", "bid_size", "ask", "ask_size", "last", "last_size"), 0)
        )
        if stream.endswith("@bookTicker"):
            values.update(
                bid=_exact(data["b"]), bid_size=_exact(data["B"]),
                ask=_exact(data["a"]), ask_size=_exact(data["A"]),
            )  # fmt: skip
            published += 1
        elif stream.endswith("@aggTrade"):
            values.update(last=_exact(data["p"]), last_size=_exact(data["q"]))
            published += 1
        before = len(sink.records)
        pipeline.on_frame(frame.payload, frame.time_ns)
        for _, value in sink.records[before:]:
            update = PriceUpdate.FromString(value)
            for name, want in latest[update.venue_symbol].items():
                got = nanos(getattr(update, name))
                mismatched[name] += got != want
                zeroed[name] += got == 0 != want
    counters = pipeline.counters
    # before v2: 11 price_not_representable (LRC-BTC 10, BLZ-ETH 1)
    assert counters.rejected == Counter()
    assert counters.sizes_dropped == 0
    assert +zeroed == Counter()
    assert +mismatched == Counter()
    assert counters.ticks == len(sink.records) == published == 86
    # every symbol that sent a quote or a trade publishes (RUNEEUR sent neither)
    symbols = {PriceUpdate.FromString(v).venue_symbol for _, v in sink.records}
    assert symbols == {"NKNUSDT", "BLZETH", "LRCBTC"}


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
        bid_nanos=25_351_900_000,
        ask_nanos=25_365_200_000,
        bid_size_nanos=31_210_000_000,
        ask_size_nanos=40_660_000_000,
        event_time_ns=1_568_014_460_891_000_000,
        received_time_ns=received_ns,
        venue_symbol="BTCUSDT",
    )
    (trade,) = parser.parse(FUTURES_AGG_TRADE, 123_456_789_000_001).ticks  # read after E
    assert (trade.last_nanos, trade.last_size_nanos) == (1_000_000, 100_000_000_000)
    assert trade.event_time_ns == 123_456_785_000_000
    assert trade.bid_nanos == 25_351_900_000  # the quote is kept


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
