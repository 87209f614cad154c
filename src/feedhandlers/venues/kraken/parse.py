"""Kraken v1 frames -> ticks. Pure: no I/O, no clock (the receive time is passed in).

Per pair the parser keeps the latest values and, when ``book`` is subscribed, the book:

- quote: from the book once its snapshot arrived, else from ``ticker`` (``a``/``b``; size is
  the lot volume at the best price). A book update below the top emits no tick.
- last and last size: ``trade`` (one tick per trade, event time = the trade's time) and
  ``ticker`` ``c``.
- volume: ``ticker`` ``v[0]``, the venue's volume for today (since 00:00 UTC).
- event time: trade time; for the book, the newest level time in the message; the ticker
  has none (0).

Book updates are applied in order, the book is truncated to its subscribed depth, and
the CRC32 the venue sends is checked against ours (computed from the venue's own price
and volume text, as Kraken specifies). On a mismatch the book is dropped, the tick is
refused (``checksum_mismatch``) and the pair is returned in ``resync`` once; updates until
the new snapshot are refused as ``book_not_ready``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

import orjson

from feedhandlers.parsing import (
    FRAME_ERRORS,
    FrameKind,
    FrameResult,
    MalformedFrameError,
    arr,
    failed_frame,
    head,
    malformed,
    obj,
    text,
)
from feedhandlers.venues.kraken import schema
from marketcore.normalization import InstrumentState, Rejection, RejectReason
from marketcore.order_book import (
    BookSide,
    OrderBook,
    TopOfBook,
    parse_book_value,
)
from marketcore.venue_time import decimal_seconds_ns


def _checksum_part(price: str, volume: str) -> str:
    return price.replace(".", "").lstrip("0") + volume.replace(".", "").lstrip("0")


def book_checksum(asks: Sequence[tuple[str, str]], bids: Sequence[tuple[str, str]]) -> int:
    """Kraken's book CRC32: the top 10 asks (lowest first) then the top 10 bids (highest
    first), each price and volume as sent with the dot and leading zeros removed."""
    joined = "".join(_checksum_part(p, v) for p, v in asks[: schema.CHECKSUM_LEVELS])
    joined += "".join(_checksum_part(p, v) for p, v in bids[: schema.CHECKSUM_LEVELS])
    return zlib.crc32(joined.encode("ascii"))


class _Book:
    """A pair's book plus the venue's text of each level (the checksum is over the text)."""

    __slots__ = ("ask_texts", "bid_texts", "book", "depth", "top")

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.book = OrderBook()
        self.bid_texts: dict[int, tuple[str, str]] = {}
        self.ask_texts: dict[int, tuple[str, str]] = {}
        self.top: TopOfBook | None = None

    def apply(self, levels: list[Any], bids: bool) -> int:
        """Apply ``[price, volume, time(, "r")]`` levels; returns the newest time (ns)."""
        side = self.book.bids if bids else self.book.asks
        texts = self.bid_texts if bids else self.ask_texts
        newest = 0
        for level in levels:
            fields = arr(level, "level")
            price_text, volume_text, time_text = (
                text(fields[0], "price"),
                text(fields[1], "volume"),
                text(fields[2], "time"),
            )
            price = parse_book_value(price_text)
            volume = parse_book_value(volume_text)
            side.set(price, volume)
            if volume:
                texts[price] = (price_text, volume_text)
            else:
                texts.pop(price, None)
            newest = max(newest, decimal_seconds_ns(time_text))
        for price in side.truncate(self.depth):
            texts.pop(price, None)
        return newest

    def checksum(self) -> int:
        return book_checksum(
            self._texts(self.book.asks, self.ask_texts),
            self._texts(self.book.bids, self.bid_texts),
        )

    @staticmethod
    def _texts(side: BookSide, texts: dict[int, tuple[str, str]]) -> list[tuple[str, str]]:
        return [texts[price] for price, _ in side.top(schema.CHECKSUM_LEVELS)]


class KrakenParser:
    def __init__(self) -> None:
        self._states: dict[str, InstrumentState] = {}
        self._books: dict[str, _Book] = {}
        self._resync_pending: set[str] = set()

    @property
    def exchange(self) -> str:
        return schema.EXCHANGE

    def reset(self) -> None:
        self._books.clear()
        self._resync_pending.clear()

    def book(self, pair: str) -> OrderBook | None:
        entry = self._books.get(pair)
        return entry.book if entry is not None else None

    def parse(self, frame: bytes | str, received_ns: int) -> FrameResult:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return malformed(f"not JSON: {head(frame)}")
        if type(message) is dict:
            return self._on_event(message)
        if type(message) is not list or len(message) < 4:
            return malformed(f"not a Kraken message: {head(frame)}")
        channel, pair = message[-2], message[-1]
        if type(channel) is not str or type(pair) is not str:
            return malformed(f"no channel or pair: {head(frame)}")
        try:
            return self._on_data(channel, pair, message, received_ns)
        except FRAME_ERRORS as exc:
            result = failed_frame(exc, f"{channel} {pair}")
        if channel.startswith(schema.BOOK_PREFIX) and self._books.pop(pair, None) is not None:
            # a half-applied book is a wrong book: drop it and fetch a new snapshot
            result.resync.extend(self._request_resync(pair))
        return result

    def _on_data(
        self, channel: str, pair: str, message: list[Any], received_ns: int
    ) -> FrameResult:
        if channel == schema.TICKER:
            return self._on_ticker(pair, obj(message[1], "ticker"), received_ns)
        if channel == schema.TRADE:
            return self._on_trades(pair, arr(message[1], "trades"), received_ns)
        if channel.startswith(schema.BOOK_PREFIX):
            payloads = message[1:-2]
            first = obj(payloads[0], "book")
            if "as" in first or "bs" in first:
                return self._on_snapshot(pair, channel, first, received_ns)
            return self._on_update(pair, payloads, received_ns)
        return FrameResult(FrameKind.IGNORED)

    def _on_event(self, message: dict[str, Any]) -> FrameResult:
        event = message.get("event")
        if event == schema.HEARTBEAT:
            return FrameResult(FrameKind.HEARTBEAT)
        if event == schema.SUBSCRIPTION_STATUS and message.get("status") == "error":
            detail = f"{message.get('pair')}: {message.get('errorMessage')}"
            return FrameResult(
                FrameKind.VENUE_ERROR, rejections=[Rejection(RejectReason.VENUE_ERROR, detail)]
            )
        if type(event) is not str:
            return malformed("an object without an event")
        return FrameResult(FrameKind.CONTROL)

    def _state(self, pair: str) -> InstrumentState:
        state = self._states.get(pair)
        if state is None:
            symbol = schema.normalized_symbol(pair)
            if symbol is None or "|" in symbol:
                raise MalformedFrameError(f"bad pair {pair!r}")
            state = self._states[pair] = InstrumentState(schema.EXCHANGE, symbol, pair)
        return state

    def _request_resync(self, pair: str) -> list[str]:
        if pair in self._resync_pending:
            return []
        self._resync_pending.add(pair)
        return [pair]

    @staticmethod
    def _emit(state: InstrumentState, event_ns: int, received_ns: int, dropped: int) -> FrameResult:
        outcome = state.tick(event_ns, received_ns)
        if isinstance(outcome, Rejection):
            return FrameResult(rejections=[outcome], sizes_dropped=dropped)
        return FrameResult(ticks=[outcome], sizes_dropped=dropped)

    def _on_ticker(self, pair: str, data: dict[str, Any], received_ns: int) -> FrameResult:
        state = self._state(pair)
        dropped = 0
        if pair not in self._books:
            ask = arr(data["a"], "a")
            bid = arr(data["b"], "b")
            dropped += state.set_quote(
                text(bid[0], "b"), text(bid[2], "b"), text(ask[0], "a"), text(ask[2], "a")
            )
        last = arr(data["c"], "c")
        dropped += state.set_last(text(last[0], "c"), text(last[1], "c"))
        dropped += state.set_volume(text(arr(data["v"], "v")[0], "v"))
        return self._emit(state, 0, received_ns, dropped)

    def _on_trades(self, pair: str, trades: list[Any], received_ns: int) -> FrameResult:
        state = self._state(pair)
        result = FrameResult()
        for trade in trades:
            fields = arr(trade, "trade")
            result.sizes_dropped += state.set_last(
                text(fields[0], "price"), text(fields[1], "volume")
            )
            event_ns = decimal_seconds_ns(text(fields[2], "time"))
            outcome = state.tick(event_ns, received_ns)
            if isinstance(outcome, Rejection):
                result.rejections.append(outcome)
            else:
                result.ticks.append(outcome)
        return result

    def _on_snapshot(
        self, pair: str, channel: str, snapshot: dict[str, Any], received_ns: int
    ) -> FrameResult:
        state = self._state(pair)
        depth_text = channel.removeprefix(schema.BOOK_PREFIX)
        if not depth_text.isdigit() or not 0 < int(depth_text) <= 1000:
            raise MalformedFrameError(f"bad book channel {channel!r}")
        entry = _Book(int(depth_text))
        event_ns = max(
            entry.apply(arr(snapshot.get("as", []), "as"), bids=False),
            entry.apply(arr(snapshot.get("bs", []), "bs"), bids=True),
        )
        self._books[pair] = entry
        self._resync_pending.discard(pair)
        return self._emit_top(state, entry, event_ns, received_ns)

    def _on_update(self, pair: str, payloads: list[Any], received_ns: int) -> FrameResult:
        state = self._state(pair)
        entry = self._books.get(pair)
        if entry is None:
            return FrameResult(
                rejections=[Rejection(RejectReason.BOOK_NOT_READY, f"{pair}: no snapshot")],
                resync=self._request_resync(pair),
            )
        event_ns = 0
        checksum: int | None = None
        for payload in payloads:
            update = obj(payload, "book update")
            if "a" in update:
                event_ns = max(event_ns, entry.apply(arr(update["a"], "a"), bids=False))
            if "b" in update:
                event_ns = max(event_ns, entry.apply(arr(update["b"], "b"), bids=True))
            if "c" in update:
                checksum = _checksum_value(update["c"])
        if checksum is not None and checksum != entry.checksum():
            del self._books[pair]
            detail = f"{pair}: venue {checksum}, ours {entry.checksum()}"
            return FrameResult(
                rejections=[Rejection(RejectReason.CHECKSUM_MISMATCH, detail)],
                resync=self._request_resync(pair),
            )
        return self._emit_top(state, entry, event_ns, received_ns)

    def _emit_top(
        self, state: InstrumentState, entry: _Book, event_ns: int, received_ns: int
    ) -> FrameResult:
        top = entry.book.top()
        if top == entry.top:
            return FrameResult()
        entry.top = top
        dropped = state.set_quote_from_book(top)
        return self._emit(state, event_ns, received_ns, dropped)


def _checksum_value(value: Any) -> int:
    checksum_text = text(value, "c")
    if not checksum_text.isdigit() or len(checksum_text) > 10:
        raise MalformedFrameError(f"bad checksum {checksum_text!r}")
    return int(checksum_text)
