"""The recorded Kraken ticker capture (tests/data/kraken, see its README) through the parser,
and book/trade frames written from Kraken's WebSocket v1 documentation."""

from collections import Counter
from pathlib import Path

import orjson
import pytest

from feedhandlers.capture import CaptureLine, read_frames
from feedhandlers.parsing import FrameKind
from feedhandlers.venues.kraken import schema
from feedhandlers.venues.kraken.parse import KrakenParser, book_checksum
from marketcore.normalization import RejectReason
from marketcore.ticks import Tick

CAPTURE = Path(__file__).parents[1] / "data" / "kraken" / "KRAKEN.ws.49.0"

# The worked example of Kraken's "Spot WebSockets (v1) Book Checksum" guide: this book has
# checksum 974947235.
DOC_ASKS = ["0.05005", "0.05010", "0.05015", "0.05020", "0.05025",
            "0.05030", "0.05035", "0.05040", "0.05045", "0.05050"]  # fmt: skip
DOC_BIDS = ["0.05000", "0.04995", "0.04990", "0.04980", "0.04975",
            "0.04970", "0.04965", "0.04960", "0.04955", "0.04950"]  # fmt: skip
DOC_VOLUME = "0.00000500"
DOC_CHECKSUM = 974947235
TS = "1582905487.439814"
READ_NS = 1_582_905_488_100_000_000  # when these book frames are read: just after their times


@pytest.fixture(scope="module")
def frames() -> list[CaptureLine]:
    return read_frames(CAPTURE)


def test_capture_holds_18_tickers_and_the_first_is_waves_eur(frames: list[CaptureLine]) -> None:
    decoded = [orjson.loads(f.payload) for f in frames]
    tickers = [m for m in decoded if isinstance(m, list) and m[-2] == "ticker"]
    assert len(tickers) == 18
    parser = KrakenParser()
    kinds: Counter[str] = Counter()
    first: Tick | None = None
    for frame in frames:
        result = parser.parse(frame.payload, frame.time_ns)
        kinds[result.kind] += 1
        if first is None and result.ticks:
            first = result.ticks[0]
    assert kinds == {FrameKind.DATA: 18, FrameKind.HEARTBEAT: 31, FrameKind.CONTROL: 11}
    assert first == Tick(
        exchange="KRAKEN",
        symbol="WAVES-EUR",
        bid_micros=13_232_900,
        ask_micros=13_253_900,
        last_micros=13_253_900,
        last_size_micros=3_716_720,
        # lot volumes (35.72892241...) and the day volume are finer than a micro: unknown
        bid_size_micros=0,
        ask_size_micros=0,
        volume_micros=0,
        event_time_ns=0,  # Kraken's ticker carries no event time
        received_time_ns=1_618_678_132_949_649_800,
        venue_symbol="WAVES/EUR",
    )


def test_kraken_asset_names_are_normalized_and_kept_as_venue_symbol(
    frames: list[CaptureLine],
) -> None:
    parser = KrakenParser()
    ticks = [t for f in frames for t in parser.parse(f.payload, f.time_ns).ticks]
    by_venue = {t.venue_symbol: t.symbol for t in ticks}
    assert by_venue["XBT/CHF"] == "BTC-CHF"
    assert by_venue["XMR/USD"] == "XMR-USD"
    assert schema.venue_symbol("BTC-CHF") == "XBT/CHF"
    assert schema.venue_symbol("DOGE-USD") == "XDG/USD"


def test_checksum_reproduces_krakens_documented_example() -> None:
    asks = [(price, DOC_VOLUME) for price in DOC_ASKS]
    bids = [(price, DOC_VOLUME) for price in DOC_BIDS]
    assert book_checksum(asks, bids) == DOC_CHECKSUM


def _levels(prices: list[str]) -> list[list[str]]:
    return [[price, DOC_VOLUME, TS] for price in prices]


def _frame(*payload: object) -> bytes:
    return orjson.dumps([336, *payload, "book-10", "XBT/USD"])


