"""Cassandra writes: prepared statements, UNLOGGED batches of one partition, bounded concurrency."""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import Any

from cassandra import DriverException, OperationTimedOut, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent
from cassandra.query import BatchStatement, BatchType, PreparedStatement

from marketinfra.cassandra import Consistency, prepare
from marketinfra.cql_decimal import CqlDecimal
from tickwriter import metrics
from tickwriter.adapters.daily_bar_store import DailyBarStatements
from tickwriter.batching import chunk_by_partition
from tickwriter.daily_bars import DailyBar
from tickwriter.errors import WriteFailed
from tickwriter.rows import OrderEventRow, Row, TickRow, TradeRow

_INSERT_TICK = """
INSERT INTO {keyspace}.tick_data (exchange, symbol, trade_date, tick_time, bid, ask, last,
    volume, bid_size, ask_size, last_size, event_time_ns, received_time_ns, feed_handler_id,
    payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_TRADE = """
INSERT INTO {keyspace}.trade_executions (account_id, trade_date, execution_time, execution_id,
    order_id, exchange, symbol, side, quantity, price, fees, venue, payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_INSERT_ORDER_EVENT = """
INSERT INTO {keyspace}.event_store (entity_type, entity_id, event_sequence, event_time,
    event_type, payload)
VALUES (?, ?, ?, ?, ?, ?)
"""


# NoHostAvailable (every node down) is not a DriverException in cassandra-driver.
CASSANDRA_ERRORS = (DriverException, NoHostAvailable)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, NoHostAvailable | Unavailable):
        return "unavailable"
    if isinstance(exc, OperationTimedOut | WriteTimeout):
        return "timeout"
    return type(exc).__name__


class CassandraRowWriter:
    """Writes rows idempotently; raises WriteFailed when any batch of a call fails."""

    def __init__(
        self, session: Session, keyspace: str, rows_per_batch: int, max_in_flight: int
    ) -> None:
        # Qualified table names: Cassandra 5 warns on prepared statements that rely on USE.
        insert_tick, insert_trade, insert_order_event = (
            cql.format(keyspace=keyspace)
            for cql in (_INSERT_TICK, _INSERT_TRADE, _INSERT_ORDER_EVENT)
        )
        self._session = session
        self._bars = DailyBarStatements(session, keyspace)
        self._rows_per_batch = rows_per_batch
        self._max_in_flight = max_in_flight
        self._statements: dict[type, tuple[PreparedStatement, Consistency]] = {
            TickRow: (
                prepare(session, insert_tick, Consistency.TICK_WRITE),
                Consistency.TICK_WRITE,
            ),
            TradeRow: (
                prepare(session, insert_trade, Consistency.TRADE_WRITE),
                Consistency.TRADE_WRITE,
            ),
            OrderEventRow: (
                prepare(session, insert_order_event, Consistency.TRADE_WRITE),
                Consistency.TRADE_WRITE,
            ),
        }
        self._tables = {
            TickRow: "tick_data",
            TradeRow: "trade_executions",
            OrderEventRow: "event_store",
        }

    def write(self, rows: Sequence[Row], bars: Collection[DailyBar] = ()) -> float:
        """Write every row, and upsert ``bars``, in one concurrent round; returns the seconds it
        took. All or nothing from the caller's view: on failure some may be in (rows are
        idempotent upserts and bars merge, so a retry is harmless)."""
        if not rows and not bars:
            return 0.0
        started = time.perf_counter()
        statements: list[tuple[BatchStatement, tuple[object, ...]]] = []
        counts: dict[str, int] = {}
        for chunk in chunk_by_partition(rows, _partition_key, self._rows_per_batch):
            row_type = type(chunk[0])
            statement, consistency = self._statements[row_type]
            batch = BatchStatement(
                batch_type=BatchType.UNLOGGED, consistency_level=consistency.value
            )
            for row in chunk:
                batch.add(statement, _values(row))
            statements.append((batch, ()))
            table = self._tables[row_type]
            counts[table] = counts.get(table, 0) + len(chunk)
        statements += [(self._bars.batch(bar), ()) for bar in bars]
        if bars:
            counts["daily_bars"] = len(bars)
        try:
            self._execute(statements)
        except CASSANDRA_ERRORS as exc:
            kind = _error_kind(exc)
            metrics.WRITE_ERRORS.labels(kind).inc()
            raise WriteFailed(kind, str(exc)) from exc
        elapsed = time.perf_counter() - started
        metrics.WRITE_LATENCY.observe(elapsed)
        for table, count in counts.items():
            metrics.ROWS_WRITTEN.labels(table).inc(count)
        return elapsed

    def _execute(self, statements: list[tuple[BatchStatement, tuple[object, ...]]]) -> None:
        results = execute_concurrent(
            self._session, statements, concurrency=self._max_in_flight, raise_on_first_error=False
        )
        for success, outcome in results:
            if not success:
                raise outcome


def _partition_key(row: Row) -> tuple[Any, ...]:
    return (type(row).__name__, *row.partition)


def _values(row: Row) -> tuple[Any, ...]:
    if isinstance(row, TickRow):
        tick = row.tick
        return (
            row.exchange, row.symbol, row.trade_date, row.tick_time, CqlDecimal(tick.bid_nanos),
            CqlDecimal(tick.ask_nanos), CqlDecimal(tick.last_nanos), CqlDecimal(tick.volume_nanos),
            CqlDecimal(tick.bid_size_nanos), CqlDecimal(tick.ask_size_nanos),
            CqlDecimal(tick.last_size_nanos), tick.event_time_ns, tick.received_time_ns,
            tick.feed_handler_id, row.payload,
        )  # fmt: skip
    if isinstance(row, TradeRow):
        return (
            row.account_id, row.trade_date, row.execution_time, row.execution_id, row.order_id,
            row.exchange, row.symbol, row.side, CqlDecimal(row.quantity_nanos),
            CqlDecimal(row.price_nanos), CqlDecimal(row.fees_nanos), row.venue, row.payload,
        )  # fmt: skip
    return (
        row.entity_type, row.entity_id, row.event_sequence, row.event_time, row.event_type,
        row.payload,
    )  # fmt: skip
