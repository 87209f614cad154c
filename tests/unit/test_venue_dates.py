"""Every message is dated on its own, in the venue's calendar: ITCH time-of-day stamps across a
New York midnight, both DST changes and a restart; misdated ticks are refused by every stage.

Expected instants are written as UTC times read off the New York time zone's rules (EST is
UTC-5, EDT UTC-4; in 2024 DST started Sunday 10 March at 02:00 EST and ended Sunday 3 November
at 02:00 EDT), never computed by the code under test.
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from feedhandlers import app
from feedhandlers.config import FeedHandlerSettings
from feedhandlers.pipeline import FeedPipeline
from feedhandlers.replay import ReplayPace, itch_file_date, itch_file_records
from feedhandlers.simulator.itch_feed import add_order, stock_directory, system_event
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from feedhandlers.venues.itch.parse import ItchParser
from gateway.core.quotes import TradingDays
from gateway.service.convert import decode_update
from marketcore.normalization import RejectReason
from marketcore.ticks import Tick, TickProblem, check_tick
from marketcore.trading_calendar import TimeOfDayClock, trade_date_text
from tests.support import ListSink, price_update
from tickwriter.decode import decode_tick
from tickwriter.errors import RecordRejected
from tickwriter.rows import tick_trade_date

NEW_YORK = ZoneInfo("America/New_York")
SECOND = 1_000_000_000
MS = 1_000_000
HOUR = 3600 * SECOND


def utc_ns(text: str) -> int:
    """``2024-06-15T03:59:59.999`` (UTC) as Unix ns."""
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(moment.timestamp()) * SECOND + moment.microsecond * 1000


def since_midnight_ns(instant_ns: int) -> int:
    """Nanoseconds elapsed since the New York midnight before ``instant_ns`` (the ITCH stamp
    of an event at that instant), from the zone's rules."""
    local = datetime.fromtimestamp(instant_ns // SECOND, tz=NEW_YORK)
    midnight = local.replace(hour=0, minute=0, second=0).astimezone(UTC)
    return instant_ns - int(midnight.timestamp()) * SECOND


# -- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp_ns", "received", "expected"),
    [
        # stamped 23:59:59.999 EDT on 14 June, read 2 ms later, after midnight
        (86_399_999 * MS, "2024-06-15T04:00:00.001", "2024-06-15T03:59:59.999"),
        # stamped 00:00:00.001 EDT on 15 June, read by a clock 2 ms behind the venue's
        (1 * MS, "2024-06-15T03:59:59.999", "2024-06-15T04:00:00.001"),
        # DST starts: midnight is 05:00Z; 3 h later is 04:00 EDT (the day has 23 hours)
        (3 * HOUR, "2024-03-10T08:00:00.001", "2024-03-10T08:00:00"),
        # the last message of that 23-hour day, read after the next (EDT) midnight
        (23 * HOUR - MS, "2024-03-11T04:00:00.001", "2024-03-11T03:59:59.999"),
        # DST ends: midnight is 04:00Z; 02:30 EDT is 2.5 h later, 01:30 EST 2.5 h + 1 h
        (5 * HOUR // 2, "2024-11-03T06:30:00.001", "2024-11-03T06:30:00"),
        (7 * HOUR // 2, "2024-11-03T07:30:00.001", "2024-11-03T07:30:00"),
        # the last message of that 25-hour day, read after the next (EST) midnight
        (25 * HOUR - MS, "2024-11-04T05:00:00.001", "2024-11-04T04:59:59.999"),
        # a session read from its first message hours later (SoupBinTCP from sequence 1)
        (4 * HOUR, "2024-06-14T23:30:00", "2024-06-14T08:00:00"),
        # ... also after midnight: the 04:00 message of the day before
        (4 * HOUR, "2024-06-15T04:30:00", "2024-06-14T08:00:00"),
    ],
)
def test_a_time_of_day_is_dated_by_its_receipt(stamp_ns: int, received: str, expected: str) -> None:
    clock = TimeOfDayClock("NASDAQ")
    assert clock.event_ns(stamp_ns, utc_ns(received)) == utc_ns(expected)
    # and the same with a clock that dated other days first (a long-running process)
    clock.event_ns(0, utc_ns("2023-01-02T12:00:00"))
    assert clock.event_ns(stamp_ns, utc_ns(received)) == utc_ns(expected)


@given(
    instant=st.integers(utc_ns("2020-01-01T00:00:00"), utc_ns("2030-12-31T00:00:00")),
    latency_ns=st.integers(-5 * 60 * SECOND, 20 * HOUR),
)
def test_every_instant_is_recovered_from_its_stamp_and_receipt(
    instant: int, latency_ns: int
) -> None:
    # read up to 5 minutes "early" (our clock behind) or up to 20 hours late (a catch-up)
    clock = TimeOfDayClock("NASDAQ")
    assert clock.event_ns(since_midnight_ns(instant), instant + latency_ns) == instant


# -- the ITCH handler across midnight, DST and a restart -----------------------------------


def _session(start: str, step_ns: int, count: int) -> list[tuple[int, bytes]]:
    """An ITCH session from the simulator's encoders (written from the spec, not our parser):
    one stock, a new best bid every ``step_ns``; (venue instant, message) pairs."""
    first = utc_ns(start)
    messages = [
        (first, system_event(b"O", since_midnight_ns(first))),
        (first, stock_directory(1, "AAPL", since_midnight_ns(first))),
    ]
    for n in range(count):
        instant = first + n * step_ns
        price4 = 1_890_000 + n * 100
        stamp = since_midnight_ns(instant)
        messages.append((instant, add_order(1, n + 1, True, 100, "AAPL", price4, stamp)))
    return messages


@pytest.mark.parametrize(
    "start",
    [
        "2024-06-15T03:59:00",  # 23:59 EDT: a New York midnight
        "2024-03-10T06:59:00",  # 01:59 EST: DST starts (02:00 becomes 03:00)
        "2024-11-03T05:59:00",  # 01:59 EDT: DST ends (02:00 becomes 01:00 again)
        "2024-11-04T04:59:00",  # 23:59 EST after the 25-hour day
    ],
)
def test_itch_ticks_carry_their_venue_instant_across_the_change(start: str) -> None:
    session = _session(start, 1 * SECOND, 180)  # three minutes, one quote a second
    sink = ListSink()
    pipeline = FeedPipeline(ItchParser(), sink, "fh-itch")
    for instant, message in session:
        pipeline.on_frame(message, instant + 2 * MS)  # read 2 ms after the venue sent it
    updates = sink.updates()
    assert [u.event_time_ns for u in updates] == [instant for instant, _ in session[2:]]
    assert pipeline.counters.rejected.total() == 0
    dates = [trade_date_text("NASDAQ", u.event_time_ns) for u in updates]
    assert len(set(dates)) == 2 or start.startswith(("2024-03-10", "2024-11-03"))


def test_a_handler_started_after_midnight_dates_the_session_it_catches_up_on() -> None:
    # the session ran from 23:50 EDT; a handler (re)started at 00:30 reads it from the start
    session = _session("2024-06-15T03:50:00", 1 * SECOND, 1200)  # to 00:10 EDT
    sink = ListSink()
    pipeline = FeedPipeline(ItchParser(), sink, "fh-itch")
    restart = utc_ns("2024-06-15T04:30:00")
    for n, (_, message) in enumerate(session):
        pipeline.on_frame(message, restart + n * MS)  # the backlog, read fast
    events = [u.event_time_ns for u in sink.updates()]
    assert events == [instant for instant, _ in session[2:]]
    assert trade_date_text("NASDAQ", events[0]) == "2024-06-14"
    assert trade_date_text("NASDAQ", events[-1]) == "2024-06-15"


# -- misdated ticks --------------------------------------------------------------------------

_RECEIVED = utc_ns("2024-06-15T14:00:00")


@pytest.mark.parametrize(
    ("event_ns", "refused"),
    [
        (_RECEIVED - 16 * HOUR, False),  # a session caught up on from its start
        (_RECEIVED + 5 * 60 * SECOND, False),  # a venue clock 5 minutes ahead
        (_RECEIVED + 5 * 60 * SECOND + 1, True),
        (_RECEIVED - 20 * HOUR - 1, True),
        (_RECEIVED - 24 * HOUR, True),  # a date off by one day (the frozen ITCH date)
        (_RECEIVED + 24 * HOUR, True),
    ],
)
def test_a_venue_time_far_from_the_receipt_is_refused(event_ns: int, refused: bool) -> None:
    tick = Tick("NASDAQ", "AAPL", bid_nanos=1, event_time_ns=event_ns, received_time_ns=_RECEIVED)
    rejection = check_tick(tick)
    if refused:
        assert rejection is not None
        assert rejection.problem is TickProblem.IMPLAUSIBLE_EVENT_TIME
    else:
        assert rejection is None


def test_the_feed_handler_counts_a_misdated_tick_and_sends_nothing() -> None:
    sink = ListSink()
    pipeline = FeedPipeline(CoinbaseParser(), sink, "fh-coinbase")
    ticker = (
        b'{"type":"ticker","product_id":"BTC-USD","price":"1","best_bid":"1","best_ask":"2",'
        b'"volume_24h":"10","last_size":"1","time":"2024-06-14T12:00:00Z"}'
    )
    pipeline.on_frame(ticker, utc_ns("2024-06-15T12:00:00"))  # a venue date a day behind
    pipeline.on_frame(ticker, utc_ns("2024-06-13T12:00:00"))  # a day ahead
    assert sink.records == []
    assert pipeline.counters.rejected[RejectReason.IMPLAUSIBLE_TIME] == 2
    pipeline.on_frame(ticker, utc_ns("2024-06-14T12:00:00.003"))
    assert len(sink.records) == 1


def test_the_tick_writer_and_the_gateway_refuse_a_misdated_tick() -> None:
    # a tick produced by a handler that dated it a day early (the frozen ITCH date)
    update = price_update(
        exchange="NASDAQ",
        symbol="AAPL",
        bid_nanos=1,
        event_time_ns=_RECEIVED - 24 * HOUR,
        received_time_ns=_RECEIVED,
    )
    payload = update.SerializeToString()
    with pytest.raises(RecordRejected) as caught:
        decode_tick(payload)  # -> the DLQ with this reason, not yesterday's partition
    assert caught.value.reason == "invalid_tick:implausible_event_time"
    assert decode_update(payload) == "implausible_event_time"  # counted, not served


# -- the stores' day ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instant", "day"),
    [
        ("2024-06-15T03:59:59.999", "2024-06-14"),  # 23:59:59.999 EDT
        ("2024-06-15T04:00:00", "2024-06-15"),  # midnight EDT
        ("2024-03-10T04:59:59.999", "2024-03-09"),  # before DST starts: EST midnight is 05:00Z
        ("2024-03-10T05:00:00", "2024-03-10"),
        ("2024-03-11T03:59:59.999", "2024-03-10"),  # the 23-hour day ends at 04:00Z
        ("2024-03-11T04:00:00", "2024-03-11"),
        ("2024-11-03T03:59:59.999", "2024-11-02"),
        ("2024-11-03T04:00:00", "2024-11-03"),  # EDT midnight
        ("2024-11-04T04:59:59.999", "2024-11-03"),  # the 25-hour day ends at 05:00Z
        ("2024-11-04T05:00:00", "2024-11-04"),
    ],
)
def test_the_tick_writers_trade_date_follows_new_york_midnight(instant: str, day: str) -> None:
    assert tick_trade_date("NASDAQ", utc_ns(instant)) == day
    assert trade_date_text("NASDAQ", utc_ns(instant)) == day


def test_the_gateways_day_moves_at_each_new_york_midnight() -> None:
    days = TradingDays()
    start = utc_ns("2024-11-02T12:00:00")
    seen = []
    for hour in range(0, 72):
        instant = start + hour * HOUR
        seen.append((instant, days.of("NASDAQ", instant)))
    changes = [instant for (instant, day), (_, before) in zip(seen[1:], seen, strict=False)
               if day != before]  # fmt: skip
    assert changes == [
        utc_ns("2024-11-03T04:00:00"),  # EDT midnight
        utc_ns("2024-11-04T05:00:00"),  # EST midnight, 25 hours later
        utc_ns("2024-11-05T05:00:00"),
    ]
    assert days.of("NASDAQ", utc_ns("2024-11-04T04:59:59")) == "2024-11-03"


# -- a recorded ITCH file replayed later --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "day"),
    [
        ("01302019.NASDAQ_ITCH50.gz", date(2019, 1, 30)),  # NASDAQ's daily files, MMDDYYYY
        ("ex20101224.TEST_ITCH_50", date(2010, 12, 24)),
        ("capture.itch", None),
    ],
)
def test_an_itch_files_session_date_comes_from_its_name(name: str, day: date | None) -> None:
    assert itch_file_date(Path(name)) == day


def test_a_replayed_itch_file_that_runs_past_midnight_moves_to_the_next_day() -> None:
    before = system_event(b"O", 86_399 * SECOND)  # 23:59:59
    after = system_event(b"Q", 1 * SECOND)  # 00:00:01, the next day
    data = b"".join(len(m).to_bytes(2, "big") + m for m in (before, after))
    lines = list(itch_file_records(io.BytesIO(data), date(2024, 6, 14)))
    assert [line.time_ns for line in lines] == [
        utc_ns("2024-06-15T03:59:59"),
        utc_ns("2024-06-15T04:00:01"),
    ]


async def test_an_itch_file_without_a_date_is_refused_with_the_setting_to_use(
    tmp_path: Path,
) -> None:
    capture = tmp_path / "capture.itch"
    capture.write_bytes(b"")
    settings = FeedHandlerSettings(venue="itch", symbols="AAPL")
    with pytest.raises(ValueError, match="FEEDHANDLER_ITCH_DATE"):
        await app.replay(settings, capture, ReplayPace(0))
