"""The Prometheus endpoint, and the registry each service keeps its metric families in.

Each service's ``metrics.py`` makes its own registry with ``service_registry()`` and
registers its metrics there, never in prometheus_client's global one: the ``mdgw`` command
imports every service, and a process must export only its own service's families (a
``tickwriter_consumption_paused 0`` on a feed handler fires or hides alerts wrongly).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)

from marketinfra.settings import MetricsSettings

# Per-hop latency (seconds) of one tick through the pipeline: fine steps where the goals are
# (p50 <= 3 ms, p99 <= 10 ms to a client; p99 <= 35 ms into Cassandra), coarse past them
# (a stall, an outage).
HOP_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.035, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip


def service_registry() -> CollectorRegistry:
    """An empty registry for one service, with the process, platform and GC collectors."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def start_metrics_endpoint(settings: MetricsSettings, registry: CollectorRegistry) -> int | None:
    """Serve ``registry`` as /metrics on its own port in a daemon thread; returns the port,
    or None when off."""
    if settings.port == 0:
        return None
    server, _thread = start_http_server(settings.port, addr=settings.address, registry=registry)
    return int(server.server_port)
