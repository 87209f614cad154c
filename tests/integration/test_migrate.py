"""``mdgw migrate trading-log`` against the real Kafka: a v1 log (micros) carried into v2
topics, then read back by the v2 gateway's recovery with every value exact."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka.admin import AdminClient

from financial.marketdata.v1 import common_pb2 as c1
from financial.marketdata.v1 import orders_pb2 as v1
from gateway.trading.recovery import read_trading_state
from marketcore.trading.model import OrderStatus
from marketinfra.kafka import make_producer
from marketinfra.settings import KafkaSettings
from tests.integration.support import flush_or_fail
from tests.integration.trading_support import create_topics

pytestmark = pytest.mark.integration

KINDS = ("orders", "trades", "positions")


def _v1_log() -> list[tuple[str, bytes, bytes]]:
    request = v1.OrderRequest(
        order_id="v1-gtc", symbol="BTC-USD", side=c1.SIDE_BUY, quantity_micros=500_000,
        limit_price_micros=64_000_000_000, order_type=c1.ORDER_TYPE_LIMIT, account_id="desk-1",
        exchange="COINBASE", time_in_force=c1.TIME_IN_FORCE_GTC,
    )  # fmt: skip
    events = [
        v1.OrderStatusUpdate(
            order_id="v1-gtc", status=status, account_id="desk-1", symbol="BTC-USD",
            exchange="COINBASE", event_sequence=sequence, order=request,
            filled_quantity_micros=filled, remaining_quantity_micros=500_000 - filled,
            fill_count=1 if filled else 0, event_time_ns=1_764_000_000_000_000_000 + sequence,
        )
        for sequence, status, filled in (
            (1, c1.ORDER_STATUS_NEW, 0),
            (2, c1.ORDER_STATUS_PARTIALLY_FILLED, 100_000),
        )
    ]  # fmt: skip
    fill = v1.ExecutionReport(
        execution_id="v1-gtc-1", order_id="v1-gtc", fill_price_micros=63_999_990_000,
        fill_quantity_micros=100_000, account_id="desk-1", symbol="BTC-USD",
        exchange="COINBASE", side=c1.SIDE_BUY, execution_time_ns=1_764_000_000_000_000_002,
    )  # fmt: skip
    # cost 0.1 x 63,999.99 = 6,399.999: exact in micros; the sub-micros carry a remainder
    position = v1.PositionUpdate(
        account_id="desk-1", symbol="BTC-USD", net_quantity_micros=100_000,
        cost_micros=6_399_999_000, cost_sub_micros=-123, sequence=1,
    )  # fmt: skip
    return [
        *(("orders", b"v1-gtc", event.SerializeToString()) for event in events),
        ("trades", b"desk-1", fill.SerializeToString()),
        ("positions", b"desk-1|BTC-USD", position.SerializeToString()),
    ]


def _migrate(names: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    flags = [
        flag
        for kind in KINDS
        for flag in (f"--from-{kind}", names[f"v1.{kind}"], f"--to-{kind}", names[kind])
    ]
    return subprocess.run(
        [sys.executable, "-m", "mdgw", "migrate", "trading-log", *flags, *extra],
        env=dict(os.environ), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_a_v1_trading_log_recovers_exactly_in_v2(
    kafka_settings: KafkaSettings, kafka_admin: AdminClient
) -> None:
    run = uuid.uuid4().hex[:10]
    names = {
        **{f"v1.{kind}": f"test.{run}.v1.{kind}" for kind in KINDS},
        **{kind: f"test.{run}.{kind}" for kind in KINDS},
    }
    create_topics(kafka_admin, list(names.values()))
    try:
        producer = make_producer(kafka_settings)
        for kind, key, value in _v1_log():
            producer.produce(names[f"v1.{kind}"], value=value, key=key)
        flush_or_fail(producer, kafka_settings.bootstrap_servers)

        done = _migrate(names)
        assert done.returncode == 0, done.stderr
        assert f"orders: 2 records {names['v1.orders']} -> {names['orders']}" in done.stdout
        again = _migrate(names)  # a second run would duplicate: refused, saying why
        assert again.returncode == 1
        assert "already holds records" in again.stderr

        state = read_trading_state(kafka_settings, names["orders"], names["positions"], 30)
        (order,) = state.orders
        assert order.status is OrderStatus.PARTIALLY_FILLED
        assert order.spec.quantity_nanos == 500_000_000  # 0.5 BTC
        assert order.spec.limit_price_nanos == 64_000_000_000_000  # 64,000.00
        assert order.filled_nanos == 100_000_000  # 0.1 filled: 0.4 works on
        assert order.event_sequence == 2  # numbering continues from the v1 log
        (position,) = state.positions
        assert position.net_nanos == 100_000_000
        # v1 exact: 6,399.999 - 123e-12; in 1e-18 units
        assert position.cost_exact == (6_399_999_000 * 10**6 - 123) * 10**6
    finally:
        for future in kafka_admin.delete_topics(list(names.values())).values():
            future.result(timeout=10)
