"""The health port over a real grpc.aio server: plaintext grpc.health.v1 with ``liveness``
and ``readiness`` (and ``""``), following Readiness, changes from other threads included,
and other health servicers kept in step."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from marketinfra.health import LIVENESS, READINESS, Follower, HealthPort
from marketinfra.readiness import KAFKA, Readiness
from marketinfra.settings import HealthSettings
from tests.support import free_port

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _status(stub: health_pb2_grpc.HealthStub, service: str) -> int:
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return int(reply.status)


async def test_readiness_follows_the_conditions_and_liveness_the_process() -> None:
    readiness = Readiness()
    readiness.add(KAFKA, "not yet")
    other = health_aio.HealthServicer()
    port = HealthPort(readiness, [Follower(other, ("mdgw.Service",))])
    bound = await port.start(HealthSettings(port=free_port()))
    assert bound is not None
    statuses: dict[str, int] = {}
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bound}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert await _status(stub, LIVENESS) == SERVING
        assert await _status(stub, READINESS) == NOT_SERVING
        assert await _status(stub, "") == NOT_SERVING

        # a pipeline thread reports the condition
        thread = threading.Thread(target=readiness.set, args=(KAFKA, True))
        thread.start()
        thread.join()

        async def probe() -> None:
            statuses[READINESS] = await _status(stub, READINESS)
            reply = await other.Check(health_pb2.HealthCheckRequest(service="mdgw.Service"), None)
            statuses["other"] = int(reply.status)

        async def both_serving() -> bool:
            await probe()
            return statuses == {READINESS: SERVING, "other": SERVING}

        await _until_async(both_serving)
        assert await _status(stub, LIVENESS) == SERVING

        readiness.set(KAFKA, False, "no broker connected")
        await _until_async(lambda: _is(stub, READINESS, NOT_SERVING))
        assert await _status(stub, LIVENESS) == SERVING
        readiness.set(KAFKA, True)
        await _until_async(lambda: _is(stub, READINESS, SERVING))

        await port.stop()  # readiness goes first, as the service starts to stop
    reply = await other.Check(health_pb2.HealthCheckRequest(service="mdgw.Service"), None)
    assert reply.status == NOT_SERVING


async def _is(stub: health_pb2_grpc.HealthStub, service: str, status: int) -> bool:
    return await _status(stub, service) == status


async def _until_async(condition: Callable[[], Awaitable[bool]]) -> None:
    """Until the condition holds (pytest-timeout bounds a test that never gets there)."""
    while not await condition():  # noqa: ASYNC110 - polls a server, no event to wait on
        await asyncio.sleep(0.02)


async def test_no_port_still_keeps_followers_in_step() -> None:
    readiness = Readiness()
    other = health_aio.HealthServicer()
    port = HealthPort(readiness, [Follower(other, ("",))])
    assert await port.start(HealthSettings(port=0)) is None
    reply = await other.Check(health_pb2.HealthCheckRequest(service=""), None)
    assert reply.status == SERVING
    await port.stop()


async def test_liveness_follows_its_own_conditions_and_never_readiness() -> None:
    """Readiness "do not count on me" and liveness "restart me" are separate: an outage
    (a readiness condition) leaves liveness SERVING; a wedge (a liveness condition) fails it."""
    readiness, liveness = Readiness(), Readiness()
    readiness.add(KAFKA, "no broker connected")
    liveness.add("producer", "not checked yet")
    port = HealthPort(readiness, liveness=liveness)
    bound = await port.start(HealthSettings(port=free_port()))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{bound}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        assert await _status(stub, LIVENESS) == NOT_SERVING
        liveness.set("producer", True)
        await _until_async(lambda: _is(stub, LIVENESS, SERVING))
        assert await _status(stub, READINESS) == NOT_SERVING  # Kafka still down: not a wedge

        liveness.set("producer", False, "producer stalled")
        await _until_async(lambda: _is(stub, LIVENESS, NOT_SERVING))
        readiness.set(KAFKA, True)
        await _until_async(lambda: _is(stub, READINESS, SERVING))
        assert await _status(stub, LIVENESS) == NOT_SERVING
        await port.stop()
