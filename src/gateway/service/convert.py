"""Proto <-> domain, at the edge. Nothing past this module sees a protobuf message.

Streams send each update's ``PriceUpdate`` bytes as they came from Kafka, with the two
per-stream fields appended (``stamp``): protobuf parsers take the last value of a repeated
scalar field, and fields may come in any order, so ``payload + stream_sequence +
gateway_send_time_ns`` is a valid encoding of the stamped message. An update is decoded once
(for the quote view) and never re-encoded, whatever the number of subscribers.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import DecodeError

from financial.marketdata.v1.prices_pb2 import (
    PriceSubscription,
    PriceUpdate,
    QuoteRequest,
    QuoteResponse,
    QuoteSource,
)
from gateway.core.quotes import Quote
from gateway.core.subscriptions import (
    Invalid,
    QuoteQuery,
    Subscription,
    SubscriptionLimits,
    parse_quote_query,
    parse_subscription,
)
from gateway.core.updates import FeedUpdate
from marketcore.instruments import InstrumentKey, InvalidInstrumentError
from marketcore.ticks import check_tick
from marketinfra.tick_codec import tick_from_proto

_BATCH_UPDATES_TAG = bytes(((1 << 3) | 2,))  # PriceUpdateBatch.updates, length-delimited


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative integer."""
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def stamp(payload: bytes, stream_sequence: int, send_time_ns: int) -> bytes:
    """``payload`` (an encoded PriceUpdate) with stream_sequence and gateway_send_time_ns set:
    the two fields are encoded by protobuf itself (a message holding only them) and appended."""
    tail = PriceUpdate(stream_sequence=stream_sequence, gateway_send_time_ns=send_time_ns)
    return payload + tail.SerializeToString()


def batch(stamped_updates: Sequence[bytes]) -> bytes:
    """An encoded PriceUpdateBatch of already encoded (stamped) updates, in order."""
    parts: list[bytes] = []
    for update in stamped_updates:
        parts += (_BATCH_UPDATES_TAG, varint(len(update)), update)
    return b"".join(parts)


def decode_update(payload: bytes | None) -> FeedUpdate | str:
    """A Kafka value (or stored blob) as a FeedUpdate, or the reason it cannot be served:
    ``empty``, ``undecodable``, or the ``marketcore.ticks`` problem (the tick writer's rules)."""
    if not payload:
        return "empty"
    try:
        message = PriceUpdate.FromString(payload)
    except DecodeError:
        return "undecodable"
    tick = tick_from_proto(message)
    rejection = check_tick(tick)
    if rejection is not None:
        return str(rejection.problem)
    try:
        key = InstrumentKey(tick.exchange, tick.symbol)
    except InvalidInstrumentError:
        return "bad_identifier"
    return FeedUpdate(key, tick, payload)


def subscription_from_proto(
    request: PriceSubscription, limits: SubscriptionLimits, *, batched: bool = False
) -> Subscription | Invalid:
    return parse_subscription(
        list(request.symbols),
        request.exchange,
        request.throttle_ms,
        limits,
        max_batch_size=request.max_batch_size,
        max_delay_ms=request.max_delay_ms,
        batched=batched,
    )


def quote_query_from_proto(request: QuoteRequest) -> QuoteQuery | Invalid:
    return parse_quote_query(request.symbol, request.exchange)


def quote_response(quote: Quote, *, from_store: bool) -> QuoteResponse:
    response = QuoteResponse(
        latest=PriceUpdate.FromString(quote.latest.payload),
        prev_close_micros=quote.prev_close_micros,
        trade_date=quote.trade_date,
        source=QuoteSource.QUOTE_SOURCE_STORE if from_store else QuoteSource.QUOTE_SOURCE_MEMORY,
    )
    bar = quote.bar
    if bar is not None:
        response.open_micros = bar.open_micros
        response.day_high_micros = bar.high_micros
        response.day_low_micros = bar.low_micros
    return response
