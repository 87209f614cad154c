import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from cassandra.cluster import Session

from financial.marketdata.v2.prices_pb2 import PriceUpdate
from marketcore.tick_identity import tick_timeuuid
from marketcore.trading_calendar import trade_date_text
from marketinfra.cassandra import Consistency, connect, prepare
from marketinfra.cql_decimal import CqlDecimal
from marketinfra.errors import SchemaApplyError
from marketinfra.schema import apply_schema
from marketinfra.settings import CassandraSettings
from tests.support import price_update

_INSERT = """
INSERT INTO tick_data (exchange, symbol, trade_date, tick_time, bid, ask, last, volume,
                       bid_size, ask_size, last_size, event_time_ns, received_time_ns,
                       feed_handler_id, payload)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
_SELECT = """
SELECT tick_time, bid, ask, last, volume, bid_size, ask_size, last_size, payload FROM tick_data
WHERE exchange = ? AND symbol = ? AND trade_date = ?
"""
# (column, the exact value as text): sub-micro prices and sizes, a volume of ~1e15 units
_EXACT = (
    ("bid", "0.000022880"),
    ("ask", "0.000022890"),
    ("last", "0.000022881"),
    ("volume", "999999999999999.123456789"),
    ("bid_size", "0.000000001"),
    ("ask_size", "12.345678901"),
    ("last_size", "9223372036854775807.999999999"),  # the top of the wire range
)


def test_tick_row_is_written_and_read_back_exactly(cassandra_session: Session) -> None:
    """The decimal columns as the tick writer writes them (``CqlDecimal``, scale 9) read back
    as the same numbers to the last digit, at scale 9; a second write is the same row."""
    exact = {column: Decimal(text) for column, text in _EXACT}
    tick = price_update(
        exchange="KRAKEN",
        symbol="ADA/XBT",
        **dict(_EXACT),
        event_time_ns=1_710_000_000_123_456_789,
        feed_handler_id="fh-test",
        feed_sequence=7,
    )
    trade_date = trade_date_text(tick.exchange, tick.event_time_ns)
    tick_time = tick_timeuuid(tick.event_time_ns, b"fh-test:7")
    insert = prepare(cassandra_session, _INSERT, Consistency.TICK_WRITE)
    decimals = [CqlDecimal(int(exact[column].scaleb(9))) for column, _ in _EXACT]
    values = (
        tick.exchange, tick.symbol, trade_date, tick_time, *decimals, tick.event_time_ns,
        tick.received_time_ns, tick.feed_handler_id, tick.SerializeToString(),
    )  # fmt: skip
    # Writing the same tick twice (a replay) must leave one row.
    cassandra_session.execute(insert, values)
    cassandra_session.execute(insert, values)

    select = prepare(cassandra_session, _SELECT, Consistency.READ)
    rows = list(cassandra_session.execute(select, (tick.exchange, tick.symbol, trade_date)))
    assert len(rows) == 1
    assert rows[0].tick_time == tick_time
    for column, text in _EXACT:
        stored = getattr(rows[0], column)
        assert stored == Decimal(text), column
        assert stored.as_tuple().exponent == -9, f"{column} kept at scale 9"
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
from tests.support import price_update
cluster, session = connect(CassandraSettings(), use_keyspace=False)
session.execute('DROP KEYSPACE IF EXISTS {keyspace}', timeout=60)
cluster.shutdown()
"""],
            check=False, timeout=120,
        )  # fmt: skip


@pytest.fixture
def throwaway_keyspace(
    cassandra_base_settings: CassandraSettings,
) -> Iterator[tuple[Session, CassandraSettings]]:
    """A session of its own (apply_schema switches its keyspace) and settings naming a
    keyspace of this test only, dropped afterwards."""
    settings = cassandra_base_settings.model_copy(
        update={"keyspace": f"test_ks_{uuid.uuid4().hex[:10]}"}
    )
    cluster, session = connect(settings, use_keyspace=False)
    try:
        yield session, settings
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", timeout=60)
        cluster.shutdown()


