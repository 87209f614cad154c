"""The Prometheus endpoint. Metric objects live in each service's own metrics module."""

from __future__ import annotations

from prometheus_client import start_http_server

from marketinfra.settings import MetricsSettings


def start_metrics_endpoint(settings: MetricsSettings) -> int | None:
    """Serve /metrics on its own port in a daemon thread; returns the port, or None when off."""
    if settings.port == 0:
        return None
    server, _thread = start_http_server(settings.port, addr=settings.address)
    return int(server.server_port)
