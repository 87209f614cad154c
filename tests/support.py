"""Helpers shared by unit, contract and integration tests (no servers needed here)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf.message import Message

from financial.marketdata.v2.common_pb2 import Decimal
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.fixed_point import parse_nanos
from marketinfra.decimal_codec import decimal_nanos, set_decimal

MessageT = TypeVar("MessageT", bound=Message)


def proto(message_type: type[MessageT], **fields: Any) -> MessageT:
    """A message built from domain-style fields: ``<name>_nanos=<int>`` sets the ``Decimal``
    field ``<name>`` exactly (``bid_nanos=64_123_450_000_000`` is bid 64123.45), and
    ``<name>=<str>`` for a ``Decimal`` field parses the text (``bid="0.00001305"``); every
    other field is passed as it is."""
    decimals = {
        name
        for name, field in message_type.DESCRIPTOR.fields_by_name.items()
        if field.message_type is not None and field.message_type.name == "Decimal"
    }
    plain: dict[str, Any] = {}
    exact: dict[str, int] = {}
    for name, value in fields.items():
        base = name.removesuffix("_nanos")
        if base != name and base in decimals:
            exact[base] = value
        elif name in decimals and isinstance(value, str):
            exact[name] = parse_nanos(value)
        else:
            plain[name] = value
    message = message_type(**plain)
    for name, value in exact.items():
        set_decimal(getattr(message, name), value)
    return message


def price_update(**fields: Any) -> PriceUpdate:
    """``proto(PriceUpdate, ...)``."""
    return proto(PriceUpdate, **fields)


def nanos(value: Decimal) -> int:
    """A ``Decimal`` field's exact value in nanos."""
    return decimal_nanos(value)


class ListSink:
    """A feed handler's sink that keeps the records (key, value) instead of producing them."""

    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes]] = []

    def send(self, key: bytes, value: bytes, received_ns: int = 0) -> None:
        self.records.append((key, value))

    def updates(self) -> list[PriceUpdate]:
        return [PriceUpdate.FromString(value) for _, value in self.records]


# Waits in tests end when their condition holds; their timeouts only stop a hang and are far
# above what a busy machine needs (pytest-timeout, 60 s, is the last guard).
GUARD_S = 30.0


async def until(condition: Callable[[], bool], timeout_s: float = GUARD_S) -> None:
    """Poll a condition on objects the code under test updates (no event to wait on)."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def subscribed(*calls: Any) -> None:
    """Until the gateway has registered each price stream: it sends a stream's initial metadata
    (``x-gateway-worker``) right after registering it, so a tick published from then on reaches
    it. Instead of sleeping after subscribing, which a busy machine outlasts."""
    for call in calls:
        await call.initial_metadata()


@contextlib.asynccontextmanager
async def running(work: Coroutine[Any, Any, object]) -> AsyncIterator[None]:
    """Run ``work`` as a task for the block; cancelled and awaited on the way out."""
    task = asyncio.create_task(work)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def free_port(kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port free on 127.0.0.1 right now (TCP by default, ``SOCK_DGRAM`` for UDP)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def drain_to_error(
    call: Any, timeout_s: float = GUARD_S
) -> tuple[list[int], grpc.aio.AioRpcError]:
    """Read a price stream to its end; the feed sequences read and the error that ended it."""
    read: list[int] = []
    try:
        async with asyncio.timeout(timeout_s):
            async for update in call:
                read.append(update.feed_sequence)
    except grpc.aio.AioRpcError as exc:
        return read, exc
    pytest.fail("the stream ended without an error")
