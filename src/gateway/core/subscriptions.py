"""Validated requests: what a client asked for, or why the request is malformed. Pure.

A malformed request (no symbols, an identifier that cannot name an instrument, a throttle
out of range, too many symbols) is answered INVALID_ARGUMENT by the service; the reason
here is what the client reads.

Identifiers are normalized symbols and exchange codes as the feed handlers write them
(``AAPL``, ``BTC-USD``, ``NASDAQ``): 1 to 64 characters of upper-case letters, digits and
``.-_/:`` (limits: ``core.limits``). They are matched exactly, and nothing is upper-cased
on the client's behalf: a lower-case ``aapl`` is refused, naming the spelling that works
(``AAPL``), instead of a stream that would stay silent forever or a bare NOT_FOUND. (Refusing
rather than normalizing keeps one spelling everywhere: what a client asks for is what every
update and stored row says.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.core.limits import DEFAULT_MAX_SYMBOLS_PER_STREAM, MAX_IDENTIFIER_LENGTH, preview
from marketcore.instruments import InstrumentKey

_IDENTIFIER = re.compile(r"^[A-Za-z0-9._/:-]+$")
NANOS_PER_MILLI = 1_000_000


@dataclass(frozen=True, slots=True)
class Invalid:
    """Why a request is malformed (INVALID_ARGUMENT)."""

    field: str
    detail: str

    def __str__(self) -> str:
        return f"{self.field}: {self.detail}"


@dataclass(frozen=True, slots=True)
class SubscriptionLimits:
    max_symbols: int = DEFAULT_MAX_SYMBOLS_PER_STREAM
    max_throttle_ms: int = 60_000
    max_batch_size: int = 1000
    default_batch_size: int = 100
    max_delay_ms: int = 60_000
    default_delay_ms: int = 10


@dataclass(frozen=True, slots=True)
class Subscription:
    """Symbols on one exchange, or on every exchange when ``exchange`` is None."""

    symbols: frozenset[str]
    exchange: str | None
    throttle_ns: int
    max_batch_size: int = 1
    max_delay_ns: int = 0

    def matches(self, key: InstrumentKey) -> bool:
        return key.symbol in self.symbols and (
            self.exchange is None or self.exchange == key.exchange
        )


@dataclass(frozen=True, slots=True)
class QuoteQuery:
    symbol: str
    exchange: str | None  # None: the exchange with the most recent update


def _check_identifier(field: str, value: str) -> Invalid | None:
    if len(value) > MAX_IDENTIFIER_LENGTH:  # first: nothing scans or echoes a huge value
        return Invalid(
            field,
            f"{len(value)} characters; a symbol or exchange code has at most "
            f"{MAX_IDENTIFIER_LENGTH}",
        )
    if not _IDENTIFIER.match(value):
        return Invalid(field, f"{preview(value)} is not a symbol or exchange code")
    if value != value.upper():
        return Invalid(
            field,
            f"{value!r} is not normalized: symbols and exchange codes are upper case "
            f"({value.upper()!r})",
        )
    return None


def parse_subscription(
    symbols: Sequence[str],
    exchange: str,
    throttle_ms: int,
    limits: SubscriptionLimits,
    *,
    max_batch_size: int = 0,
    max_delay_ms: int = 0,
    batched: bool = False,
) -> Subscription | Invalid:
    if not symbols:
        return Invalid("symbols", "at least one symbol is required")
    if len(symbols) > limits.max_symbols:
        return Invalid("symbols", f"{len(symbols)} symbols; at most {limits.max_symbols}")
    for symbol in symbols:
        problem = _check_identifier("symbols", symbol)
        if problem is not None:
            return problem
    if exchange:
        problem = _check_identifier("exchange", exchange)
        if problem is not None:
            return problem
    if not 0 <= throttle_ms <= limits.max_throttle_ms:
        return Invalid("throttle_ms", f"{throttle_ms}; must be 0..{limits.max_throttle_ms}")
    batching = _batching(limits, max_batch_size, max_delay_ms, throttle_ms) if batched else (1, 0)
    if isinstance(batching, Invalid):
        return batching
    batch_size, delay_ms = batching
    return Subscription(
        symbols=frozenset(symbols),
        exchange=exchange or None,
        throttle_ns=throttle_ms * NANOS_PER_MILLI,
        max_batch_size=batch_size,
        max_delay_ns=delay_ms * NANOS_PER_MILLI,
    )


def _batching(
    limits: SubscriptionLimits, max_batch_size: int, max_delay_ms: int, throttle_ms: int
) -> tuple[int, int] | Invalid:
    """StreamPriceBatches' (batch size, delay ms): 0 means the server default (the delay
    defaults to throttle_ms when there is one)."""
    if not 0 <= max_batch_size <= limits.max_batch_size:
        return Invalid("max_batch_size", f"{max_batch_size}; must be 0..{limits.max_batch_size}")
    if not 0 <= max_delay_ms <= limits.max_delay_ms:
        return Invalid("max_delay_ms", f"{max_delay_ms}; must be 0..{limits.max_delay_ms}")
    size = max_batch_size or limits.default_batch_size
    return size, max_delay_ms or throttle_ms or limits.default_delay_ms


def parse_quote_query(symbol: str, exchange: str) -> QuoteQuery | Invalid:
    if not symbol:
        return Invalid("symbol", "a symbol is required")
    problem = _check_identifier("symbol", symbol)
    if problem is None and exchange:
        problem = _check_identifier("exchange", exchange)
    if problem is not None:
        return problem
    return QuoteQuery(symbol, exchange or None)
