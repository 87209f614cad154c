"""Cassandra writes: prepared statements, UNLOGGED batches of one partition, bounded concurrency."""

from __future__ import annotations

import struct
import time
from collections.abc import Collection, Sequence
from typing import Any

from cassandra import (
    DriverException,
    InvalidRequest,
    OperationTimedOut,
    Unavailable,
    WriteTimeout,
)
from cassandra.cluster import NoHostAvailable, Session
from cassandra.concurrent import execute_concurrent
from cassandra.protocol import ErrorMessage
from cassandra.query import BatchStatement, BatchType, PreparedStatement, Statement

from marketinfra.cassandra import Consistency, prepare
from marketinfra.cql_decimal import CqlDecimal
from tickwriter import metrics
from tickwriter.adapters.daily_bar_store import DailyBarStatements
from tickwriter.batching import chunk_by_partition
from tickwriter.daily_bars import DailyBar
from tickwriter.errors import WriteFailed, WriteRefused
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


# NoHostAvailable (every node down) is not a DriverException in cassandra-driver, nor are the
# server's own error messages (ServerError, Overloaded, IsBootstrapping): all retried.
CASSANDRA_ERRORS = (DriverException, NoHostAvailable, ErrorMessage)
# What the driver raises when it cannot encode a value (a key part over 64 KiB: struct.error
# "'H' format requires 0 <= number <= 65535"; an int beyond bigint; a wrong type): the same
# rows fail the same way on every retry.
SERIALIZATION_ERRORS = (struct.error, ValueError, TypeError, OverflowError)
# InvalidRequest about the schema itself is an operator's problem (a dropped table or keyspace,
# fixed by `mdgw schema apply`), not the rows': retried like an outage, never dead-lettered.
_SCHEMA_PROBLEMS = ("unconfigured table", "does not exist", "keyspace")
_MAX_DETAIL_CHARS = 500  # the driver's text goes into logs and DLQ headers


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, NoHostAvailable | Unavailable):
        return "unavailable"
    if isinstance(exc, OperationTimedOut | WriteTimeout):
        return "timeout"
    return type(exc).__name__


def refusal_kind(exc: BaseException) -> str | None:
    """``"serialization"`` or ``"invalid_request"`` when ``exc`` says the rows themselves
    cannot be written (no retry helps); None for a failure a retry may fix."""
    if isinstance(exc, SERIALIZATION_ERRORS):
        return "serialization"
    if isinstance(exc, InvalidRequest) and not any(
        problem in str(exc).lower() for problem in _SCHEMA_PROBLEMS
    ):
        return "invalid_request"
    return None


def _detail(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if len(text) > _MAX_DETAIL_CHARS:
        return f"{text[:_MAX_DETAIL_CHARS]}... ({len(text)} characters)"
    return text


class CassandraRowWriter:
    """Writes rows idempotently; raises WriteFailed when any batch of a call fails in a way a
    retry may fix, WriteRefused when one fails in a way no retry fixes (``refusal_kind``)."""

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
        idempotent upserts and bars merge, so a retry is harmless). A chunk of one row is
        written as a plain statement (no batch): a row written alone (the pipeline isolating a
        refused batch) then meets only the limits of a row."""
        if not rows and not bars:
            return 0.0
        started = time.perf_counter()
        counts: dict[str, int] = {}
        try:
            statements = self._statements_for(rows, bars, counts)
            self._execute(statements)
        except SERIALIZATION_ERRORS as exc:
            metrics.WRITE_ERRORS.labels("serialization").inc()
            raise WriteRefused("serialization", _detail(exc)) from exc
        except CASSANDRA_ERRORS as exc:
            refused = refusal_kind(exc)
            if refused is not None:
                metrics.WRITE_ERRORS.labels(refused).inc()
                raise WriteRefused(refused, _detail(exc)) from exc
            kind = _error_kind(exc)
            metrics.WRITE_ERRORS.labels(kind).inc()
            raise WriteFailed(kind, str(exc)) from exc
        elapsed = time.perf_counter() - started
        metrics.WRITE_LATENCY.observe(elapsed)
        for table, count in counts.items():
            metrics.ROWS_WRITTEN.labels(table).inc(count)
        return elapsed

    def _statements_for(
        self, rows: Sequence[Row], bars: Collection[DailyBar], counts: dict[str, int]
    ) -> list[tuple[Statement, tuple[object, ...]]]:
        statements: list[tuple[Statement, tuple[object, ...]]] = []
        for chunk in chunk_by_partition(rows, _partition_key, self._rows_per_batch):
            row_type = type(chunk[0])
            prepared, consistency = self._statements[row_type]
            if len(chunk) == 1:
                statements.append((prepared.bind(_values(chunk[0])), ()))
            else:
                batch = BatchStatement(
                    batch_type=BatchType.UNLOGGED, consistency_level=consistency.value
                )
                for row in chunk:
                    batch.add(prepared, _values(row))
                statements.append((batch, ()))
            table = self._tables[row_type]
            counts[table] = counts.get(table, 0) + len(chunk)
        statements += [(self._bars.batch(bar), ()) for bar in bars]
        if bars:
            counts["daily_bars"] = len(bars)
        return statements

    def _execute(self, statements: list[tuple[Statement, tuple[object, ...]]]) -> None:
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
