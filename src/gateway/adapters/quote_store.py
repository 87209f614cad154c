"""GetQuote's fallback: the stored ticks and daily bars in Cassandra, read at LOCAL_QUORUM.

``tick_data`` gives the newest tick of a trading day (its PriceUpdate ``payload``);
``daily_bars`` (kept by the tick writer) the day's open, high, low, close and the previous
day's close. The driver's callbacks run on its own threads and are handed to the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cassandra import DriverException
from cassandra.cluster import NoHostAvailable, Session
from cassandra.query import PreparedStatement

from gateway.core.quotes import DayBar
from gateway.errors import QuoteStoreError
from marketcore.instruments import InstrumentKey
from marketinfra.bar_cells import low_value_of, value_of
from marketinfra.cassandra import Consistency, prepare


class CassandraQuoteStore:
    def __init__(self, session: Session, keyspace: str, timeout_s: float) -> None:
        self._session = session
        self._timeout_s = timeout_s
        self._bars = prepare(
            session,
            "SELECT trade_date, open, high, low, close, "
            f"first_event_ns, last_event_ns FROM {keyspace}.daily_bars "
            "WHERE exchange = ? AND symbol = ? LIMIT ?",
            Consistency.READ,
        )
        self._latest = prepare(
            session,
            f"SELECT payload FROM {keyspace}.tick_data "
            "WHERE exchange = ? AND symbol = ? AND trade_date = ? LIMIT 1",
            Consistency.READ,
        )

    async def day_bars(self, key: InstrumentKey, limit: int) -> list[DayBar]:
        rows = await self._run(self._bars, (key.exchange, key.symbol, limit), "day_bars")
        return [
            DayBar(
                trade_date=row.trade_date,
                open_nanos=value_of(row.open),
                high_nanos=value_of(row.high),
                low_nanos=low_value_of(row.low),
                close_nanos=value_of(row.close),
                first_event_ns=row.first_event_ns or 0,
                last_event_ns=row.last_event_ns or 0,
            )
            for row in rows
        ]

    async def latest_payload(self, key: InstrumentKey, trade_date: str) -> bytes | None:
        rows = await self._run(self._latest, (key.exchange, key.symbol, trade_date), "latest_tick")
        if not rows or rows[0].payload is None:
            return None
        return bytes(rows[0].payload)

    async def _run(
        self, statement: PreparedStatement, params: tuple[Any, ...], operation: str
    ) -> list[Any]:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[list[Any]] = loop.create_future()

        def settle(rows: list[Any] | None, error: BaseException | None) -> None:
            if done.done():  # the caller gave up (cancelled) meanwhile
                return
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(list(rows or ()))

        try:
            response = self._session.execute_async(statement, params, timeout=self._timeout_s)
        except (DriverException, NoHostAvailable) as exc:
            raise QuoteStoreError(operation, str(exc)) from exc
        response.add_callbacks(
            lambda rows: loop.call_soon_threadsafe(settle, rows, None),
            lambda error: loop.call_soon_threadsafe(settle, None, error),
        )
        try:
            return await done
        except (DriverException, NoHostAvailable) as exc:
            raise QuoteStoreError(operation, str(exc) or type(exc).__name__) from exc
