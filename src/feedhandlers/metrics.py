"""Prometheus metrics of the feed handlers (feedhandler_<noun>_<unit>), labelled by venue.

The hot path counts in plain integers (``pipeline.FeedCounters``); ``publish`` adds what
changed since the last call, a few times a second, so a tick costs no lock or label lookup.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

MESSAGES_RECEIVED = Counter(
    "feedhandler_messages_received_total", "Frames read from the venue", ["venue", "kind"]
)
TICKS_PRODUCED = Counter(
    "feedhandler_ticks_produced_total", "Ticks handed to the Kafka producer", ["venue"]
)
TICKS_REJECTED = Counter(
    "feedhandler_ticks_rejected_total",
    "Frames or ticks refused by normalization (malformed, not representable, crossed...)",
    ["venue", "reason"],
)
TICKS_DROPPED = Counter(
    "feedhandler_ticks_dropped_total",
    "Normalized ticks not accepted by the producer buffer (conflated or buffer full)",
    ["venue", "reason"],
)
SIZES_DROPPED = Counter(
    "feedhandler_sizes_dropped_total",
    "Sizes or volumes sent as 0 (unknown) because they have more than nine decimals",
    ["venue"],
)
DELIVERY_ERRORS = Counter(
    "feedhandler_delivery_errors_total", "Records Kafka did not take", ["venue", "code"]
)
PRODUCE_LATENCY = Gauge(
    "feedhandler_produce_latency_seconds",
    "produce() to broker acknowledgement, from librdkafka's latency windows "
    "(queue + request queue + round trip), per statistics interval",
    ["venue", "quantile"],
)
BUFFER_DEPTH = Gauge(
    "feedhandler_buffer_depth_messages",
    "Records waiting in the producer (not yet acknowledged) plus the overflow slots",
    ["venue"],
)
RECONNECTS = Counter(
    "feedhandler_reconnects_total", "Connections to the venue lost or refused", ["venue", "reason"]
)
GAPS = Counter(
    "feedhandler_gaps_total",
    "Sequence gaps or book mismatches that made us resubscribe or resnapshot",
    ["venue", "kind"],
)
SECONDS_SINCE_LAST_MESSAGE = Gauge(
    "feedhandler_seconds_since_last_message",
    "Seconds since the last frame from the venue",
    ["venue"],
)
CONNECTED = Gauge("feedhandler_connected", "1 while subscribed to the venue", ["venue"])
