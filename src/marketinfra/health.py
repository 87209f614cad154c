"""The health port: standard gRPC health checking (``grpc.health.v1``), plaintext, on a port
of its own (``HEALTH_PORT``), serving nothing else. The kubelet's gRPC probes cannot speak TLS,
and the services' own ports do; this one carries no data, so it needs none.

Service names answered:

- ``liveness`` ("restart me" when NOT_SERVING): SERVING while the process's event loop
  answers (a wedged loop times out) and every condition of its ``liveness`` (a second
  ``Readiness``, if the service has one) is met. Those conditions name wedges a restart
  cures and waiting does not: a feed handler's producer that stopped reporting deliveries, a
  tick writer unable to write for longer than any outage it should ride out. An outage of
  Kafka or Cassandra alone never fails liveness (restarting every pod would not bring the
  server back, and the restarts would delay recovery);
- ``readiness`` and ``""`` ("do not count on me"): SERVING while every condition of the
  service's ``Readiness`` is met, NOT_SERVING (the unmet conditions are logged) otherwise,
  and from the moment the service starts to stop.

A service may pass its other health servicers (the gateway's on its TLS port, the tick
writer's on TickWriterService) to follow the same readiness under its own service names.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from marketinfra.readiness import Readiness
from marketinfra.settings import HealthSettings

log = structlog.get_logger(__name__)
LIVENESS = "liveness"
READINESS = "readiness"
_SERVING = health_pb2.HealthCheckResponse.SERVING
_NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True, slots=True)
class Follower:
    """Another health servicer kept in step with readiness, under these service names."""

    servicer: health_aio.HealthServicer
    services: Sequence[str]


class HealthPort:
    def __init__(
        self,
        readiness: Readiness,
        followers: Sequence[Follower] = (),
        liveness: Readiness | None = None,
    ) -> None:
        self._readiness = readiness
        self._liveness = liveness
        self._servicer = health_aio.HealthServicer()
        self._followers = [Follower(self._servicer, ("", READINESS)), *followers]
        self._server: grpc.aio.Server | None = None
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self, settings: HealthSettings) -> int | None:
        """Serve on ``settings`` (port 0: no port, followers are still kept in step);
        returns the port. Call on the event loop that will run the service."""
        loop = asyncio.get_running_loop()

        def changed() -> None:  # any thread
            if not self._stopping and not loop.is_closed():
                loop.call_soon_threadsafe(self._changed.set)

        self._readiness.watch(changed)
        if self._liveness is not None:
            self._liveness.watch(changed)
        await self._publish()
        self._task = asyncio.create_task(self._follow())
        if not settings.port:
            return None
        server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)
        address = f"{settings.address}:{settings.port}"
        port = server.add_insecure_port(address)
        if port == 0:
            raise OSError(f"cannot listen for health checks on {address}")
        await server.start()
        self._server = server
        log.info("health_serving", address=settings.address, port=port)
        return port

    async def stop(self) -> None:
        """NOT_SERVING everywhere (readiness first, as the service starts to stop), then
        close the port. Safe to call more than once."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
        for follower in self._followers:
            await follower.servicer.enter_graceful_shutdown()
        if self._server is not None:
            await self._server.stop(0)
            self._server = None

    async def _follow(self) -> None:
        while not self._stopping:
            await self._changed.wait()
            self._changed.clear()
            await self._publish()

    async def _publish(self) -> None:
        alive = self._liveness is None or self._liveness.ready
        await self._servicer.set(LIVENESS, _SERVING if alive else _NOT_SERVING)
        status = _SERVING if self._readiness.ready else _NOT_SERVING
        for follower in self._followers:
            for service in follower.services:
                await follower.servicer.set(service, status)
