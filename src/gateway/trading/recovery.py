"""Rebuild the order book from the trading log at start-up.

Reads ``orders.lifecycle`` and ``positions.updates`` from the beginning to their end as of now,
committed records only, and keeps per order the update with the highest ``event_sequence``
(per position the highest ``sequence``); orders are known by account and id (ids are
scoped per account). Each status update carries the whole request, so the
latest one alone restores the order. Runs after the journal has claimed its transactional id,
which aborts anything a previous instance left open, so the end is stable.

Limits: orders are read back as far as the topic's retention (30 days by default); a GTC order
with no event for longer is lost from memory. The next step is a compacted snapshot topic.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition
from google.protobuf.message import DecodeError, Message

from financial.marketdata.v2.orders_pb2 import OrderStatusUpdate, PositionUpdate
from gateway.errors import JournalError
from gateway.trading.convert import Malformed, order_from_status, position_from_proto
from marketcore.trading.model import Order
from marketcore.trading.positions import Position
from marketinfra.kafka import make_consumer
from marketinfra.settings import KafkaSettings

log = structlog.get_logger(__name__)
MessageT = TypeVar("MessageT", bound=Message)


@dataclass
class RecoveredState:
    orders: list[Order] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    records: int = 0
    skipped: int = 0  # undecodable records (logged)


def read_trading_state(
    settings: KafkaSettings, orders_topic: str, positions_topic: str, timeout_s: float
) -> RecoveredState:
    state = RecoveredState()
    latest_orders: dict[tuple[str, str], OrderStatusUpdate] = {}
    latest_positions: dict[tuple[str, str], PositionUpdate] = {}

    def keep_order(update: OrderStatusUpdate) -> None:
        key = (update.account_id, update.order_id)
        current = latest_orders.get(key)
        if current is None or update.event_sequence > current.event_sequence:
            latest_orders[key] = update

    def keep_position(update: PositionUpdate) -> None:
        key = (update.account_id, update.symbol)
        current = latest_positions.get(key)
        if current is None or update.sequence > current.sequence:
            latest_positions[key] = update

    _read_topic(settings, orders_topic, OrderStatusUpdate, keep_order, state, timeout_s)
    _read_topic(settings, positions_topic, PositionUpdate, keep_position, state, timeout_s)
    for update in latest_orders.values():
        order = order_from_status(update)
        if isinstance(order, Malformed):
            state.skipped += 1
            log.error("recovery_order_skipped", order_id=update.order_id, problem=str(order))
            continue
        state.orders.append(order)
    for position_update in latest_positions.values():
        position = position_from_proto(position_update)
        if isinstance(position, Malformed):
            state.skipped += 1
            log.error("recovery_position_skipped", problem=str(position))
            continue
        state.positions.append(position)
    return state


def _read_topic(
    settings: KafkaSettings,
    topic: str,
    message_type: type[MessageT],
    keep: Callable[[MessageT], None],
    state: RecoveredState,
    timeout_s: float,
) -> None:
    consumer: Consumer = make_consumer(
        settings,
        f"gateway-recovery-{uuid.uuid4().hex[:12]}",  # required by librdkafka; never joined
        {"isolation.level": "read_committed", "enable.partition.eof": True},
    )
    deadline = time.monotonic() + timeout_s
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None or not metadata.partitions:
            raise JournalError(f"cannot read {topic} to recover orders: run `mdgw topics apply`")
        pending = set(metadata.partitions)
        consumer.assign(
            [TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in sorted(pending)]
        )
        while pending:
            if time.monotonic() > deadline:
                raise JournalError(f"reading {topic} back took longer than {timeout_s:.0f} s")
            for message in consumer.consume(num_messages=1000, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                        continue
                    raise JournalError(f"cannot read {topic}: {error.str()}")
                state.records += 1
                try:
                    keep(message_type.FromString(message.value() or b""))
                except DecodeError:
                    state.skipped += 1
                    log.error(  # noqa: TRY400 - where it is matters, not the traceback
                        "recovery_record_undecodable",
                        topic=topic,
                        partition=message.partition(),
                        offset=message.offset(),
                    )
    except KafkaException as exc:
        raise JournalError(f"cannot read {topic}: {exc.args[0].str()}") from exc
    finally:
        consumer.close()
