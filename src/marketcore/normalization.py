"""Normalization rules shared by every feed handler: venue facts in, ``Tick`` or a reason out.

Rules (documented once, applied by every venue parser):

- Prices are read from the venue's text exactly (``scaled_decimal``) into nanos (1e-9,
  ``fixed_point``); a price with more than nine decimals or beyond the wire range refuses the
  tick (``price_not_representable``), never rounded.
- Sizes and volumes with more than nine decimals (or beyond the range) are reported as
  unknown (0) and counted (``sizes_dropped``): the quote itself is still right, and rounding
  would not be. No venue we read sends such sizes (satoshis are 1e-8).
- A zero price means "side empty" (one-sided quotes are valid). A negative price or size,
  a crossed or locked quote (bid >= ask, both present) or no price at all refuses the
  tick; the reason is returned and counted, and the instrument's next good update is
  sent as usual. (``ticks.check_tick`` is the rule; the tick writer applies the same.)
- Symbols are ``BASE-QUOTE`` upper case (``BTC-USD``); the venue's spelling travels in
  ``venue_symbol``. Venue-specific asset aliases (Kraken ``XBT``) are mapped by the venue.
- ``event_time_ns`` is the venue's time for the message that caused the tick (0 when the
  venue sends none); ``received_time_ns`` is when our handler read the frame. A venue time
  more than 5 min after the receipt or 20 h before it refuses the tick (``implausible_time``,
  ``ticks.check_event_time``): it is dated wrong, and would be stored under another day.
- Each emitted tick carries the instrument's latest known values of every field (a trade
  updates last and keeps the quote), because 0 on the wire means "empty", not "unchanged".
- ``feed_sequence`` counts the ticks of one (feed_handler_id, exchange, symbol), from 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from marketcore.fixed_point import NotRepresentableError
from marketcore.order_book import TopOfBook, book_to_nanos
from marketcore.scaled_decimal import NotADecimalError, parse_nanos_fast
from marketcore.ticks import Tick, TickProblem, check_tick

MAX_DETAIL_CHARS = 300


class RejectReason(StrEnum):
    """Why a frame or a tick produced nothing; a bounded label set for metrics."""

    MALFORMED = "malformed"  # not JSON/FIX/ITCH we can read, or a field missing or mistyped
    PRICE_NOT_REPRESENTABLE = "price_not_representable"
    CROSSED_QUOTE = "crossed_quote"
    NEGATIVE_PRICE = "negative_price"
    NEGATIVE_SIZE = "negative_size"
    NO_PRICE = "no_price"
    BAD_SYMBOL = "bad_symbol"
    NO_TIME = "no_time"
    IMPLAUSIBLE_TIME = "implausible_time"  # venue time far from our receipt (a misdated tick)
    CHECKSUM_MISMATCH = "checksum_mismatch"  # local book differs from the venue's
    BOOK_NOT_READY = "book_not_ready"  # an update before the book's snapshot
    VENUE_ERROR = "venue_error"  # the venue said something failed (subscribe refused...)


_PROBLEM_REASONS: dict[TickProblem, RejectReason] = {
    TickProblem.MISSING_EXCHANGE: RejectReason.BAD_SYMBOL,
    TickProblem.MISSING_SYMBOL: RejectReason.BAD_SYMBOL,
    TickProblem.BAD_IDENTIFIER: RejectReason.BAD_SYMBOL,
    TickProblem.NEGATIVE_PRICE: RejectReason.NEGATIVE_PRICE,
    TickProblem.NEGATIVE_SIZE: RejectReason.NEGATIVE_SIZE,
    TickProblem.CROSSED_QUOTE: RejectReason.CROSSED_QUOTE,
    TickProblem.NO_PRICE: RejectReason.NO_PRICE,
    TickProblem.NO_EVENT_TIME: RejectReason.NO_TIME,
    TickProblem.IMPLAUSIBLE_EVENT_TIME: RejectReason.IMPLAUSIBLE_TIME,
    TickProblem.OVERSIZED_FIELD: RejectReason.BAD_SYMBOL,
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a frame or tick produced nothing. ``detail`` is for people (logs, counters' samples):
    kept to ``MAX_DETAIL_CHARS``, since it may quote a venue's value, and a venue (or whoever
    pretends to be one) may send a value of any size."""

    reason: RejectReason
    detail: str

    def __post_init__(self) -> None:
        if len(self.detail) > MAX_DETAIL_CHARS:
            clipped = f"{self.detail[:MAX_DETAIL_CHARS]}... ({len(self.detail)} characters)"
            object.__setattr__(self, "detail", clipped)  # frozen: set once, here


def size_nanos(text: str) -> int | None:
    """A venue size or volume as nanos, or None when it does not fit nanos exactly.

    Malformed text still raises NotADecimalError: only a well-formed value with more than
    nine decimals (or beyond the range) becomes "unknown".
    """
    try:
        return parse_nanos_fast(text)
    except NotADecimalError:
        raise
    except NotRepresentableError:
        return None


