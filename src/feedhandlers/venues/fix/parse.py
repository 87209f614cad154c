"""FIX 4.4 bytes -> messages -> ticks. Pure: no I/O, no clock (the receive time is passed in).

``FixFramer`` cuts a TCP byte stream into messages, checking BodyLength (the CheckSum
field must be where it says) and CheckSum (the byte sum). A bad message is reported and
skipped, and framing starts again at the next ``8=FIX``: one bad message never costs the
session. ``decode`` turns a message into its fields; ``FixParser`` applies market data:

- W (snapshot): the symbol's book is replaced by the entries (bids 269=0, offers 269=1);
  a trade entry (269=2) sets last and last size.
- X (incremental refresh): each entry (279 new/change/delete, 269, 55, 270, 271) is applied
  to its symbol's price-level book in order; then one tick per symbol whose top of book
  or last trade changed.
- Y (request reject): a venue error.
- event time: the entry's MDEntryDate+MDEntryTime (272, 273), else SendingTime (52).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from feedhandlers.parsing import FRAME_ERRORS, FrameKind, FrameResult, failed_frame, malformed
from feedhandlers.venues.fix import schema
from marketcore.normalization import InstrumentState, Rejection, RejectReason
from marketcore.order_book import OrderBook, TopOfBook, parse_book_value
from marketcore.venue_time import fix_utc_timestamp_ns

_START = b"8=FIX"
_MAX_BODY = 1 << 20
# Numbers are read only when they have few enough digits: int() refuses over 4,300 digits
# (ValueError), and no sequence number needs more than a uint64's 20.
MAX_NUMBER_DIGITS = 20


class FixFormatError(ValueError):
    """A message whose framing, BodyLength or CheckSum is wrong."""


@dataclass(slots=True)
class FramedMessage:
    raw: bytes = b""
    error: str = ""  # set when this piece of the stream was not a valid message


@dataclass(slots=True)
class FixFramer:
    """Cuts a byte stream into FIX messages; keeps what is incomplete for the next ``feed``."""

    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[FramedMessage]:
        self._buffer += data
        out: list[FramedMessage] = []
        while True:
            piece = self._next()
            if piece is None:
                return out
            out.append(piece)

    def _next(self) -> FramedMessage | None:
        buffer = self._buffer
        start = buffer.find(_START)
        if start < 0:
            keep = len(_START) - 1  # a start split across reads
            if len(buffer) > keep:
                garbage = len(buffer) - keep
                del buffer[:garbage]
                return FramedMessage(error=f"{garbage} bytes before any 8=FIX")
            return None
        if start > 0:
            del buffer[:start]
            return FramedMessage(error=f"{start} bytes before 8=FIX")
        try:
            end = _message_end(buffer)
        except FixFormatError as exc:
            del buffer[:1]  # look for the next 8=FIX after this one
            return FramedMessage(error=str(exc))
        if end is None:
            return None
        raw = bytes(buffer[:end])
        del buffer[:end]
        expected = schema.checksum(raw[:-7])
        if raw[-4:-1] != expected:
            return FramedMessage(error=f"CheckSum {raw[-4:-1]!r}, computed {expected!r}")
        return FramedMessage(raw)


def _body_length(buffer: bytearray) -> tuple[int, int] | None:
    """(where the body starts, its length) from the first two fields; None if incomplete."""
    first = buffer.find(schema.SOH)
    if first < 0:
        if len(buffer) > 32:
            raise FixFormatError("BeginString without an end")
        return None
    if buffer[first + 1 : first + 3] != b"9=":
        if len(buffer) < first + 3:
            return None
        raise FixFormatError("BodyLength(9) is not the second field")
    second = buffer.find(schema.SOH, first + 1)
    if second < 0:
        if len(buffer) > first + 16:
            raise FixFormatError("BodyLength without an end")
        return None
    length_text = bytes(buffer[first + 3 : second])
    if (
        not length_text.isdigit()
        or len(length_text) > MAX_NUMBER_DIGITS
        or int(length_text) > _MAX_BODY
    ):
        raise FixFormatError(f"bad BodyLength {length_text!r}")
    return second + 1, int(length_text)


def _message_end(buffer: bytearray) -> int | None:
    """Where the message at the start of ``buffer`` ends, None if incomplete."""
    found = _body_length(buffer)
    if found is None:
        return None
    body_start, length = found
    body_end = body_start + length
    if buffer.find(b"\x018=FIX", body_start - 1, body_end + 7) >= 0:
        # a BodyLength too large would swallow the next messages while waiting for bytes
        raise FixFormatError(f"BodyLength {length} runs into the next message")
    if len(buffer) < body_end + 7:
        return None
    if buffer[body_end : body_end + 3] != b"10=" or buffer[body_end + 6] != 1:
        raise FixFormatError("CheckSum(10) not where BodyLength says")
    return body_end + 7


@dataclass(slots=True)
class FixMessage:
    msg_type: str
    seq_num: int
    fields: list[tuple[int, str]]

    def get(self, tag: int, default: str = "") -> str:
        for number, value in self.fields:
            if number == tag:
                return value
        return default


def decode(raw: bytes) -> FixMessage:
    """A whole message (as ``FixFramer`` returns it) into fields; raises FixFormatError."""
    if not raw.startswith(_START) or not raw.endswith(schema.SOH):
        raise FixFormatError("not a FIX message")
    if _message_end(bytearray(raw)) != len(raw):
        raise FixFormatError("BodyLength does not match")
    if raw[-4:-1] != schema.checksum(raw[:-7]):
        raise FixFormatError("CheckSum does not match")
    fields: list[tuple[int, str]] = []
    for item in raw[:-1].split(schema.SOH):
        tag, sep, value = item.partition(b"=")
        if not sep or not tag.isdigit() or len(tag) > 6:
            raise FixFormatError(f"bad field {item[:20]!r}")
        fields.append((int(tag), value.decode("ascii", "replace")))
    if len(fields) < 4 or fields[2][0] != schema.MSG_TYPE:
        raise FixFormatError("MsgType(35) is not the third field")
    seq_text = next((value for tag, value in fields if tag == schema.MSG_SEQ_NUM), "")
    if not seq_text.isdigit() or len(seq_text) > MAX_NUMBER_DIGITS:
        raise FixFormatError(f"bad MsgSeqNum {seq_text[:30]!r} ({len(seq_text)} characters)")
    return FixMessage(fields[2][1], int(seq_text), fields)


def _entries(message: FixMessage, first_tag: int) -> Iterator[dict[int, str]]:
    """The NoMDEntries (268) group's entries; each starts with ``first_tag``."""
    entry: dict[int, str] | None = None
    in_group = False
    for tag, value in message.fields:
        if tag == schema.NO_MD_ENTRIES:
            in_group = True
            continue
        if not in_group or tag == schema.CHECKSUM:
            continue
        if tag == first_tag:
            if entry is not None:
                yield entry
            entry = {}
        if entry is not None:
            entry[tag] = value
    if entry is not None:
        yield entry


