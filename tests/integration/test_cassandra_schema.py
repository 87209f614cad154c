import os
import subprocess
import sys
import uuid

from cassandra.cluster import Session

from financial.marketdata.v1.prices_pb2 import PriceUpdate
from marketcore.tick_identity import tick_timeuuid
from marketcore.trading_calendar import trade_date_text
from marketinfra.cassandra import Consistency, prepare
from marketinfra.schema import apply_schema
from marketinfra.settings import CassandraSettings

_INSERT = """
INSERT INTO tick_data (exchange, symbol, trade_date, tick_time, bid_micros, ask_micros, last_micros,
                       volume_micros, event_time_ns, received_time_ns, feed_handler_id, payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT = """
SELECT tick_time, bid_micros, ask_micros, last_micros, payload FROM tick_data
WHERE exchange = ? AND symbol = ? AND trade_date = ?
"""


def test_tick_row_is_written_and_read_back(cassandra_session: Session) -> None:
    tick = PriceUpdate(
        exchange="NASDAQ",
        symbol="AAPL",
        bid_micros=189_490_000,
        ask_micros=189_510_000,
        last_micros=189_500_000,
        event_time_ns=1_710_000_000_123_456_789,
        feed_handler_id="fh-test",
        feed_sequence=7,
    )
    trade_date = trade_date_text(tick.exchange, tick.event_time_ns)
    tick_time = tick_timeuuid(tick.event_time_ns, b"fh-test:7")
    insert = prepare(cassandra_session, _INSERT, Consistency.TICK_WRITE)
    values = (
        tick.exchange, tick.symbol, trade_date, tick_time, tick.bid_micros, tick.ask_micros,
        tick.last_micros, tick.volume_micros, tick.event_time_ns, tick.received_time_ns,
        tick.feed_handler_id, tick.SerializeToString(),
    )  # fmt: skip
    # Writing the same tick twice (a replay) must leave one row.
    cassandra_session.execute(insert, values)
    cassandra_session.execute(insert, values)

    select = prepare(cassandra_session, _SELECT, Consistency.READ)
    rows = list(cassandra_session.execute(select, ("NASDAQ", "AAPL", trade_date)))
    assert len(rows) == 1
    assert rows[0].tick_time == tick_time
    assert (rows[0].bid_micros, rows[0].ask_micros, rows[0].last_micros) == (
        189_490_000,
        189_510_000,
        189_500_000,
    )
    assert PriceUpdate.FromString(rows[0].payload) == tick


def test_tick_table_uses_time_window_compaction(
    cassandra_session: Session, cassandra_settings: CassandraSettings
) -> None:
    row = cassandra_session.execute(
        "SELECT compaction, default_time_to_live, bloom_filter_fp_chance, read_repair "
        "FROM system_schema.tables WHERE keyspace_name = %s AND table_name = 'tick_data'",
        (cassandra_settings.keyspace,),
    ).one()
    assert (
        row.compaction["class"] == "org.apache.cassandra.db.compaction.TimeWindowCompactionStrategy"
    )
    assert row.compaction["compaction_window_unit"] == "HOURS"
    assert row.compaction["compaction_window_size"] == "1"
    assert row.default_time_to_live == 90 * 24 * 3600
    assert row.bloom_filter_fp_chance == 0.01
    assert row.read_repair == "NONE"


def test_every_declared_table_exists(
    cassandra_session: Session, cassandra_settings: CassandraSettings
) -> None:
    rows = cassandra_session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s",
        (cassandra_settings.keyspace,),
    )
    assert {
        "tick_data",
        "trade_executions",
        "order_book_snapshots",
        "event_store",
        "daily_bars",
    } <= {row.table_name for row in rows}


def test_applying_the_schema_again_changes_nothing(
    cassandra_session: Session, cassandra_settings: CassandraSettings
) -> None:
    assert apply_schema(cassandra_session, cassandra_settings)


def test_mdgw_schema_apply_is_idempotent(cassandra_base_settings: CassandraSettings) -> None:
    keyspace = f"test_cli_{uuid.uuid4().hex[:10]}"
    env = {**os.environ, "CASSANDRA_KEYSPACE": keyspace}
    try:
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, "-m", "mdgw", "schema", "apply"],
                env=env, capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert f"schema applied to keyspace {keyspace}" in result.stdout
    finally:
        subprocess.run(
            [sys.executable, "-c", f"""
from marketinfra.cassandra import connect
from marketinfra.settings import CassandraSettings
cluster, session = connect(CassandraSettings(), use_keyspace=False)
session.execute('DROP KEYSPACE IF EXISTS {keyspace}', timeout=60)
cluster.shutdown()
"""],
            check=False, timeout=120,
        )  # fmt: skip
