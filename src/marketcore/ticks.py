"""The normalized tick as the domain sees it, and the rules every stored tick must meet."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from marketcore.instruments import KEY_SEPARATOR


class TickProblem(StrEnum):
    MISSING_EXCHANGE = "missing_exchange"
    MISSING_SYMBOL = "missing_symbol"
    BAD_IDENTIFIER = "bad_identifier"
    NEGATIVE_PRICE = "negative_price"
    NEGATIVE_SIZE = "negative_size"
    CROSSED_QUOTE = "crossed_quote"
    NO_PRICE = "no_price"
    NO_EVENT_TIME = "no_event_time"


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
    return None
