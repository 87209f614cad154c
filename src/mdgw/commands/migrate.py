"""``mdgw migrate trading-log``: carry a v1 trading log (int64 micros) into the v2 topics.

Reads ``orders.lifecycle``, ``trades.executed`` and ``positions.updates`` (committed records
only, each partition to its end as of now), rewrites every record exactly in the v2 schema
(``mdgw.migration_v1``) and produces it, with its key and headers, to the v2 topic. Keys
decide partitions and records are produced in their source order, so each order's events and
each position's updates keep their order. The v2 gateway then recovers working orders,
positions and order-id idempotency from the v2 topics as if they had always been there.

Run it once, with the v1 gateway stopped (nothing may append to the v1 log meanwhile) and
before the v2 gateway starts. It refuses a destination topic that already holds records
(``--force`` overrides: recovery keeps each order's and position's latest event, so a second
copy changes no state, but other consumers would see the records twice).
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition
from google.protobuf.message import DecodeError
from google.protobuf.message import Message as ProtoMessage

from financial.marketdata.v1 import orders_pb2 as v1
from marketinfra.errors import InfraError
from marketinfra.kafka import make_admin, make_consumer, make_producer
from marketinfra.settings import KafkaSettings
from marketinfra.topics import ORDERS_LIFECYCLE, POSITIONS_UPDATES, TRADES_EXECUTED
from mdgw.migration_v1 import execution_v2, order_status_v2, position_v2

Convert = Callable[[bytes], ProtoMessage]


@dataclass(frozen=True, slots=True)
class Stream:
    what: str
    source: str
    destination: str
    convert: Convert


@dataclass(slots=True)
class Outcome:
    copied: int = 0
    undecodable: int = 0


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser("migrate", help="carry v1 data into the v2 schema")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    log = actions.add_parser(
        "trading-log", help="v1 orders, fills and positions -> the v2 topics, exactly"
    )
    for what, v1_name, v2_spec in (
        ("orders", "orders.lifecycle", ORDERS_LIFECYCLE),
        ("trades", "trades.executed", TRADES_EXECUTED),
        ("positions", "positions.updates", POSITIONS_UPDATES),
    ):
        log.add_argument(f"--from-{what}", default=v1_name, help=f"v1 topic (default {v1_name})")
        log.add_argument(f"--to-{what}", default=v2_spec.name, help=f"default {v2_spec.name}")
    log.add_argument("--force", action="store_true", help="write into non-empty destinations")
    log.set_defaults(handler=run_trading_log)


def _converter(decode: Callable[[bytes], Any], convert: Callable[[Any], ProtoMessage]) -> Convert:
    return lambda value: convert(decode(value))


def run_trading_log(args: argparse.Namespace) -> int:
    streams = [
        Stream(
            "orders",
            args.from_orders,
            args.to_orders,
            _converter(v1.OrderStatusUpdate.FromString, order_status_v2),
        ),
        Stream(
            "trades",
            args.from_trades,
            args.to_trades,
            _converter(v1.ExecutionReport.FromString, execution_v2),
        ),
        Stream(
            "positions",
            args.from_positions,
            args.to_positions,
            _converter(v1.PositionUpdate.FromString, position_v2),
        ),
    ]
    settings = KafkaSettings()
    try:
        problem = _check_topics(settings, streams, force=args.force)
        if problem:
            print(f"mdgw migrate: {problem}", file=sys.stderr)
            return 1
        failed = False
        for stream in streams:
            outcome = migrate(settings, stream)
            print(
                f"{stream.what}: {outcome.copied} records {stream.source} -> "
                f"{stream.destination}"
                + (
                    f"; {outcome.undecodable} undecodable, not copied"
                    if outcome.undecodable
                    else ""
                )
            )
            failed = failed or outcome.undecodable > 0
    except InfraError as exc:
        print(f"mdgw migrate: {exc}", file=sys.stderr)
        return 1
    return 1 if failed else 0


def _check_topics(settings: KafkaSettings, streams: list[Stream], *, force: bool) -> str:
    admin = make_admin(settings)
    topics = admin.list_topics(timeout=settings.request_timeout_ms / 1000).topics
    for stream in streams:
        for name, role in ((stream.source, "v1 source"), (stream.destination, "v2 destination")):
            if name not in topics:
                hint = " (run `mdgw topics apply`)" if role.startswith("v2") else ""
                return f"{role} topic {name} does not exist{hint}"
    if force:
        return ""
    consumer = make_consumer(settings, f"mdgw-migrate-check-{uuid.uuid4().hex[:8]}")
    try:
        for stream in streams:
            for partition in topics[stream.destination].partitions:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(stream.destination, partition), timeout=10
                )
                if high > low:
                    return (
                        f"{stream.destination} already holds records: was the log migrated "
                        "before? (--force writes anyway)"
                    )
    finally:
        consumer.close()
    return ""


def migrate(settings: KafkaSettings, stream: Stream) -> Outcome:
    outcome = Outcome()
    producer = make_producer(settings)
    for message in _committed_records(settings, stream.source):
        try:
            converted = stream.convert(message.value() or b"")
        except DecodeError:
            outcome.undecodable += 1
            continue
        producer.produce(
            stream.destination,
            value=converted.SerializeToString(),
            key=message.key(),
            headers=message.headers() or None,
        )
        producer.poll(0)
        outcome.copied += 1
    if producer.flush(60):
        raise InfraError(f"{stream.destination}: Kafka did not acknowledge every record")
    return outcome


def _committed_records(settings: KafkaSettings, topic: str) -> Iterator[Message]:
    """Every committed record of ``topic``, partition by partition, to its end as of now."""
    consumer = make_consumer(
        settings,
        f"mdgw-migrate-{uuid.uuid4().hex[:8]}",
        {"isolation.level": "read_committed", "enable.partition.eof": True},
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        pending = set(partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(pending)])
        while pending:
            for message in consumer.consume(500, timeout=1.0):
                error = message.error()
                if error is None:
                    yield message
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                else:
                    raise InfraError(f"reading {topic}: {error}")
    finally:
        consumer.close()
