"""TickWriterService, in-process over a real gRPC server on port 0 with the contract tests'
fake writer behind it, fed adversarial requests: PriceUpdates and TickBatches with any field
set to any value (huge and empty strings, Decimals out of range, int64's ends, unknown enum
numbers), bytes that are no request, truncated requests, batches over the limit. Every answer
is OK or a deliberate status (INVALID_ARGUMENT above all), never INTERNAL or UNKNOWN, and the
service's health still says SERVING after all of it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from hypothesis import given
from hypothesis import strategies as st

from financial.marketdata.v2 import services_pb2_grpc
from financial.marketdata.v2.prices_pb2 import PriceUpdate, TickBatch
from tests.contract.test_tickwriter_service import FakeWriter, tick
from tests.fuzz.messages import adversarial, record_bytes
from tests.fuzz.support import answered, tried
from tickwriter.service import (
    MAX_BATCH_TICKS,
    SERVICE,
    BindRpcContext,
    GuardCalls,
    TickWriterServicer,
    add_to_server,
)

TARGET = "grpc:tickwriter"
NEVER = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)


class _Server:
    """The service on its own thread and event loop, as in the tick writer (the fuzz examples
    are synchronous calls from the test thread)."""

    def __init__(self) -> None:
        self.writer = FakeWriter()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self.server = grpc.aio.server(interceptors=[BindRpcContext(), GuardCalls(None)])
        add_to_server(TickWriterServicer(self.writer), self.server)
        self.health = health_aio.HealthServicer()
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        await self.health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(60), "the fuzzed server did not start"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(0), self._loop).result(60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(60)


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    server = _Server()
    server.start()
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield channel
        # every service healthy after everything above
        for service in ("", SERVICE):
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=30
            )
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        ack = services_pb2_grpc.TickWriterServiceStub(channel).WriteTick(tick(), timeout=30)
        assert ack.success, "still writing after the fuzzing"
    server.stop()


def _call(channel: grpc.Channel, method: str, request: bytes) -> grpc.StatusCode:
    """``request`` as raw bytes to ``method``: what any client (or attacker) can send."""
    raw = channel.unary_unary(f"/{SERVICE}/{method}")
    try:
        raw(request, timeout=30)
    except grpc.RpcError as exc:
        code: grpc.StatusCode = exc.code()  # type: ignore[attr-defined]  # a grpc.Call too
    else:
        code = grpc.StatusCode.OK
    answered(TARGET, code.name)
    assert code not in NEVER, f"{method} answered {code.name}"
    return code


@given(update=adversarial(PriceUpdate))
def test_write_tick_answers_any_tick_without_internal(
    channel: grpc.Channel, update: PriceUpdate
) -> None:
    tried(TARGET)
    _call(channel, "WriteTick", update.SerializeToString())


@given(ticks=st.lists(st.one_of(adversarial(PriceUpdate), st.builds(tick)), max_size=6))
def test_write_batch_answers_any_batch_without_internal(
    channel: grpc.Channel, ticks: list[PriceUpdate]
) -> None:
    tried(TARGET)
    _call(channel, "WriteBatch", TickBatch(ticks=ticks).SerializeToString())


@given(
    method=st.sampled_from(["WriteTick", "WriteBatch"]),
    payload=st.one_of(record_bytes(PriceUpdate), record_bytes(TickBatch)),
)
def test_any_bytes_are_answered_without_internal(
    channel: grpc.Channel, method: str, payload: bytes
) -> None:
    tried(TARGET)
    _call(channel, method, payload)


def test_a_batch_over_the_limit_is_invalid_argument(channel: grpc.Channel) -> None:
    batch = TickBatch(ticks=[tick("A", n % 50 + 1) for n in range(MAX_BATCH_TICKS + 1)])
    assert _call(channel, "WriteBatch", batch.SerializeToString()) is (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_a_500_kb_symbol_is_invalid_argument(channel: grpc.Channel) -> None:
    """Issue 15: a 500 KB symbol was answered INTERNAL."""
    for method, request in (
        ("WriteTick", tick("S" * 500_000)),
        ("WriteBatch", TickBatch(ticks=[tick(), tick("S" * 500_000)])),
    ):
        assert _call(channel, method, request.SerializeToString()) is (
            grpc.StatusCode.INVALID_ARGUMENT
        )
