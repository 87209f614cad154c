"""Which trading day a tick belongs to.

Rule: the trade date is the calendar date of the tick's venue event time in
the venue's home time zone (US equity venues: America/New_York); venues not
listed here, such as crypto exchanges that trade around the clock, use UTC.
The same rule gives the Cassandra partition (exchange, symbol, trade_date) and
the gateway's "day" for open/high/low, so both agree.

Venues that stamp messages with the time since (their local) midnight only, such as ITCH,
get each message's date from its receipt time (``TimeOfDayClock``): never a date fixed when
the process started, so a session that runs across midnight, a DST change or a restart
dates every message right.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

_NEW_YORK = ZoneInfo("America/New_York")
VENUE_TIME_ZONES: dict[str, tzinfo] = {
    "NASDAQ": _NEW_YORK,
    "NYSE": _NEW_YORK,
    "ARCA": _NEW_YORK,
    "BATS": _NEW_YORK,
    "IEX": _NEW_YORK,
}
NANOS_PER_SECOND = 1_000_000_000
# How far a venue's clock may run ahead of ours (receipt) before its times are implausible;
# clocks kept by NTP or PTP differ by milliseconds.
MAX_VENUE_CLOCK_AHEAD_NS = 5 * 60 * NANOS_PER_SECOND


def venue_time_zone(exchange: str) -> tzinfo:
    return VENUE_TIME_ZONES.get(exchange, UTC)


def trade_date(exchange: str, event_time_ns: int) -> date:
    """The trading day of an event at ``event_time_ns`` (Unix nanoseconds, UTC) on ``exchange``."""
    seconds, nanos = divmod(event_time_ns, NANOS_PER_SECOND)
    moment = datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=nanos // 1000)
    return moment.astimezone(venue_time_zone(exchange)).date()


def trade_date_text(exchange: str, event_time_ns: int) -> str:
    """``trade_date`` as the ``YYYY-MM-DD`` text stored in Cassandra partition keys."""
    return trade_date(exchange, event_time_ns).isoformat()


def venue_midnight_ns(exchange: str, day: date) -> int:
    """Unix ns of 00:00 of ``day`` in the venue's time zone."""
    midnight = datetime.combine(day, time(0), tzinfo=venue_time_zone(exchange))
    return int(midnight.timestamp()) * NANOS_PER_SECOND


class TimeOfDayClock:
    """Unix time of messages stamped only with the nanoseconds since the venue's local midnight
    (ITCH), from each message's receipt time. Pure: the receipt time is an argument.

    Rule: a message's event is the latest instant with its time of day that is not later than
    its receipt plus ``ahead_ns`` (the venue's clock may run that far ahead of ours): a venue
    does not report events that have not happened yet. So a message stamped 23:59:59.9 and read
    at 00:00:00.1 belongs to the day before, one stamped 00:00:00.1 and read at 23:59:59.9 (our
    clock a little behind) to the next day, and a session read from its start hours later
    (SoupBinTCP from sequence 1, a replay with recorded receipt times) keeps its own day.
    Midnights come from the time zone's rules, so DST days of 23 or 25 hours are right: the
    stamp counts elapsed nanoseconds since midnight.
    """

    __slots__ = ("_ahead_ns", "_end_ns", "_exchange", "_midnights", "_start_ns")

    def __init__(self, exchange: str, ahead_ns: int = MAX_VENUE_CLOCK_AHEAD_NS) -> None:
        self._exchange = exchange
        self._ahead_ns = ahead_ns
        self._start_ns = self._end_ns = 0  # the local day of the last limit: [start, end)
        self._midnights = (0, 0, 0)  # that day's midnight, the day before's, and the one before

    def event_ns(self, since_midnight_ns: int, received_ns: int) -> int:
        limit = received_ns + self._ahead_ns
        if not self._start_ns <= limit < self._end_ns:
            self._move_to(limit)
        for midnight in self._midnights:
            event = midnight + since_midnight_ns
            if event <= limit:
                return event
        return event  # a stamp of more than two days: no day fits; the earliest reading

    def _move_to(self, limit_ns: int) -> None:
        day = trade_date(self._exchange, limit_ns)
        one = timedelta(days=1)
        exchange = self._exchange
        self._midnights = (
            venue_midnight_ns(exchange, day),
            venue_midnight_ns(exchange, day - one),
            venue_midnight_ns(exchange, day - 2 * one),
        )
        self._start_ns = self._midnights[0]
        self._end_ns = venue_midnight_ns(exchange, day + one)
