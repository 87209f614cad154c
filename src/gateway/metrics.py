"""Prometheus metrics of the gateway (gateway_<noun>_<unit>). Labels are bounded: rpc is the
method name, code a gRPC status name, reason and source small fixed sets.

A gateway process exports ``REGISTRY``; the ``--workers`` supervisor exports only
``SUPERVISOR_REGISTRY`` (see ``marketinfra.metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from marketinfra.metrics import HOP_LATENCY_BUCKETS, service_registry

REGISTRY = service_registry()
SUPERVISOR_REGISTRY = service_registry()

RPC_LATENCY = Histogram(
    "gateway_rpc_handling_seconds",
    "Time from a call's arrival to its end (streams: the stream's lifetime)",
    ["rpc"],
    buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1, 5, 60, 600, 3600),
    registry=REGISTRY,
)
RPCS = Counter(
    "gateway_rpcs_total", "Calls finished, by status code", ["rpc", "code"], registry=REGISTRY
)
AUTH_FAILURES = Counter(
    "gateway_auth_failures_total", "Calls refused", ["reason"], registry=REGISTRY
)
STREAMS = Gauge("gateway_streams_open", "Price streams open", registry=REGISTRY)
STREAM_UPDATES = Counter(
    "gateway_stream_updates_sent_total", "Updates written to streams", registry=REGISTRY
)
STREAM_CONFLATED = Counter(
    "gateway_stream_updates_conflated_total",
    "Updates replaced by a newer one before sending",
    registry=REGISTRY,
)
SHAPE_GROUPS = Gauge(
    "gateway_shape_groups",
    "Batched stream shapes whose batches are built once and shared",
    registry=REGISTRY,
)
STREAM_ENDS = Counter(
    "gateway_stream_ends_total", "Streams ended by the server", ["reason"], registry=REGISTRY
)
FEED_RECORDS = Counter(
    "gateway_feed_records_total", "Kafka records read", ["result"], registry=REGISTRY
)
FEED_DEDUPE_EVICTIONS = Counter(
    "gateway_feed_dedupe_evictions_total",
    "Instrument and feed handler pairs forgotten by duplicate detection to bound its memory",
    registry=REGISTRY,
)
RECORD_TO_SEND = Histogram(
    "gateway_record_send_latency_seconds",
    "A tick's Kafka record timestamp to its write on a stream (per stream)",
    buckets=HOP_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RECEIPT_TO_SEND = Histogram(
    "gateway_receipt_send_latency_seconds",
    "A tick's feed-handler receipt to its write on a stream (per stream)",
    buckets=HOP_LATENCY_BUCKETS,
    registry=REGISTRY,
)
FEED_DELAY = Gauge(
    "gateway_feed_delay_seconds",
    "Now minus the event time of the newest tick applied",
    registry=REGISTRY,
)
INSTRUMENTS = Gauge(
    "gateway_instruments_in_memory", "Instruments in the quote view", registry=REGISTRY
)
QUOTES = Counter("gateway_quotes_total", "GetQuote answers", ["source"], registry=REGISTRY)
STORE_ERRORS = Counter(
    "gateway_store_errors_total", "Failed Cassandra reads", ["operation"], registry=REGISTRY
)

# -- trading (labels: bounded enums; never order or account ids) ---------------------------------
ORDERS = Counter(
    "gateway_orders_total",
    "New-order requests by outcome",
    ["outcome"],
    registry=REGISTRY,
)  # accepted, rejected, duplicate, refused, withdrawn (Kafka refused its record)
ORDERS_REJECTED = Counter(
    "gateway_orders_rejected_total", "Rejected orders", ["reason"], registry=REGISTRY
)
CANCELS = Counter(
    "gateway_cancels_total", "Cancel requests by outcome", ["outcome"], registry=REGISTRY
)
EXECUTIONS = Counter("gateway_executions_total", "Fills at the venue", registry=REGISTRY)
ORDERS_WORKING = Gauge("gateway_orders_working", "Orders working at the venue", registry=REGISTRY)
TRADING_SESSIONS = Gauge(
    "gateway_trading_sessions_open", "LiveTrading sessions open", registry=REGISTRY
)
JOURNAL_COMMIT_SECONDS = Histogram(
    "gateway_journal_commit_seconds",
    "Time to write one transaction of order events to Kafka",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1, 5, 30),
    registry=REGISTRY,
)
JOURNAL_RECORDS = Counter(
    "gateway_journal_records_total", "Order event records committed", registry=REGISTRY
)
JOURNAL_RECORDS_REFUSED = Counter(
    "gateway_journal_records_refused_total",
    "Appends Kafka refused for good (a record too large or invalid); those submissions withdrawn",
    registry=REGISTRY,
)

EVENT_LOOP_LAG = Histogram(
    "gateway_event_loop_lag_seconds",
    "How much later than asked a timer fired on the asyncio loop (marketinfra.loop_lag)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)

# -- the --workers supervisor (gateway/workers.py) ----------------------------------------------
WORKERS_ALIVE = Gauge(
    "gateway_workers_alive", "Gateway worker processes running", registry=SUPERVISOR_REGISTRY
)
WORKER_RESTARTS = Counter(
    "gateway_worker_restarts_total",
    "Workers restarted after an unexpected exit",
    ["worker"],
    registry=SUPERVISOR_REGISTRY,
)