def _tables(session: Session, keyspace: str) -> dict[str, dict[str, str]]:
    """Every table of ``keyspace`` with its columns' CQL types."""
    rows = session.execute(
        "SELECT table_name, column_name, type FROM system_schema.columns WHERE keyspace_name = %s",
        (keyspace,),
        timeout=30,
    )
    tables: dict[str, dict[str, str]] = {}
    for row in rows:
        tables.setdefault(row.table_name, {})[row.column_name] = row.type
    return tables


def test_a_keyspace_holding_v1_tables_is_refused_naming_what_to_do(
    throwaway_keyspace: tuple[Session, CassandraSettings],
) -> None:
    session, settings = throwaway_keyspace
    keyspace = settings.keyspace
    session.execute(
        f"CREATE KEYSPACE {keyspace} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        timeout=60,
    )
    # the v1 table: int64 micros (cql/001_tick_data.cql before v2)
    session.execute(
        f"CREATE TABLE {keyspace}.tick_data (exchange text, symbol text, trade_date text, "
        "tick_time timeuuid, bid_micros bigint, ask_micros bigint, payload blob, "
        "PRIMARY KEY ((exchange, symbol, trade_date), tick_time))",
        timeout=60,
    )
    with pytest.raises(SchemaApplyError) as caught:
        apply_schema(session, settings)
    message = str(caught.value)
    assert f"keyspace {keyspace} holds v1 tables" in message
    assert "(tick_data)" in message
    assert "set CASSANDRA_KEYSPACE to a new keyspace (default market_data_v2)" in message
    # nothing was added beside the v1 table, and it was left as it was
    assert _tables(session, keyspace) == {
        "tick_data": {
            "exchange": "text", "symbol": "text", "trade_date": "text", "tick_time": "timeuuid",
            "bid_micros": "bigint", "ask_micros": "bigint", "payload": "blob",
        }
    }  # fmt: skip

    # the command says the same and fails
    result = subprocess.run(
        [sys.executable, "-m", "mdgw", "schema", "apply", "--keyspace", keyspace],
        env={**os.environ}, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 1, result.stdout
    assert f"mdgw schema: keyspace: keyspace {keyspace} holds v1 tables" in result.stderr
    assert "CASSANDRA_KEYSPACE" in result.stderr


def test_applying_v2_twice_to_a_new_keyspace_gives_the_same_tables(
    throwaway_keyspace: tuple[Session, CassandraSettings],
) -> None:
    session, settings = throwaway_keyspace
    first = apply_schema(session, settings)
    tables = _tables(session, settings.keyspace)
    second = apply_schema(session, settings)
    assert second == first
    assert _tables(session, settings.keyspace) == tables
    assert {key: tables[key[0]].get(key[1]) for key in _V2_COLUMNS} == _V2_COLUMNS
    assert not [
        (table, column)
        for table, columns in tables.items()
        for column in columns
        if column.endswith("_micros")
    ]


# the v2 types of the exact columns (cql/001, 002, 003, 005)
_V2_COLUMNS = {
    **{("tick_data", c): "decimal" for c in ("bid", "ask", "last", "volume")},
    **{("tick_data", c): "decimal" for c in ("bid_size", "ask_size", "last_size")},
    **{("trade_executions", c): "decimal" for c in ("quantity", "price", "fees")},
    **{("order_book_snapshots", c): "decimal" for c in ("bid", "bid_size", "ask", "ask_size")},
    **{
        ("daily_bars", c): "frozen<tuple<bigint, int>>"
        for c in ("open", "high", "low", "close", "volume")
    },
}


def test_daily_bars_cells_never_expire(
    cassandra_session: Session, cassandra_settings: CassandraSettings
) -> None:
    """The blind-write merge of daily_bars relies on ties of equal write timestamps being
    decided by the cells' bytes, which holds only for cells without a TTL (cql/005)."""
    row = cassandra_session.execute(
        "SELECT default_time_to_live FROM system_schema.tables "
        "WHERE keyspace_name = %s AND table_name = 'daily_bars'",
        (cassandra_settings.keyspace,),
    ).one()
    assert row.default_time_to_live == 0
