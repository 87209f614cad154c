"""Binance frames -> ticks. Pure: no I/O, no clock (the receive time is passed in).

Per symbol the parser keeps the latest values: ``bookTicker`` sets the quote (it is the
venue's own top of book), ``aggTrade`` sets last and last size. Binance streams carry no
session volume: volume stays 0 (unknown). Event time: USD-M ``bookTicker`` ``T``,
``aggTrade`` ``T``; spot ``bookTicker`` has none (0). Depth and kline streams are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from feedhandlers.parsing import (
    FRAME_ERRORS,
    FrameKind,
    FrameResult,
    MalformedFrameError,
    failed_frame,
    head,
    malformed,
    obj,
    text,
)
from feedhandlers.venues.binance import schema
from feedhandlers.venues.binance.schema import Market
from marketcore.normalization import InstrumentState, Rejection, RejectReason
from marketcore.venue_time import millis_ns


class BinanceParser:
    def __init__(self, market: Market = Market.SPOT, symbols: Mapping[str, str] | None = None):
        """``symbols``: Binance spelling -> our symbol for the instruments subscribed."""
        self._market = market
        self._exchange = schema.EXCHANGES[market]
        self._known = dict(symbols or {})
        self._states: dict[str, InstrumentState] = {}

    @property
    def exchange(self) -> str:
        return self._exchange

    def reset(self) -> None:
        """Nothing to rebuild: every bookTicker is a whole top of book."""

    def parse(self, frame: bytes | str, received_ns: int) -> FrameResult:
        try:
            message = orjson.loads(frame)
        except orjson.JSONDecodeError:
            return malformed(f"not JSON: {head(frame)}")
        if type(message) is not dict:
            return malformed(f"not a JSON object: {head(frame)}")
        try:
            data = obj(message["data"], "data") if "stream" in message else message
            event = data.get("e")
            if event == schema.AGG_TRADE:
                return self._on_agg_trade(data, received_ns)
            if event == schema.BOOK_TICKER or (event is None and "u" in data and "b" in data):
                return self._on_book_ticker(data, received_ns)
        except FRAME_ERRORS as exc:
            return failed_frame(exc, head(frame, 60))
        if "error" in message:
            return FrameResult(
                FrameKind.VENUE_ERROR,
                rejections=[Rejection(RejectReason.VENUE_ERROR, str(message["error"])[:200])],
            )
        if "result" in message and "id" in message:
            return FrameResult(FrameKind.CONTROL)
        return FrameResult(FrameKind.IGNORED)

    def _state(self, venue_symbol: str) -> InstrumentState:
        state = self._states.get(venue_symbol)
        if state is None:
            symbol = self._known.get(venue_symbol) or schema.normalized_symbol(
                venue_symbol, self._market
            )
            if symbol is None or "|" in symbol:
                raise MalformedFrameError(f"unknown symbol {venue_symbol!r}")
            state = self._states[venue_symbol] = InstrumentState(
                self._exchange, symbol, venue_symbol
            )
        return state

    def _emit(self, state: InstrumentState, event_ns: int, received_ns: int) -> FrameResult:
        outcome = state.tick(event_ns, received_ns)
        if isinstance(outcome, Rejection):
            return FrameResult(rejections=[outcome])
        return FrameResult(ticks=[outcome])

    def _on_book_ticker(self, data: dict[str, Any], received_ns: int) -> FrameResult:
        state = self._state(text(data["s"], "s"))
        dropped = state.set_quote(
            text(data["b"], "b"), text(data["B"], "B"), text(data["a"], "a"), text(data["A"], "A")
        )
        event_ns = millis_ns(data["T"]) if "T" in data else 0
        result = self._emit(state, event_ns, received_ns)
        result.sizes_dropped = dropped
        return result

    def _on_agg_trade(self, data: dict[str, Any], received_ns: int) -> FrameResult:
        state = self._state(text(data["s"], "s"))
        dropped = state.set_last(text(data["p"], "p"), text(data["q"], "q"))
        result = self._emit(state, millis_ns(data["T"]), received_ns)
        result.sizes_dropped = dropped
        return result
