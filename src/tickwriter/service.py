"""TickWriterService: synchronous writes for internal callers that need an acknowledgement.

Uses the same validation, row building and writer as the Kafka path. Invalid input is
INVALID_ARGUMENT (nothing of the call is written); Cassandra down is UNAVAILABLE (retry).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc

from financial.marketdata.v1 import services_pb2_grpc
from financial.marketdata.v1.prices_pb2 import PriceUpdate, TickBatch
from financial.marketdata.v1.services_pb2 import WriteAck
from tickwriter.adapters.repository import CassandraRowWriter
from tickwriter.decode import validated_tick_row
from tickwriter.errors import RecordRejected, WriteFailed
from tickwriter.rows import TickRow

MAX_BATCH_TICKS = 10_000


class TickWriterServicer(services_pb2_grpc.TickWriterServiceServicer):
    def __init__(self, writer: CassandraRowWriter) -> None:
        self._writer = writer

    async def WriteTick(
        self, request: PriceUpdate, context: grpc.aio.ServicerContext[PriceUpdate, WriteAck]
    ) -> WriteAck:
        rows = await self._validate(context, [request])
        return await self._write(context, rows)

    async def WriteBatch(
        self, request: TickBatch, context: grpc.aio.ServicerContext[TickBatch, WriteAck]
    ) -> WriteAck:
        if not request.ticks:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "batch has no ticks")
        if len(request.ticks) > MAX_BATCH_TICKS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"batch over {MAX_BATCH_TICKS} ticks; split it"
            )
        rows = await self._validate(context, list(request.ticks))
        return await self._write(context, rows)

    async def _validate(
        self, context: grpc.aio.ServicerContext[Any, WriteAck], ticks: Sequence[PriceUpdate]
    ) -> list[TickRow]:
        rows = []
        for index, tick in enumerate(ticks):
            try:
                rows.append(validated_tick_row(tick, tick.SerializeToString()))
            except RecordRejected as exc:
                where = f"tick {index}: " if len(ticks) > 1 else ""
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{where}{exc}")
        return rows

    async def _write(
        self, context: grpc.aio.ServicerContext[Any, WriteAck], rows: list[TickRow]
    ) -> WriteAck:
        try:
            elapsed_s = await asyncio.to_thread(self._writer.write, rows)
        except WriteFailed as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"Cassandra did not take the write: {exc}"
            )
        return WriteAck(
            success=True, write_latency_us=round(elapsed_s * 1e6), rows_written=len(rows)
        )
