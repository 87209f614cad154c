"""Proto <-> domain, at the edge. Nothing past this module sees a protobuf message.

Streams send each update's ``PriceUpdate`` bytes as they came from Kafka, with the two
per-stream fields appended (``stamp``): protobuf parsers take the last value of a repeated
scalar field, and fields may come in any order, so ``payload + stream_sequence +
gateway_send_time_ns`` is a valid encoding of the stamped message. An update is decoded once
(for the quote view) and never re-encoded, whatever the number of subscribers.

The two appended fields are plain varints, encoded here: building a protobuf message per
update and subscriber cost more than the rest of a batched stream's work together. The unit
tests check the bytes against protobuf's own encoding.
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.message import DecodeError

from financial.marketdata.v2.prices_pb2 import (
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
from marketinfra.decimal_codec import MalformedDecimalError, set_decimal
from marketinfra.tick_codec import tick_from_proto

_BATCH_UPDATES_TAG = bytes(((1 << 3) | 2,))  # PriceUpdateBatch.updates, length-delimited
_UINT64 = (1 << 64) - 1
_ONE_BYTE = tuple(bytes((value,)) for value in range(0x80))


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a 64-bit integer (a negative int64 as its two's
    complement, as protobuf encodes it)."""
    if 0 <= value < 0x80:  # lengths, mostly: one byte, from a table
        return _ONE_BYTE[value]
    value &= _UINT64
    if value < 0x4000:  # sequence numbers up to 16383
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_SEQUENCE_TAG = varint(15 << 3)  # PriceUpdate.stream_sequence, varint
_SEND_TIME_TAG = varint(16 << 3)  # PriceUpdate.gateway_send_time_ns, varint


def stamp(payload: bytes, stream_sequence: int, send_time_ns: int) -> bytes:
    """``payload`` (an encoded PriceUpdate) with stream_sequence and gateway_send_time_ns set."""
    return b"".join((payload, _SEQUENCE_TAG, varint(stream_sequence), _send_time(send_time_ns)))


def _send_time(send_time_ns: int) -> bytes:
    return _SEND_TIME_TAG + varint(send_time_ns)


def stamped_batch(payloads: Sequence[bytes], first_sequence: int, send_time_ns: int) -> bytes:
    """An encoded PriceUpdateBatch of ``payloads`` (encoded PriceUpdates) in order, stamped
    ``first_sequence``, ``first_sequence + 1``... and all sent at ``send_time_ns``."""
    send_time = _send_time(send_time_ns)  # the same for the whole batch: encoded once
    parts: list[bytes] = []
    sequence = first_sequence
    for payload in payloads:
        number = varint(sequence)
        size = len(payload) + len(_SEQUENCE_TAG) + len(number) + len(send_time)
        parts += (_BATCH_UPDATES_TAG, varint(size), payload, _SEQUENCE_TAG, number, send_time)
        sequence += 1
    return b"".join(parts)


def decode_update(payload: bytes | None, record_time_ns: int = 0) -> FeedUpdate | str:
    """A Kafka value (or stored blob) as a FeedUpdate, or the reason it cannot be served:
    ``empty``, ``undecodable``, ``malformed_decimal``, or the ``marketcore.ticks`` problem (the
    tick writer's rules)."""
    if not payload:
        return "empty"
    try:
        message = PriceUpdate.FromString(payload)
    except DecodeError:
        return "undecodable"
    try:
        tick = tick_from_proto(message)
    except MalformedDecimalError:
        return "malformed_decimal"
    rejection = check_tick(tick)
    if rejection is not None:
        return str(rejection.problem)
    try:
        key = InstrumentKey(tick.exchange, tick.symbol)
    except InvalidInstrumentError:
        return "bad_identifier"
    return FeedUpdate(key, tick, payload, record_time_ns)


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
        trade_date=quote.trade_date,
        source=QuoteSource.QUOTE_SOURCE_STORE if from_store else QuoteSource.QUOTE_SOURCE_MEMORY,
    )
    set_decimal(response.prev_close, quote.prev_close_nanos)
    bar = quote.bar
    if bar is not None:
        set_decimal(response.open, bar.open_nanos)
        set_decimal(response.day_high, bar.high_nanos)
        set_decimal(response.day_low, bar.low_nanos)
    return response
