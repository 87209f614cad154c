"""Reference data and risk limits the order checks use. Pure.

- **Instrument rules** come per exchange (every symbol the exchange quotes) with per-symbol
  overrides: price tick, quantity lot, trading hours and a halt flag.
- **Trading hours** are a local-time window on given weekdays in the venue's time zone, or
  always open (crypto). Exchange holidays are not modelled: a holiday looks open.
- **Risk limits** are per account: the notional of one order, the notional of all its working
  orders, and an order rate (token bucket).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, tzinfo

from marketcore.instruments import InstrumentKey
from marketcore.trading_calendar import NANOS_PER_SECOND, venue_time_zone

NANOS = 1_000_000_000  # nano-units per unit (marketcore.fixed_point)
WEEKDAYS = frozenset(range(5))  # Monday..Friday (datetime.weekday())


@dataclass(frozen=True, slots=True)
class TradingHours:
    """Open from ``open_at`` (inclusive) to ``close_at`` (exclusive), venue local time, on
    ``days``; ``always`` ignores the rest."""

    always: bool = False
    open_at: time = time(9, 30)
    close_at: time = time(16, 0)
    days: frozenset[int] = WEEKDAYS

    def is_open(self, zone: tzinfo, now_ns: int) -> bool:
        if self.always:
            return True
        moment = datetime.fromtimestamp(now_ns / NANOS_PER_SECOND, tz=UTC).astimezone(zone)
        return moment.weekday() in self.days and self.open_at <= moment.time() < self.close_at


ALWAYS_OPEN = TradingHours(always=True)
US_EQUITY_HOURS = TradingHours()


@dataclass(frozen=True, slots=True)
class InstrumentRules:
    tick_nanos: int  # prices must be multiples of this
    lot_nanos: int  # quantities must be multiples of this
    hours: TradingHours = ALWAYS_OPEN
    halted: bool = False

    def __post_init__(self) -> None:
        if self.tick_nanos <= 0 or self.lot_nanos <= 0:
            raise ValueError("tick and lot must be positive")


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """Which instruments can be traded and on what terms. An exchange's rules cover every
    symbol it quotes; ``symbols`` overrides them for one instrument (and makes the instrument
    known before its first quote)."""

    exchanges: Mapping[str, InstrumentRules]
    symbols: Mapping[InstrumentKey, InstrumentRules] = field(default_factory=dict)

    def rules_for(self, key: InstrumentKey) -> InstrumentRules | None:
        found = self.symbols.get(key)
        return found if found is not None else self.exchanges.get(key.exchange)

    def is_listed(self, key: InstrumentKey) -> bool:
        return key in self.symbols

    def time_zone(self, key: InstrumentKey) -> tzinfo:
        return venue_time_zone(key.exchange)


_CENT = NANOS // 100
_SHARE = NANOS
DEFAULT_REFERENCE = ReferenceData(
    exchanges={
        **{
            venue: InstrumentRules(_CENT, _SHARE, US_EQUITY_HOURS)
            for venue in ("NASDAQ", "NYSE", "ARCA", "BATS", "IEX")
        },
        # crypto: cent prices, 0.0001 of a coin, around the clock
        **{
            venue: InstrumentRules(_CENT, NANOS // 10_000, ALWAYS_OPEN)
            for venue in ("COINBASE", "KRAKEN", "BINANCE")
        },
    }
)


@dataclass(frozen=True, slots=True)
class RiskLimits:
    max_order_notional_nanos: int = 1_000_000 * NANOS  # one order
    max_open_notional_nanos: int = 5_000_000 * NANOS  # all working orders of an account
    orders_per_second: float = 100.0  # sustained new orders per account
    order_burst: int = 200  # new orders an account may send at once
    price_band_bps: int = 1_000  # limit prices within 10% of the reference price


def notional_nanos(quantity_nanos: int, price_nanos: int) -> int:
    """Money value in nano-units of the currency, rounded up (a limit check must not round in
    the client's favour)."""
    return -((-quantity_nanos * price_nanos) // NANOS)


class RateLimiter:
    """Token bucket per account: ``burst`` orders at once, refilled at ``rate_per_s``. Time
    arrives as an argument."""

    __slots__ = ("_buckets", "_burst", "_rate_per_ns")

    def __init__(self, rate_per_s: float, burst: int) -> None:
        self._rate_per_ns = rate_per_s / NANOS_PER_SECOND
        self._burst = float(burst)
        self._buckets: dict[str, tuple[float, int]] = {}

    def take(self, account_id: str, now_ns: int) -> bool:
        tokens, at_ns = self._buckets.get(account_id, (self._burst, now_ns))
        tokens = min(self._burst, tokens + max(0, now_ns - at_ns) * self._rate_per_ns)
        if tokens < 1.0:
            self._buckets[account_id] = (tokens, now_ns)
            return False
        self._buckets[account_id] = (tokens - 1.0, now_ns)
        return True
