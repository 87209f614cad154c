"""ITCH 5.0 bytes -> ticks. Pure: no I/O, no clock (the receive time is passed in).

``ItchParser.parse`` takes one message (no framing). Per stock (by Stock Locate) it keeps
every displayed order and a price-level book built from them:

- R (Stock Directory) names a locate's symbol; messages for an unnamed locate are refused
  (``bad_symbol``).
- A/F add an order; X cancels shares; D deletes; U replaces (the new order keeps the side
  and stock); E executes shares at the order's price; C executes at its own price.
- Trades: E, C (printable only), P (non-displayed) and Q (cross, when shares > 0) set last
  and last size and add to volume (an E for an order we never saw adds to volume only: its
  price is unknown). ITCH carries no cumulative volume: ours is the sum of
  those executions since the start of the feed, exact when the feed starts at the start
  of the session (NASDAQ's daily files, a MoldUDP64 session read from sequence 1).
- A tick is emitted when a stock's top of book changes or it trades.
- event time: the message's nanoseconds since midnight (US Eastern) on the day its receipt
  time says (``marketcore.trading_calendar.TimeOfDayClock``: the latest such instant not after
  the receipt, allowing the venue's clock 5 min ahead of ours), so every message is dated on
  its own, across midnight, DST changes and restarts. A replayed file passes receipt times on
  its session's day (``replay.itch_file_records``). A stamp of a day or more is malformed.

Framings (pure as well): ``split_length_prefixed`` for files, ``SoupFramer`` for
SoupBinTCP, ``parse_mold_packet`` and ``MoldSequence`` (gap detection) for MoldUDP64.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from feedhandlers.parsing import FrameKind, FrameResult, malformed
from feedhandlers.venues.itch import schema
from marketcore.fixed_point import NANOS_PER_UNIT, scaled_to_nanos
from marketcore.normalization import InstrumentState, Rejection, RejectReason
from marketcore.order_book import BOOK_DECIMALS, OrderBook, TopOfBook
from marketcore.trading_calendar import TimeOfDayClock

_PRICE_TO_BOOK = 10 ** (BOOK_DECIMALS - schema.PRICE_DECIMALS)
_SHARE_TO_BOOK = 10**BOOK_DECIMALS
_NANOS = NANOS_PER_UNIT  # whole shares in nanos
# Nanoseconds since midnight stop short of a day (25 h: the day DST ends has 25 hours).
MAX_STAMP_NS = 25 * 3600 * 1_000_000_000


@dataclass(slots=True)
class _Order:
    locate: int
    bid: bool
    price: int  # Price(4)
    shares: int


@dataclass(slots=True)
class _Stock:
    state: InstrumentState
    book: OrderBook = field(default_factory=OrderBook)
    top: TopOfBook | None = None
    volume_shares: int = 0


class ItchParser:
    def __init__(self, exchange: str = schema.EXCHANGE, symbols: set[str] | None = None) -> None:
        """``symbols``: publish only these (ITCH carries every stock); None: all."""
        self._clock = TimeOfDayClock(exchange)
        self._exchange = exchange
        self._wanted = symbols
        self._stocks: dict[int, _Stock] = {}
        self._skipped: set[int] = set()  # locates of stocks not wanted
        self._orders: dict[int, _Order] = {}

    @property
    def exchange(self) -> str:
        return self._exchange

    def reset(self) -> None:
        """A new session: books and orders start empty (symbols are kept)."""
        self._orders.clear()
        for stock in self._stocks.values():
            stock.book.clear()
            stock.top = None

    def symbol(self, locate: int) -> str | None:
        stock = self._stocks.get(locate)
        return stock.state.symbol if stock else None

    def state(self, locate: int) -> InstrumentState | None:
        stock = self._stocks.get(locate)
        return stock.state if stock else None

    def book(self, locate: int) -> OrderBook | None:
        stock = self._stocks.get(locate)
        return stock.book if stock else None

    def parse(self, frame: bytes | str, received_ns: int) -> FrameResult:
        message = frame.encode("latin-1", "replace") if isinstance(frame, str) else frame
        kind = message[:1]
        length = schema.LENGTHS.get(kind)
        if length is None or len(message) != length:
            return malformed(f"type {kind!r} with {len(message)} bytes")
        _, locate, _, stamp = schema.HEADER.unpack_from(message)
        since_midnight_ns = int.from_bytes(stamp, "big")
        if since_midnight_ns >= MAX_STAMP_NS:
            return malformed(f"type {kind!r} stamped {since_midnight_ns} ns after midnight")
        event_ns = self._clock.event_ns(since_midnight_ns, received_ns)
        body = message[schema.HEADER_BYTES :]
        if kind == b"R":
            return self._on_directory(locate, body)
        handler = _HANDLERS.get(kind)
        if handler is None:
            return FrameResult(FrameKind.CONTROL if kind in (b"S", b"H") else FrameKind.IGNORED)
        stock = self._stocks.get(locate)
        if stock is None:
            if locate in self._skipped:
                return FrameResult(FrameKind.IGNORED)
            return FrameResult(
                rejections=[Rejection(RejectReason.BAD_SYMBOL, f"locate {locate} has no R")]
            )
        traded = handler(self, stock, locate, body)
        return self._emit(stock, traded, event_ns, received_ns)

    def _on_directory(self, locate: int, body: bytes) -> FrameResult:
        (raw_stock,) = schema.STOCK_DIRECTORY.unpack_from(body)
        symbol = raw_stock.decode("ascii", "replace").strip()
        if not symbol or "|" in symbol or not symbol.isprintable():
            return malformed(f"bad Stock {raw_stock!r}")
        if self._wanted is not None and symbol not in self._wanted:
            self._skipped.add(locate)
        elif locate not in self._stocks:
            self._stocks[locate] = _Stock(InstrumentState(self._exchange, symbol, symbol))
        return FrameResult(FrameKind.CONTROL)

    def _emit(self, stock: _Stock, traded: bool, event_ns: int, received_ns: int) -> FrameResult:
        top = stock.book.top()
        if not traded and top == stock.top:
            return FrameResult()
        stock.top = top
        dropped = stock.state.set_quote_from_book(top)
        outcome = stock.state.tick(event_ns, received_ns)
        if isinstance(outcome, Rejection):
            return FrameResult(rejections=[outcome], sizes_dropped=dropped)
        return FrameResult(ticks=[outcome], sizes_dropped=dropped)

    # --- book changes; each returns whether the stock traded ---------------------------

    def _level(self, stock: _Stock, order: _Order, shares: int) -> None:
        side = stock.book.bids if order.bid else stock.book.asks
        price = order.price * _PRICE_TO_BOOK
        side.set(price, max(0, side.size(price) + shares * _SHARE_TO_BOOK))

    def _add(self, stock: _Stock, locate: int, body: bytes) -> bool:
        ref, side, shares, _, price = schema.ADD_ORDER.unpack_from(body)
        order = _Order(locate, side == schema.BUY, price, shares)
        self._orders[ref] = order
        self._level(stock, order, shares)
        return False

    def _reduce(self, stock: _Stock, ref: int, shares: int) -> _Order | None:
        order = self._orders.get(ref)
        if order is None:
            return None
        taken = min(shares, order.shares)
        self._level(stock, order, -taken)
        order.shares -= taken
        if order.shares == 0:
            del self._orders[ref]
        return order

    def _trade(self, stock: _Stock, price: int, shares: int) -> bool:
        stock.volume_shares += shares
        state = stock.state
        state.last_nanos = scaled_to_nanos(price, schema.PRICE_DECIMALS)
        state.last_unrepresentable = False
        state.last_size_nanos = shares * _NANOS
        state.volume_nanos = stock.volume_shares * _NANOS
        return True

    def _executed(self, stock: _Stock, locate: int, body: bytes) -> bool:
        ref, shares, _ = schema.ORDER_EXECUTED.unpack_from(body)
        order = self._reduce(stock, ref, shares)
        if order is None:  # an order we never saw: its shares count, its price is unknown
            stock.volume_shares += shares
            stock.state.volume_nanos = stock.volume_shares * _NANOS
            return True
        return self._trade(stock, order.price, shares)

    def _executed_with_price(self, stock: _Stock, locate: int, body: bytes) -> bool:
        ref, shares, _, printable, price = schema.ORDER_EXECUTED_WITH_PRICE.unpack_from(body)
        self._reduce(stock, ref, shares)
        return printable == b"Y" and self._trade(stock, price, shares)

    def _cancel(self, stock: _Stock, locate: int, body: bytes) -> bool:
        ref, shares = schema.ORDER_CANCEL.unpack_from(body)
        self._reduce(stock, ref, shares)
        return False

    def _delete(self, stock: _Stock, locate: int, body: bytes) -> bool:
        (ref,) = schema.ORDER_DELETE.unpack_from(body)
        order = self._orders.get(ref)
        if order is not None:
            self._reduce(stock, ref, order.shares)
        return False

    def _replace(self, stock: _Stock, locate: int, body: bytes) -> bool:
        old_ref, new_ref, shares, price = schema.ORDER_REPLACE.unpack_from(body)
        old = self._orders.get(old_ref)
        if old is None:
            return False
        self._reduce(stock, old_ref, old.shares)
        order = _Order(locate, old.bid, price, shares)
        self._orders[new_ref] = order
        self._level(stock, order, shares)
        return False

    def _non_displayed_trade(self, stock: _Stock, locate: int, body: bytes) -> bool:
        _, _, shares, _, price, _ = schema.TRADE.unpack_from(body)
        return self._trade(stock, price, shares)

    def _cross(self, stock: _Stock, locate: int, body: bytes) -> bool:
        shares, _, price, _, _ = schema.CROSS_TRADE.unpack_from(body)
        return shares > 0 and self._trade(stock, price, shares)


_HANDLERS = {
    b"A": ItchParser._add,
    b"F": ItchParser._add,  # the MPID attribution follows the same fields
    b"E": ItchParser._executed,
    b"C": ItchParser._executed_with_price,
    b"X": ItchParser._cancel,
    b"D": ItchParser._delete,
    b"U": ItchParser._replace,
    b"P": ItchParser._non_displayed_trade,
    b"Q": ItchParser._cross,
}


# --- framings ---------------------------------------------------------------------------


def split_length_prefixed(data: bytes) -> tuple[list[bytes], bytes, int]:
    """A file's ``[length: 2][message]`` records: (messages, incomplete tail, bad records).

    A zero length (as in the RITCH sample) is read as the type's specified length; a
    length that differs from the type's is a bad record, skipped by its stated length.
    """
    messages: list[bytes] = []
    bad = 0
    position = 0
    while position + 3 <= len(data):
        stated = int.from_bytes(data[position : position + 2], "big")
        kind = data[position + 2 : position + 3]
        length = stated or schema.LENGTHS.get(kind, 0)
        if length == 0:
            return messages, b"", bad + 1  # unknown type and no length: cannot go on
        end = position + 2 + length
        if end > len(data):
            break
        if schema.LENGTHS.get(kind) != length:
            bad += 1
        else:
            messages.append(data[position + 2 : end])
        position = end
    return messages, data[position:], bad


@dataclass(slots=True)
class SoupFramer:
    """SoupBinTCP packets from a TCP byte stream: (packet type, payload) pairs."""

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[tuple[bytes, bytes]]:
        self._buffer += data
        packets: list[tuple[bytes, bytes]] = []
        while len(self._buffer) >= 3:
            length = int.from_bytes(self._buffer[:2], "big")
            if length == 0:
                del self._buffer[:2]  # an empty packet carries nothing
                continue
            if len(self._buffer) < 2 + length:
                break
            packets.append((bytes(self._buffer[2:3]), bytes(self._buffer[3 : 2 + length])))
            del self._buffer[: 2 + length]
        return packets


@dataclass(frozen=True, slots=True)
class MoldPacket:
    session: str
    sequence: int  # of the first message
    messages: list[bytes]
    end_of_session: bool


def parse_mold_packet(datagram: bytes) -> MoldPacket:
    """One MoldUDP64 datagram; raises ValueError when it does not add up.

    Per the MoldUDP64 1.00 specification the header's sequence number is that of the packet's
    first message, and messages are numbered from 1; a heartbeat (no messages) and an
    end-of-session packet (count 0xFFFF) carry the next expected number. Sequence number 0 is
    therefore not a valid packet (it names no message, nor a next one): refused, so counted
    as malformed rather than taken for a retransmission."""
    if len(datagram) < schema.MOLD_HEADER.size:
        raise ValueError(f"MoldUDP64 header needs 20 bytes, got {len(datagram)}")
    session, sequence, count = schema.MOLD_HEADER.unpack_from(datagram)
    if sequence == 0:
        what = "end of session" if count == schema.MOLD_END_OF_SESSION else f"{count} messages"
        raise ValueError(f"MoldUDP64 sequence number 0 ({what}): numbers start at 1")
    if count == schema.MOLD_END_OF_SESSION:
        return MoldPacket(session.decode("ascii", "replace"), sequence, [], True)
    messages: list[bytes] = []
    position = schema.MOLD_HEADER.size
    for _ in range(count):
        if position + 2 > len(datagram):
            raise ValueError("MoldUDP64 message count exceeds the datagram")
        length = int.from_bytes(datagram[position : position + 2], "big")
        messages.append(datagram[position + 2 : position + 2 + length])
        position += 2 + length
        if position > len(datagram):
            raise ValueError("MoldUDP64 message length exceeds the datagram")
    return MoldPacket(session.decode("ascii", "replace"), sequence, messages, False)


@dataclass(slots=True)
class MoldSequence:
    """Which messages of a MoldUDP64 stream are new; gaps are reported, duplicates dropped and
    counted, heartbeats (packets without messages) counted."""

    expected: int = 1
    gaps: int = 0
    missing: int = 0
    duplicates: int = 0  # messages seen before (retransmitted, or repeated by the network)
    heartbeats: int = 0

    def accept(self, packet: MoldPacket) -> tuple[list[bytes], tuple[int, int] | None]:
        """(messages not seen before, in order; the gap before them as (first, count) or None)."""
        gap: tuple[int, int] | None = None
        if not packet.messages and not packet.end_of_session:
            self.heartbeats += 1
        if packet.sequence > self.expected:
            gap = (self.expected, packet.sequence - self.expected)
            self.gaps += 1
            self.missing += gap[1]
            self.expected = packet.sequence
        skip = self.expected - packet.sequence  # already seen (a retransmission)
        fresh = packet.messages[skip:] if skip < len(packet.messages) else []
        self.duplicates += len(packet.messages) - len(fresh)
        self.expected += len(fresh)
        return fresh, gap
