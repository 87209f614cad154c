"""``mdgw gateway --workers N``: N gateway processes on one port, supervised.

Python serves one core per process, so the gateway scales on one machine by processes:

- Each worker is a whole gateway (``python -m gateway``): its own Kafka consumer over every
  partition (no consumer group: every worker needs every tick), its own quote view, its own
  Cassandra session. All bind the same address with SO_REUSEPORT (``GATEWAY_REUSE_PORT``), and
  the kernel spreads new connections over them; a client's streams stay on its connection.
- Per worker: gRPC health answers on the shared port from whichever worker took the connection;
  every stream's initial metadata names its worker (``x-gateway-worker``); with ``METRICS_PORT``
  set, worker i serves ``/metrics`` on ``METRICS_PORT + 1 + i`` (the supervisor's own, with the
  worker gauges and restart counters, on ``METRICS_PORT``). Prometheus sums across workers.
- A worker that exits without being asked to is restarted with capped exponential backoff and
  reported (log ``gateway_worker_exited``, ``gateway_worker_restarts_total{worker}``).
- SIGTERM or SIGINT: forwarded to every worker, each drains its streams (see ``app.stop``), and
  the supervisor exits 0 when all of them did.
- Trading: one order book decides every order, so worker 0 owns it (the trading log's writer)
  and the other workers relay SubmitOrders and LiveTrading to it over a Unix socket in a
  private temporary directory (``trading/relay.py``). Clients may connect to any worker.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway.metrics import WORKER_RESTARTS, WORKERS_ALIVE
from marketcore.backoff import BackoffPolicy, backoff_delay

log = structlog.get_logger(__name__)
RESTART_BACKOFF = BackoffPolicy(base_s=0.5, cap_s=30.0)
# A worker that ran this long before exiting starts the backoff over.
HEALTHY_RUN_S = 60.0


@dataclass
class _Worker:
    index: int
    process: asyncio.subprocess.Process | None = None
    failures: int = 0  # unexpected exits in a row


class Supervisor:
    def __init__(
        self,
        count: int,
        overrides: Mapping[str, str],
        metrics_port: int = 0,
        *,
        trading_socket: Path | None = None,
    ) -> None:
        """``overrides``: GATEWAY_* variables every worker gets on top of this environment.
        ``trading_socket``: where worker 0 serves trading to the others (None: trading off)."""
        self._workers = [_Worker(index) for index in range(count)]
        self._overrides = dict(overrides)
        self._metrics_port = metrics_port
        self._trading_socket = trading_socket
        self._stopping = asyncio.Event()

    def _environment(self, worker: _Worker) -> dict[str, str]:
        env = {**os.environ, **self._overrides, "GATEWAY_REUSE_PORT": "true"}
        env["GATEWAY_WORKER_NAME"] = f"worker-{worker.index}"
        if self._trading_socket is not None:
            env["GATEWAY_TRADING"] = "own" if worker.index == 0 else "relay"
            env["GATEWAY_TRADING_RELAY_SOCKET"] = str(self._trading_socket)
        if self._metrics_port:
            env["METRICS_PORT"] = str(self._metrics_port + 1 + worker.index)
        return env

    async def _spawn(self, worker: _Worker) -> asyncio.subprocess.Process:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", env=self._environment(worker)
        )
        worker.process = process
        WORKERS_ALIVE.inc()
        log.info("gateway_worker_started", worker=worker.index, pid=process.pid)
        if self._stopping.is_set():  # stop() ran while this one was being started
            process.send_signal(signal.SIGTERM)
        return process

    async def _keep(self, worker: _Worker) -> int:
        """Run one worker slot until the supervisor stops; returns the last exit code."""
        loop = asyncio.get_running_loop()
        while True:
            process = await self._spawn(worker)
            started = loop.time()
            code = await process.wait()
            WORKERS_ALIVE.dec()
            if self._stopping.is_set():
                log.info("gateway_worker_stopped", worker=worker.index, pid=process.pid, code=code)
                return code
            ran_s = loop.time() - started
            worker.failures = 1 if ran_s >= HEALTHY_RUN_S else worker.failures + 1
            delay_s = backoff_delay(worker.failures, RESTART_BACKOFF, random.random())
            WORKER_RESTARTS.labels(str(worker.index)).inc()
            log.error(
                "gateway_worker_exited",
                worker=worker.index,
                pid=process.pid,
                code=code,
                ran_s=round(ran_s, 1),
                restart_in_s=round(delay_s, 2),
            )
            try:
                await asyncio.wait_for(self._stopping.wait(), delay_s)
            except TimeoutError:
                continue
            return code

    def stop(self) -> None:
        """Ask every worker to drain and exit (SIGTERM); the slots then end."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        log.info("gateway_workers_stopping", workers=len(self._workers))
        for worker in self._workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.send_signal(signal.SIGTERM)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop)
        codes = await asyncio.gather(*(self._keep(worker) for worker in self._workers))
        failed = [code for code in codes if code != 0]
        log.info("gateway_workers_stopped", failed=len(failed))
        return 0 if not failed else 1