def test_book_update_verified_by_checksum_after_truncation_to_depth() -> None:
    parser = KrakenParser()
    # the documented book shifted by one ask: 0.05010..0.05055
    snapshot = _frame({"as": _levels([*DOC_ASKS[1:], "0.05055"]), "bs": _levels(DOC_BIDS)})
    (tick,) = parser.parse(snapshot, READ_NS).ticks
    assert (tick.bid_micros, tick.ask_micros) == (50_000, 50_100)
    assert tick.event_time_ns == 1_582_905_487_439_814_000
    # a better ask arrives; depth 10 drops 0.05055, leaving exactly the documented book
    update = _frame({"a": [["0.05005", DOC_VOLUME, "1582905488.000001"]], "c": str(DOC_CHECKSUM)})
    result = parser.parse(update, READ_NS + 1)
    assert result.rejections == []
    (tick,) = result.ticks
    assert (tick.symbol, tick.bid_micros, tick.ask_micros) == ("BTC-USD", 50_000, 50_050)
    assert tick.ask_size_micros == 5  # 0.00000500
    assert tick.event_time_ns == 1_582_905_488_000_001_000


def test_bid_and_ask_updates_in_two_objects_with_republish_flag() -> None:
    parser = KrakenParser()
    parser.parse(_frame({"as": _levels(DOC_ASKS), "bs": _levels([*DOC_BIDS[:-1], "0.04945"])}), 1)
    update = _frame(
        {"a": [["0.05005", DOC_VOLUME, TS, "r"]]},
        {"b": [["0.04945", "0.00000000", TS], ["0.04950", DOC_VOLUME, TS]], "c": str(DOC_CHECKSUM)},
    )
    result = parser.parse(update, 2)
    assert result.rejections == []
    assert result.ticks == []  # the top did not move


def test_checksum_mismatch_drops_the_book_and_asks_for_a_resnapshot_once() -> None:
    parser = KrakenParser()
    parser.parse(_frame({"as": _levels(DOC_ASKS), "bs": _levels(DOC_BIDS)}), READ_NS)
    wrong = _frame({"b": [["0.05001", DOC_VOLUME, TS]], "c": str(DOC_CHECKSUM)})
    result = parser.parse(wrong, READ_NS + 1)
    assert [r.reason for r in result.rejections] == [RejectReason.CHECKSUM_MISMATCH]
    assert result.resync == ["XBT/USD"]
    assert parser.book("XBT/USD") is None
    later = parser.parse(_frame({"a": [["0.05006", DOC_VOLUME, TS]], "c": "1"}), READ_NS + 2)
    assert [r.reason for r in later.rejections] == [RejectReason.BOOK_NOT_READY]
    assert later.resync == []  # already asked
    fresh = parser.parse(_frame({"as": _levels(DOC_ASKS), "bs": _levels(DOC_BIDS)}), READ_NS + 3)
    assert len(fresh.ticks) == 1


# Written from Kraken's v1 trade layout: [price, volume, time, side, orderType, misc].
TRADES = (
    b'[0,[["5541.20000","0.15850568","1534614057.321597","s","l",""],'
    b'["6060.00000","0.02455000","1534614057.324998","b","l",""]],"trade","XBT/USD"]'
)


def test_each_trade_is_a_tick_at_its_own_time() -> None:
    result = KrakenParser().parse(TRADES, 1_534_614_057_400_000_000)  # read after both
    first, second = result.ticks
    assert (first.last_micros, first.last_size_micros) == (5_541_200_000, 0)  # size < 1e-6
    assert first.event_time_ns == 1_534_614_057_321_597_000
    assert (second.last_micros, second.last_size_micros) == (6_060_000_000, 24_550)
    assert second.event_time_ns == 1_534_614_057_324_998_000
    assert result.sizes_dropped == 1


def test_a_refused_subscription_is_a_venue_error() -> None:
    frame = (
        b'{"errorMessage":"Currency pair not supported XBT/XYZ","event":"subscriptionStatus",'
        b'"pair":"XBT/XYZ","status":"error","subscription":{"name":"ticker"}}'
    )
    result = KrakenParser().parse(frame, 1)
    assert result.kind is FrameKind.VENUE_ERROR
    assert "not supported" in result.rejections[0].detail
