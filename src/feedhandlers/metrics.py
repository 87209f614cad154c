"""Prometheus metrics of the feed handlers (feedhandler_<noun>_<unit>), labelled by venue.

The hot path counts in plain integers (``pipeline.FeedCounters``); ``publish`` adds what
changed since the last call, a few times a second, so a tick costs no lock or label lookup.
They live in this service's own ``REGISTRY`` (see ``marketinfra.metrics``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from marketinfra.metrics import HOP_LATENCY_BUCKETS, service_registry

REGISTRY = service_registry()

MESSAGES_RECEIVED = Counter(
    "feedhandler_messages_received_total",
    "Frames read from the venue",
    ["venue", "kind"],
    registry=REGISTRY,
)
TICKS_PRODUCED = Counter(
    "feedhandler_ticks_produced_total",
    "Ticks handed to the Kafka producer",
    ["venue"],
    registry=REGISTRY,
)
TICKS_REJECTED = Counter(
    "feedhandler_ticks_rejected_total",
    "Frames or ticks refused by normalization (malformed, not representable, crossed...)",
    ["venue", "reason"],
    registry=REGISTRY,
)
TICKS_DROPPED = Counter(
    "feedhandler_ticks_dropped_total",
    "Normalized ticks not accepted by the producer buffer (conflated or buffer full)",
    ["venue", "reason"],
    registry=REGISTRY,
)
SIZES_DROPPED = Counter(
    "feedhandler_sizes_dropped_total",
    "Sizes or volumes sent as 0 (unknown) because they have more than nine decimals",
    ["venue"],
    registry=REGISTRY,
)
DELIVERY_ERRORS = Counter(
    "feedhandler_delivery_errors_total",
    "Records Kafka did not take",
    ["venue", "code"],
    registry=REGISTRY,
)
DELIVERY_STALLS = Counter(
    "feedhandler_delivery_stalls_total",
    "Times the delivery watchdog found the producer stalled (records waiting, no delivery "
    "report within the delivery timeout plus a margin); liveness fails after one",
    ["venue"],
    registry=REGISTRY,
)
PRODUCE_LATENCY = Histogram(
    "feedhandler_produce_latency_seconds",
    "produce() to broker acknowledgement of each tick (librdkafka's message latency)",
    ["venue"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
EVENT_TO_RECEIPT = Histogram(
    "feedhandler_event_receipt_latency_seconds",
    "Venue event time to our receipt of the frame, per tick (venue clock against ours)",
    ["venue"],
    buckets=HOP_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RECEIPT_TO_ACK = Histogram(
    "feedhandler_receipt_ack_latency_seconds",
    "Receipt of the frame to the broker's acknowledgement of its tick",
    ["venue"],
    buckets=HOP_LATENCY_BUCKETS,
    registry=REGISTRY,
)
BUFFER_DEPTH = Gauge(
    "feedhandler_buffer_depth_messages",
    "Records waiting in the producer (not yet acknowledged) plus the overflow slots",
    ["venue"],
    registry=REGISTRY,
)
RECONNECTS = Counter(
    "feedhandler_reconnects_total",
    "Connections to the venue lost or refused",
    ["venue", "reason"],
    registry=REGISTRY,
)
GAPS = Counter(
    "feedhandler_gaps_total",
    "Sequence gaps or book mismatches that made us resubscribe or resnapshot",
    ["venue", "kind"],
    registry=REGISTRY,
)
SECONDS_SINCE_LAST_MESSAGE = Gauge(
    "feedhandler_seconds_since_last_message",
    "Seconds since the last frame from the venue",
    ["venue"],
    registry=REGISTRY,
)
CONNECTED = Gauge(
    "feedhandler_connected", "1 while subscribed to the venue", ["venue"], registry=REGISTRY
)
EVENT_LOOP_LAG = Histogram(
    "feedhandler_event_loop_lag_seconds",
    "How much later than asked a timer fired on the asyncio loop (marketinfra.loop_lag)",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
