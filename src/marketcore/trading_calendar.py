"""Which trading day a tick belongs to.

Rule: the trade date is the calendar date of the tick's venue event time in
the venue's home time zone (US equity venues: America/New_York); venues not
listed here, such as crypto exchanges that trade around the clock, use UTC.
The same rule gives the Cassandra partition (exchange, symbol, trade_date) and
the gateway's "day" for open/high/low, so both agree.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
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
