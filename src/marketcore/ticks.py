"""The normalized tick as the domain sees it, and the rules every stored tick must meet."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from marketcore.instruments import KEY_SEPARATOR
from marketcore.trading_calendar import MAX_VENUE_CLOCK_AHEAD_NS, NANOS_PER_SECOND

# A tick whose venue time is further than this before our receipt of it is misdated, not late:
# a NASDAQ session read from its first message at its last (04:00 to 20:00) is 16 h behind, and
# a date off by one day is 23 h or more (ITCH dated from a fixed day after midnight was 24 h).
MAX_EVENT_BEHIND_NS = 20 * 3600 * NANOS_PER_SECOND
# Identifiers as venues and feed handlers write them are short (the longest seen is ~20
# characters). Anything longer is refused by every stage before it is stored, served or
# produced: Cassandra's driver cannot even encode a key part over 64 KiB (a 70,000-character
# symbol once crash-looped the tick writer), and nothing downstream should carry such text.
MAX_IDENTIFIER_CHARS = 64  # exchange, symbol, venue_symbol
MAX_FEED_HANDLER_ID_CHARS = 256


class TickProblem(StrEnum):
    MISSING_EXCHANGE = "missing_exchange"
    MISSING_SYMBOL = "missing_symbol"
    BAD_IDENTIFIER = "bad_identifier"
    NEGATIVE_PRICE = "negative_price"
    NEGATIVE_SIZE = "negative_size"
    CROSSED_QUOTE = "crossed_quote"
    NO_PRICE = "no_price"
    NO_EVENT_TIME = "no_event_time"
    IMPLAUSIBLE_EVENT_TIME = "implausible_event_time"
    OVERSIZED_FIELD = "oversized_field"


@dataclass(frozen=True, slots=True)
class Tick:
    """One top-of-book and last-trade observation; prices and sizes in nanos
    (1e-9, ``fixed_point``), times in Unix ns."""

    exchange: str
    symbol: str
    bid_nanos: int = 0
    ask_nanos: int = 0
    last_nanos: int = 0
    volume_nanos: int = 0
    bid_size_nanos: int = 0
    ask_size_nanos: int = 0
    last_size_nanos: int = 0
    event_time_ns: int = 0
    received_time_ns: int = 0
    feed_handler_id: str = ""
    venue_symbol: str = ""
    feed_sequence: int = 0


@dataclass(frozen=True, slots=True)
class TickRejection:
    problem: TickProblem
    detail: str


def check_tick(tick: Tick) -> TickRejection | None:
    """Why a tick must not be stored or served, or None when it is acceptable.

    Rule for quotes: a zero price means "side empty"; negative prices are refused;
    a bid at or above the ask (both present) is a crossed or locked quote and refused.
    """
    if (
        len(tick.symbol) > MAX_IDENTIFIER_CHARS
        or len(tick.exchange) > MAX_IDENTIFIER_CHARS
        or len(tick.venue_symbol) > MAX_IDENTIFIER_CHARS
        or len(tick.feed_handler_id) > MAX_FEED_HANDLER_ID_CHARS
    ):
        return _oversized(tick)
    if not tick.exchange:
        return TickRejection(TickProblem.MISSING_EXCHANGE, "exchange is empty")
    if not tick.symbol:
        return TickRejection(TickProblem.MISSING_SYMBOL, "symbol is empty")
    if KEY_SEPARATOR in tick.exchange or KEY_SEPARATOR in tick.symbol:
        return TickRejection(TickProblem.BAD_IDENTIFIER, f"{KEY_SEPARATOR!r} in exchange or symbol")
    # plain comparisons, no tuples: every tick of every service comes through here
    bid, ask, last = tick.bid_nanos, tick.ask_nanos, tick.last_nanos
    if bid < 0 or ask < 0 or last < 0:
        return TickRejection(TickProblem.NEGATIVE_PRICE, f"bid/ask/last {(bid, ask, last)}")
    if (
        tick.bid_size_nanos < 0
        or tick.ask_size_nanos < 0
        or tick.last_size_nanos < 0
        or tick.volume_nanos < 0
    ):
        sizes = (tick.bid_size_nanos, tick.ask_size_nanos, tick.last_size_nanos, tick.volume_nanos)
        return TickRejection(TickProblem.NEGATIVE_SIZE, f"sizes {sizes}")
    if not (bid or ask or last):
        return TickRejection(TickProblem.NO_PRICE, "no bid, ask or last")
    if bid and ask and bid >= ask:
        return TickRejection(TickProblem.CROSSED_QUOTE, f"bid {bid} >= ask {ask}")
    if tick.event_time_ns <= 0 and tick.received_time_ns <= 0:
        return TickRejection(TickProblem.NO_EVENT_TIME, "neither event nor receive time")
    return check_event_time(tick.event_time_ns, tick.received_time_ns)


def _oversized(tick: Tick) -> TickRejection:
    """Which string is too long: its name and length, never its text (which may be huge)."""
    name, length, limit = next(
        (name, len(value), limit)
        for name, value, limit in (
            ("exchange", tick.exchange, MAX_IDENTIFIER_CHARS),
            ("symbol", tick.symbol, MAX_IDENTIFIER_CHARS),
            ("venue_symbol", tick.venue_symbol, MAX_IDENTIFIER_CHARS),
            ("feed_handler_id", tick.feed_handler_id, MAX_FEED_HANDLER_ID_CHARS),
        )
        if len(value) > limit
    )
    return TickRejection(
        TickProblem.OVERSIZED_FIELD, f"{name} is {length} characters; at most {limit}"
    )


def check_event_time(event_time_ns: int, received_time_ns: int) -> TickRejection | None:
    """Whether the venue's time of a tick fits our receipt of it.

    Rule: when both times are known, the venue time is at most ``MAX_VENUE_CLOCK_AHEAD_NS``
    (5 min) after the receipt and at most ``MAX_EVENT_BEHIND_NS`` (20 h) before it. Beyond that
    the tick is dated wrong (a venue clock or a date rule gone bad), and storing or serving it
    would file it under another day: it is refused and counted instead, by every stage.
    """
    if event_time_ns <= 0 or received_time_ns <= 0:
        return None
    skew_ns = event_time_ns - received_time_ns
    if skew_ns > MAX_VENUE_CLOCK_AHEAD_NS:
        where = f"{skew_ns / NANOS_PER_SECOND:.3f} s after"
    elif -skew_ns > MAX_EVENT_BEHIND_NS:
        where = f"{-skew_ns / NANOS_PER_SECOND:.3f} s before"
    else:
        return None
    return TickRejection(
        TickProblem.IMPLAUSIBLE_EVENT_TIME,
        f"venue time {event_time_ns} is {where} its receipt at {received_time_ns}",
    )
