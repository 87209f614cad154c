"""Orders as the trading core sees them. Pure: frozen dataclasses, integers, no I/O.

Quantities and prices are nano-units (``*_nanos``, 1e-9: ``marketcore.fixed_point``). Enum
values equal the ``financial.marketdata.v2`` enum numbers, so the edge converts by value.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from marketcore.instruments import InstrumentKey


class Side(IntEnum):
    BUY = 1
    SELL = 2

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(IntEnum):
    MARKET = 1
    LIMIT = 2
    STOP = 3  # triggers from the last trade, then executes as MARKET
    STOP_LIMIT = 4  # triggers from the last trade, then works as LIMIT

    @property
    def has_limit(self) -> bool:
        return self in (OrderType.LIMIT, OrderType.STOP_LIMIT)

    @property
    def has_stop(self) -> bool:
        return self in (OrderType.STOP, OrderType.STOP_LIMIT)


class TimeInForce(IntEnum):
    DAY = 1  # expires at the close of the instrument's trading day
    IOC = 2  # what does not fill on arrival is cancelled
    GTC = 3  # works until filled or cancelled


class OrderStatus(IntEnum):
    NEW = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    CANCELLED = 6
    REJECTED = 7
    EXPIRED = 8

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


FINAL_STATUSES = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class RejectReason(IntEnum):
    MALFORMED = 1
    UNKNOWN_SYMBOL = 2
    INVALID_QUANTITY = 3
    INVALID_PRICE = 4
    PRICE_OUT_OF_BAND = 5
    NOTIONAL_LIMIT = 6
    RATE_LIMIT = 7
    MARKET_CLOSED = 8
    INSTRUMENT_HALTED = 9
    DUPLICATE_ORDER_ID = 10
    NO_MARKET_DATA = 11
    UNKNOWN_ORDER = 12
    TOO_LATE_TO_CANCEL = 13
    PERMISSION_DENIED = 14


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: RejectReason
    detail: str


@dataclass(frozen=True, slots=True)
class OrderSpec:
    """What the client asked for, structurally sound (the edge checked the fields' shapes).
    ``exchange`` may be empty: the core resolves it to the instrument's quoted venue."""

    order_id: str
    account_id: str
    symbol: str
    exchange: str
    side: Side
    order_type: OrderType
    quantity_nanos: int
    limit_price_nanos: int = 0
    stop_price_nanos: int = 0
    time_in_force: TimeInForce = TimeInForce.DAY
    client_time_ns: int = 0

    def same_order(self, other: OrderSpec) -> bool:
        """Whether ``other`` is a resubmission of this order (a retry): every field that
        defines the order is equal; the client's send time may differ."""
        return (
            self.order_id,
            self.account_id,
            self.symbol,
            self.exchange,
            self.side,
            self.order_type,
            self.quantity_nanos,
            self.limit_price_nanos,
            self.stop_price_nanos,
            self.time_in_force,
        ) == (
            other.order_id,
            other.account_id,
            other.symbol,
            other.exchange,
            other.side,
            other.order_type,
            other.quantity_nanos,
            other.limit_price_nanos,
            other.stop_price_nanos,
            other.time_in_force,
        )


# An order's identity: (account_id, order_id). Order ids are the client's keys and are scoped
# per account: two accounts may use the same id, and neither can learn of the other's.
OrderRef = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Order:
    """One order's state. Changed only through ``marketcore.trading.lifecycle``, which refuses
    illegal transitions; every change has the next ``event_sequence`` (1, 2, 3...)."""

    spec: OrderSpec  # as submitted (the idempotency comparison uses it)
    key: InstrumentKey | None  # resolved instrument; None only for a rejected order
    status: OrderStatus
    event_sequence: int
    filled_nanos: int = 0
    fill_count: int = 0  # executions so far: the next execution id is order_id-(count+1)
    stop_triggered: bool = False
    trade_date: str = ""  # the trading day it was accepted on (DAY orders expire after it)
    reject: Rejection | None = None

    @property
    def order_id(self) -> str:
        return self.spec.order_id

    @property
    def account_id(self) -> str:
        return self.spec.account_id

    @property
    def ref(self) -> OrderRef:
        return (self.spec.account_id, self.spec.order_id)

    @property
    def remaining_nanos(self) -> int:
        if self.status.is_final:
            return 0
        return self.spec.quantity_nanos - self.filled_nanos

    @property
    def is_working(self) -> bool:
        return not self.status.is_final


@dataclass(frozen=True, slots=True)
class Touch:
    """An instrument's current top of book and latest trade price, which orders execute
    against and stops trigger from."""

    bid_nanos: int = 0
    ask_nanos: int = 0
    bid_size_nanos: int = 0  # 0: size not known
    ask_size_nanos: int = 0
    last_nanos: int = 0  # the latest trade price known; 0: none yet

    def far_side(self, side: Side) -> tuple[int, int]:
        """(price, size) an order of ``side`` takes: the ask for a buy, the bid for a sell."""
        if side is Side.BUY:
            return self.ask_nanos, self.ask_size_nanos
        return self.bid_nanos, self.bid_size_nanos

    def reference_nanos(self) -> int:
        """The price limits are checked against: the mid of a two-sided quote, else the last
        trade, else the one quoted side; 0 when there is none."""
        if self.bid_nanos > 0 and self.ask_nanos > 0:
            return (self.bid_nanos + self.ask_nanos) // 2
        if self.last_nanos > 0:
            return self.last_nanos
        return self.bid_nanos or self.ask_nanos