def join_symbol(base: str, quote: str) -> str:
    """The normalized spelling of a currency pair: ``BTC-USD``."""
    return f"{base.upper()}-{quote.upper()}"


@dataclass(slots=True)
class InstrumentState:
    """What a handler knows of one instrument: the latest value of every field, in nanos.

    Mutable on purpose (one per instrument, updated in place per message); ``tick()``
    freezes the current state into a ``Tick``. A price that did not fit nanos leaves its
    field marked unrepresentable until the venue sends one that fits, so a later trade
    never goes out beside a stale quote.

    The ``set_*`` methods take the venue's text and return how many sizes were dropped
    (more than nine decimals: reported as 0, unknown). Malformed text raises NotADecimalError.
    """

    exchange: str
    symbol: str
    venue_symbol: str
    bid_nanos: int = 0
    ask_nanos: int = 0
    bid_size_nanos: int = 0
    ask_size_nanos: int = 0
    last_nanos: int = 0
    last_size_nanos: int = 0
    volume_nanos: int = 0
    quote_unrepresentable: bool = False
    last_unrepresentable: bool = False

    def set_quote(self, bid: str, bid_size: str, ask: str, ask_size: str) -> int:
        """Best bid and ask from venue text; an empty size text means "not given" (0)."""
        try:
            bid_nanos = parse_nanos_fast(bid)
            ask_nanos = parse_nanos_fast(ask)
        except NotADecimalError:
            raise
        except NotRepresentableError:
            self.quote_unrepresentable = True
            return 0
        self.bid_nanos = bid_nanos
        self.ask_nanos = ask_nanos
        self.quote_unrepresentable = False
        dropped = 0
        if bid_size:
            size = size_nanos(bid_size)
            dropped += size is None
            self.bid_size_nanos = size or 0
        else:
            self.bid_size_nanos = 0
        if ask_size:
            size = size_nanos(ask_size)
            dropped += size is None
            self.ask_size_nanos = size or 0
        else:
            self.ask_size_nanos = 0
        return dropped

    def set_quote_from_book(self, top: TopOfBook) -> int:
        """Best bid and ask from an order book's top (book scale, see ``order_book``)."""
        bid = book_to_nanos(top.bid)
        ask = book_to_nanos(top.ask)
        if bid is None or ask is None:
            self.quote_unrepresentable = True
            return 0
        self.bid_nanos = bid
        self.ask_nanos = ask
        self.quote_unrepresentable = False
        bid_size = book_to_nanos(top.bid_size)
        ask_size = book_to_nanos(top.ask_size)
        self.bid_size_nanos = bid_size or 0
        self.ask_size_nanos = ask_size or 0
        return (bid_size is None) + (ask_size is None)

    def set_last(self, price: str, size: str) -> int:
        """The last trade from venue text; an empty size text means "not given" (0)."""
        try:
            last = parse_nanos_fast(price)
        except NotADecimalError:
            raise
        except NotRepresentableError:
            self.last_unrepresentable = True
            return 0
        self.last_nanos = last
        self.last_unrepresentable = False
        if not size:
            self.last_size_nanos = 0
            return 0
        last_size = size_nanos(size)
        self.last_size_nanos = last_size or 0
        return last_size is None

    def set_volume(self, volume: str) -> int:
        nanos = size_nanos(volume)
        self.volume_nanos = nanos or 0
        return nanos is None

    def tick(self, event_time_ns: int, received_time_ns: int) -> Tick | Rejection:
        """The current state as a tick, or why it must not be sent."""
        if self.quote_unrepresentable or self.last_unrepresentable:
            which = "bid/ask" if self.quote_unrepresentable else "last"
            return Rejection(
                RejectReason.PRICE_NOT_REPRESENTABLE,
                f"{self.symbol}: {which} not representable (more than 9 decimals, or out of range)",
            )
        # positional: once per tick, and a frozen dataclass pays for every keyword
        tick = Tick(
            self.exchange, self.symbol, self.bid_nanos, self.ask_nanos, self.last_nanos,
            self.volume_nanos, self.bid_size_nanos, self.ask_size_nanos, self.last_size_nanos,
            event_time_ns, received_time_ns, "", self.venue_symbol,
        )  # fmt: skip
        problem = check_tick(tick)
        if problem is None:
            return tick
        return Rejection(_PROBLEM_REASONS[problem.problem], f"{self.symbol}: {problem.detail}")


@dataclass(slots=True)
class FeedSequencer:
    """``feed_sequence`` per (exchange, symbol): 1, 2, 3... in the order ticks are sent."""

    _last: dict[tuple[str, str], int] = field(default_factory=dict)

    def next(self, exchange: str, symbol: str) -> int:
        key = (exchange, symbol)
        value = self._last.get(key, 0) + 1
        self._last[key] = value
        return value

    def last(self, exchange: str, symbol: str) -> int:
        return self._last.get((exchange, symbol), 0)
