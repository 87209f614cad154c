"""In-memory stand-ins for the gateway's ports, like httpx's ``MockTransport``: contract tests
and the benchmark run the real server, servicer and core on them, with no Kafka or Cassandra."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from financial.marketdata.v2.orders_pb2 import OrderStatusUpdate, PositionUpdate
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from gateway.core.quotes import DayBar
from gateway.core.updates import FeedUpdate
from gateway.errors import JournalError, QuoteStoreError, RecordRefusedError
from gateway.market import MarketData
from gateway.service.convert import decode_update
from gateway.trading.convert import (
    Malformed,
    Record,
    TradingTopics,
    order_from_status,
    position_from_proto,
)
from gateway.trading.recovery import RecoveredState
from marketcore.instruments import InstrumentKey
from marketinfra.topics import ORDERS_LIFECYCLE, POSITIONS_UPDATES, TRADES_EXECUTED


class MemoryQuoteStore:
    """A ``QuoteStore`` over dicts; ``failing`` makes every read raise QuoteStoreError."""

    def __init__(self) -> None:
        self.bars: dict[InstrumentKey, list[DayBar]] = {}
        self.ticks: dict[tuple[InstrumentKey, str], bytes] = {}
        self.failing = False
        self.reads = 0

    def add_bar(self, key: InstrumentKey, bar: DayBar) -> None:
        bars = [b for b in self.bars.get(key, []) if b.trade_date != bar.trade_date]
        self.bars[key] = sorted([*bars, bar], key=lambda b: b.trade_date, reverse=True)

    def add_tick(self, key: InstrumentKey, trade_date: str, update: PriceUpdate) -> None:
        self.ticks[(key, trade_date)] = update.SerializeToString()

    async def day_bars(self, key: InstrumentKey, limit: int) -> list[DayBar]:
        self._read()
        return self.bars.get(key, [])[:limit]

    async def latest_payload(self, key: InstrumentKey, trade_date: str) -> bytes | None:
        self._read()
        return self.ticks.get((key, trade_date))

    def _read(self) -> None:
        self.reads += 1
        if self.failing:
            raise QuoteStoreError("read", "store marked failing")


class ManualFeed:
    """A ``Feed`` the caller pushes PriceUpdates into (from the loop or any thread)."""

    def __init__(self, market: MarketData, loop: asyncio.AbstractEventLoop) -> None:
        self._market = market
        self._loop = loop
        self.started = False
        self.stopped = False

    def start(self, timeout_s: float) -> None:
        self.started = True

    def stop(self, timeout_s: float = 5.0) -> None:
        self.stopped = True

    @property
    def alive(self) -> bool:
        return self.started and not self.stopped

    @property
    def crashed(self) -> BaseException | None:
        return None

    @property
    def connected(self) -> bool:
        return self.alive

    def push(self, updates: Iterable[PriceUpdate]) -> None:
        """Decode and apply now (call on the loop)."""
        self.push_decoded(decoded(updates))

    def push_decoded(self, updates: list[FeedUpdate]) -> None:
        self._market.apply(updates)

    def push_threadsafe(self, updates: list[FeedUpdate]) -> None:
        self._loop.call_soon_threadsafe(self._market.apply, updates)


def decoded(updates: Iterable[PriceUpdate]) -> list[FeedUpdate]:
    result = []
    for update in updates:
        feed_update = decode_update(update.SerializeToString())
        problem = feed_update if isinstance(feed_update, str) else None
        if problem is not None:
            raise ValueError(f"not a valid tick ({problem}): {update}")
        assert isinstance(feed_update, FeedUpdate)  # narrowed: not a problem string
        result.append(feed_update)
    return result


class MemoryTradingLog:
    """A ``TradingLog`` in memory: appends commit at once (or fail, with ``failing``), and a
    restart reads back what the previous instance recorded (share one ``records`` list).
    ``refuses(record)``: an append holding such a record is refused alone, as Kafka refuses a
    record too large for its topic (``RecordRefusedError``)."""

    def __init__(
        self, records: list[Record] | None = None, topics: TradingTopics | None = None
    ) -> None:
        self.records: list[Record] = records if records is not None else []
        self._topics = topics or TradingTopics(
            ORDERS_LIFECYCLE.name, TRADES_EXECUTED.name, POSITIONS_UPDATES.name
        )
        self.failed: JournalError | None = None
        self.failing = False
        self.stopped = False
        self.refuses: Callable[[Record], bool] = lambda record: False

    def start(self, timeout_s: float) -> None:
        self.stopped = False

    def read_state(self, timeout_s: float) -> RecoveredState:
        orders: dict[tuple[str, str], OrderStatusUpdate] = {}
        positions: dict[tuple[str, str], PositionUpdate] = {}
        for record in self.records:
            if record.topic == self._topics.orders:
                update = OrderStatusUpdate.FromString(record.value)
                key = (update.account_id, update.order_id)
                current = orders.get(key)
                if current is None or update.event_sequence > current.event_sequence:
                    orders[key] = update
            elif record.topic == self._topics.positions:
                position = PositionUpdate.FromString(record.value)
                key = (position.account_id, position.symbol)
                held = positions.get(key)
                if held is None or position.sequence > held.sequence:
                    positions[key] = position
        state = RecoveredState(records=len(self.records))
        for update in orders.values():
            order = order_from_status(update)
            assert not isinstance(order, Malformed), order
            state.orders.append(order)
        for recorded in positions.values():
            restored = position_from_proto(recorded)
            assert not isinstance(restored, Malformed), restored
            state.positions.append(restored)
        return state

    def append(self, records: list[Record]) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.failing and records:
            self.failed = JournalError("the memory log was told to fail")
        if self.failed is not None:
            done.set_exception(self.failed)
        elif any(self.refuses(record) for record in records):
            done.set_exception(RecordRefusedError("Kafka refused it: MSG_SIZE_TOO_LARGE"))
        else:
            self.records.extend(records)
            done.set_result(None)
        return done

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stopped = True