def _event_ns(entry: dict[int, str], sending_ns: int) -> int:
    date, time_text = entry.get(schema.MD_ENTRY_DATE), entry.get(schema.MD_ENTRY_TIME)
    if date and time_text:
        return fix_utc_timestamp_ns(f"{date}-{time_text}")
    return sending_ns


def _book_value(text: str) -> int:
    return parse_book_value(text)


class FixParser:
    """Market data messages -> ticks; session messages are the session's (``session.py``)."""

    def __init__(self, exchange: str = schema.EXCHANGE) -> None:
        self._exchange = exchange
        self._states: dict[str, InstrumentState] = {}
        self._books: dict[str, OrderBook] = {}
        self._tops: dict[str, TopOfBook] = {}

    @property
    def exchange(self) -> str:
        return self._exchange

    def reset(self) -> None:
        self._books.clear()
        self._tops.clear()

    def parse(self, frame: bytes | str, received_ns: int) -> FrameResult:
        raw = frame.encode("latin-1", "replace") if isinstance(frame, str) else frame
        try:
            message = decode(raw)
        except FixFormatError as exc:
            return malformed(str(exc))
        try:
            sending_ns = fix_utc_timestamp_ns(message.get(schema.SENDING_TIME))
            if message.msg_type == schema.MARKET_DATA_SNAPSHOT:
                return self._on_snapshot(message, sending_ns, received_ns)
            if message.msg_type == schema.MARKET_DATA_INCREMENTAL:
                return self._on_incremental(message, sending_ns, received_ns)
        except FRAME_ERRORS as exc:
            result = failed_frame(exc, f"35={message.msg_type}")
            # a half-applied book is a wrong book: drop it and ask for a new snapshot
            for tag, value in message.fields:
                if tag == schema.SYMBOL and self._books.pop(value, None) is not None:
                    result.resync.append(value)
            return result
        if message.msg_type == schema.MARKET_DATA_REJECT:
            detail = f"request {message.get(schema.MD_REQ_ID)} refused: " + message.get(
                schema.TEXT, message.get(schema.MD_REQ_REJ_REASON)
            )
            return FrameResult(
                FrameKind.VENUE_ERROR, rejections=[Rejection(RejectReason.VENUE_ERROR, detail)]
            )
        if message.msg_type == schema.HEARTBEAT:
            return FrameResult(FrameKind.HEARTBEAT)
        if message.msg_type in schema.SESSION_TYPES:
            return FrameResult(FrameKind.CONTROL)
        return FrameResult(FrameKind.IGNORED)

    def _state(self, symbol: str) -> InstrumentState:
        state = self._states.get(symbol)
        if state is None:
            if not symbol or "|" in symbol or symbol != symbol.strip():
                raise FixFormatError(f"bad Symbol {symbol!r}")
            state = self._states[symbol] = InstrumentState(self._exchange, symbol.upper(), symbol)
        return state

    def _on_snapshot(self, message: FixMessage, sending_ns: int, received_ns: int) -> FrameResult:
        symbol = message.get(schema.SYMBOL)
        state = self._state(symbol)
        book = OrderBook()
        result = FrameResult()
        event_ns = sending_ns
        for entry in _entries(message, schema.MD_ENTRY_TYPE):
            event_ns = _event_ns(entry, sending_ns)
            result.sizes_dropped += self._apply(state, book, entry, schema.NEW)
        self._books[symbol] = book
        return self._emit(symbol, state, book, event_ns, received_ns, result, force=True)

    def _on_incremental(
        self, message: FixMessage, sending_ns: int, received_ns: int
    ) -> FrameResult:
        result = FrameResult()
        touched: dict[str, tuple[int, bool]] = {}  # symbol -> (event time, last trade changed)
        for entry in _entries(message, schema.MD_UPDATE_ACTION):
            symbol = entry.get(schema.SYMBOL, "")
            state = self._state(symbol)
            book = self._books.get(symbol)
            if book is None:
                result.rejections.append(
                    Rejection(RejectReason.BOOK_NOT_READY, f"{symbol}: no snapshot")
                )
                if symbol not in result.resync:
                    result.resync.append(symbol)
                continue
            traded = entry.get(schema.MD_ENTRY_TYPE) == schema.TRADE
            result.sizes_dropped += self._apply(
                state, book, entry, entry.get(schema.MD_UPDATE_ACTION, "")
            )
            previous = touched.get(symbol, (0, False))
            touched[symbol] = (_event_ns(entry, sending_ns), previous[1] or traded)
        for symbol, (event_ns, traded) in touched.items():
            self._emit(
                symbol, self._states[symbol], self._books[symbol], event_ns, received_ns, result,
                force=traded,
            )  # fmt: skip
        return result

    @staticmethod
    def _apply(state: InstrumentState, book: OrderBook, entry: dict[int, str], action: str) -> int:
        entry_type = entry.get(schema.MD_ENTRY_TYPE, "")
        if entry_type == schema.TRADE:
            return state.set_last(entry[schema.MD_ENTRY_PX], entry.get(schema.MD_ENTRY_SIZE, ""))
        if entry_type not in (schema.BID, schema.OFFER):
            return 0  # other entry types (opening price, volume...) are not published
        side = book.bids if entry_type == schema.BID else book.asks
        price = _book_value(entry[schema.MD_ENTRY_PX])
        if action == schema.DELETE:
            side.set(price, 0)
        elif action in (schema.NEW, schema.CHANGE):
            side.set(price, _book_value(entry.get(schema.MD_ENTRY_SIZE, "0")))
        else:
            raise FixFormatError(f"bad MDUpdateAction {action!r}")
        return 0

    def _emit(
        self,
        symbol: str,
        state: InstrumentState,
        book: OrderBook,
        event_ns: int,
        received_ns: int,
        result: FrameResult,
        *,
        force: bool,
    ) -> FrameResult:
        top = book.top()
        if not force and top == self._tops.get(symbol):
            return result
        self._tops[symbol] = top
        result.sizes_dropped += state.set_quote_from_book(top)
        outcome = state.tick(event_ns, received_ns)
        if isinstance(outcome, Rejection):
            result.rejections.append(outcome)
        else:
            result.ticks.append(outcome)
        return result
