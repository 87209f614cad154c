"""Coinbase frames -> ticks. Pure: no I/O, no clock (the receive time is passed in).

Per product the parser keeps the level2 book and the latest values of every field, and
emits the product's whole state whenever something we publish changes:

- quote: from the level2 book once its snapshot arrived (the book wins over ``ticker``'s
  best bid/ask, which can be older); from ``ticker`` while there is no book. An
  ``l2update`` below the top changes nothing we publish and emits no tick.
- last and last size: from ``match``/``last_match`` and ``ticker``.
- volume: the venue's own ``volume_24h`` from ``ticker`` (a rolling 24 h figure; Coinbase
  has no session volume). Trades are not summed by us: a partial sum would be wrong.
- event time: the message's ``time`` (a snapshot has none: 0).

An ``l2update`` for a product without a snapshot is refused (``book_not_ready``) and the
product is returned in ``resync``: the client subscribes it again to get a snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
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
    text,
)
from feedhandlers.venues.coinbase import schema
from marketcore.normalization import InstrumentState, Rejection, RejectReason
from marketcore.order_book import OrderBook, TopOfBook, parse_book_value
from marketcore.venue_time import iso8601_utc_ns

_Handler = Callable[[dict[str, Any], int], FrameResult]


def _book_value(value: Any, what: str) -> int:
    return parse_book_value(text(value, what))


class CoinbaseParser:
    def __init__(self) -> None:
        self._states: dict[str, InstrumentState] = {}
        self._books: dict[str, OrderBook] = {}
        self._tops: dict[str, TopOfBook] = {}
        self._resync_pending: set[str] = set()
        self._handlers: dict[str, _Handler] = {
            schema.L2UPDATE: self._on_l2update,
            schema.TICKER: self._on_ticker,
            schema.MATCH: self._on_match,
            schema.LAST_MATCH: self._on_match,
            schema.SNAPSHOT: self._on_snapshot,
        }

    @property
    def exchange(self) -> str:
        return schema.EXCHANGE

    def reset(self) -> None:
        self._books.clear()
        self._tops.clear()
        self._resync_pending.clear()

    def _request_resync(self, product_id: str) -> list[str]:
        """``[product_id]`` the first time its book is found missing or wrong, then ``[]``
        until a snapshot arrives: one resubscribe per problem, not one per update."""
        if product_id in self._resync_pending:
            return []
        self._resync_pending.add(product_id)
        return [product_id]

    def book(self, product_id: str) -> OrderBook | None:
        return self._books.get(product_id)

    def parse(self, frame: bytes | str, received_ns: int) -> FrameResult:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return malformed(f"not JSON: {head(frame)}")
        if type(message) is not dict:
            return malformed(f"not a JSON object: {head(frame)}")
        kind = message.get("type")
        handler = self._handlers.get(kind) if type(kind) is str else None
        if handler is None:
            return self._other(kind, message)
        try:
            return handler(message, received_ns)
        except FRAME_ERRORS as exc:
            result = failed_frame(exc, str(kind))
        product_id = message.get("product_id")
        book_kinds = (schema.SNAPSHOT, schema.L2UPDATE)
        if kind in book_kinds and type(product_id) is str and product_id in self._books:
            # a half-applied book is a wrong book: drop it and fetch a new snapshot
            del self._books[product_id]
            self._tops.pop(product_id, None)
            result.resync.extend(self._request_resync(product_id))
        return result

    def _other(self, kind: object, message: dict[str, Any]) -> FrameResult:
        if kind == schema.HEARTBEAT:
            return FrameResult(FrameKind.HEARTBEAT)
        if kind == schema.SUBSCRIPTIONS:
            return FrameResult(FrameKind.CONTROL)
        if kind == schema.ERROR:
            detail = f"{message.get('message')}: {message.get('reason')}"
            return FrameResult(
                FrameKind.VENUE_ERROR, rejections=[Rejection(RejectReason.VENUE_ERROR, detail)]
            )
        if type(kind) is not str:
            return malformed("no message type")
        return FrameResult(FrameKind.IGNORED)

    def _state(self, product_id: str) -> InstrumentState:
        state = self._states.get(product_id)
        if state is None:
            if not product_id or "|" in product_id:
                raise MalformedFrameError(f"bad product_id {product_id!r}")
            symbol = schema.normalized_symbol(product_id)
            state = self._states[product_id] = InstrumentState(schema.EXCHANGE, symbol, product_id)
        return state

    def _emit(self, state: InstrumentState, event_ns: int, received_ns: int) -> FrameResult:
        outcome = state.tick(event_ns, received_ns)
        if isinstance(outcome, Rejection):
            return FrameResult(rejections=[outcome])
        return FrameResult(ticks=[outcome])

    def _on_snapshot(self, message: dict[str, Any], received_ns: int) -> FrameResult:
        product_id = text(message.get("product_id"), "product_id")
        state = self._state(product_id)
        book = OrderBook()
        for side, key in ((book.bids, "bids"), (book.asks, "asks")):
            for level in arr(message.get(key), key):
                price, size = arr(level, key)[:2]
                side.set(_book_value(price, "price"), _book_value(size, "size"))
        self._books[product_id] = book
        self._resync_pending.discard(product_id)
        top = self._tops[product_id] = book.top()
        event_ns = iso8601_utc_ns(message["time"]) if "time" in message else 0
        dropped = state.set_quote_from_book(top)
        result = self._emit(state, event_ns, received_ns)
        result.sizes_dropped = dropped
        return result

    def _on_l2update(self, message: dict[str, Any], received_ns: int) -> FrameResult:
        product_id = text(message.get("product_id"), "product_id")
        book = self._books.get(product_id)
        if book is None:
            self._state(product_id)  # validates the id
            return FrameResult(
                rejections=[Rejection(RejectReason.BOOK_NOT_READY, f"{product_id}: no snapshot")],
                resync=self._request_resync(product_id),
            )
        bids, asks = book.bids, book.asks
        best_bid, best_ask = bids.best_price(), asks.best_price()
        touched = False  # did a change reach the top of its side? else the top is as it was
        for change in arr(message.get("changes"), "changes"):
            side_name, price_text, size_text = arr(change, "change")[:3]
            if type(price_text) is not str or type(size_text) is not str:
                raise MalformedFrameError("change: price and size must be strings")
            price = parse_book_value(price_text)
            size = parse_book_value(size_text)
            if side_name == schema.BUY:
                bids.set(price, size)
                touched = touched or price >= best_bid
            elif side_name == schema.SELL:
                asks.set(price, size)
                touched = touched or not best_ask or price <= best_ask
            else:
                raise MalformedFrameError(f"bad side {side_name!r}")
        if not touched:
            return FrameResult()
        top = book.top()
        if top == self._tops.get(product_id):
            return FrameResult()
        self._tops[product_id] = top
        state = self._state(product_id)
        event_ns = iso8601_utc_ns(text(message.get("time"), "time"))  # only when it is used
        dropped = state.set_quote_from_book(top)
        result = self._emit(state, event_ns, received_ns)
        result.sizes_dropped = dropped
        return result

    def _on_ticker(self, message: dict[str, Any], received_ns: int) -> FrameResult:
        product_id = text(message.get("product_id"), "product_id")
        state = self._state(product_id)
        dropped = 0
        if product_id not in self._books:
            dropped += state.set_quote(
                text(message.get("best_bid"), "best_bid"),
                text(message.get("best_bid_size", ""), "best_bid_size"),
                text(message.get("best_ask"), "best_ask"),
                text(message.get("best_ask_size", ""), "best_ask_size"),
            )
        dropped += state.set_last(
            text(message.get("price"), "price"), text(message.get("last_size", ""), "last_size")
        )
        if "volume_24h" in message:
            dropped += state.set_volume(text(message["volume_24h"], "volume_24h"))
        time_text = message.get("time")
        event_ns = iso8601_utc_ns(text(time_text, "time")) if time_text is not None else 0
        result = self._emit(state, event_ns, received_ns)
        result.sizes_dropped = dropped
        return result

    def _on_match(self, message: dict[str, Any], received_ns: int) -> FrameResult:
        state = self._state(text(message.get("product_id"), "product_id"))
        dropped = state.set_last(
            text(message.get("price"), "price"), text(message.get("size"), "size")
        )
        event_ns = iso8601_utc_ns(text(message.get("time"), "time"))
        result = self._emit(state, event_ns, received_ns)
        result.sizes_dropped = dropped
        return result
