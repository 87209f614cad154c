"""Prometheus metrics of the tick writer (tickwriter_<noun>_<unit>), in this service's own
``REGISTRY`` (see ``marketinfra.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from marketinfra.metrics import HOP_LATENCY_BUCKETS, service_registry

REGISTRY = service_registry()

ROWS_WRITTEN = Counter(
    "tickwriter_rows_written_total", "Rows written to Cassandra", ["table"], registry=REGISTRY
)
FLUSH_SIZE = Histogram(
    "tickwriter_flush_records",
    "Records per micro-batch flush",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
    registry=REGISTRY,
)
WRITE_LATENCY = Histogram(
    "tickwriter_write_latency_seconds",
    "Time to write one flush to Cassandra",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5),
    registry=REGISTRY,
)
RECEIPT_TO_WRITTEN = Histogram(
    "tickwriter_receipt_written_latency_seconds",
    "A tick's feed-handler receipt to the end of its Cassandra write",
    buckets=HOP_LATENCY_BUCKETS,
    registry=REGISTRY,
)
WRITE_ERRORS = Counter(
    "tickwriter_write_errors_total", "Failed write attempts", ["kind"], registry=REGISTRY
)
DLQ_RECORDS = Counter(
    "tickwriter_dlq_records_total", "Records sent to the DLQ", ["reason"], registry=REGISTRY
)
COMMIT_LATENCY = Histogram(
    "tickwriter_commit_latency_seconds", "Offset commit time", registry=REGISTRY
)
CONSUMER_LAG = Gauge(
    "tickwriter_consumer_lag_records",
    "Records behind the partition end",
    ["topic", "partition"],
    registry=REGISTRY,
)
SECONDS_BEHIND = Gauge(
    "tickwriter_seconds_behind_newest",
    "Now minus the timestamp of the newest written record",
    registry=REGISTRY,
)
PAUSED = Gauge(
    "tickwriter_consumption_paused",
    "1 while consumption is paused (Cassandra down)",
    registry=REGISTRY,
)
EVENT_LOOP_LAG = Histogram(
    "tickwriter_event_loop_lag_seconds",
    "How much later than asked a timer fired on the asyncio loop (marketinfra.loop_lag)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
AUTH_FAILURES = Counter(
    "tickwriter_auth_failures_total",
    "TickWriterService calls refused: no or bad token",
    ["reason"],
    registry=REGISTRY,
)
