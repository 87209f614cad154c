import random
import struct

from hypothesis import given
from hypothesis import strategies as st

from marketcore.fixed_point import INT64_MAX, NANOS_LIMIT, NANOS_PER_UNIT
from marketcore.ticks import Tick
from tickwriter.daily_bars import DailyBar, bar_cells, bar_timestamps, fold, merge
from tickwriter.rows import TickRow, tick_row

# Values (nanos) over the whole wire range, with many exact ties on whole units: the same
# units with any nanos (so only the nanos tell two values apart), sub-micro prices and the
# top of the range (units at and just below int64 max).
_TIE_UNITS = st.sampled_from([0, 1, 100, 64_123, INT64_MAX - 1, INT64_MAX])
_TIED_VALUE = st.builds(
    lambda units, nanos: units * NANOS_PER_UNIT + nanos,
    _TIE_UNITS,
    st.one_of(st.integers(0, NANOS_PER_UNIT - 1), st.sampled_from([0, 1, 999_999_999])),
)
_PRICE = st.one_of(
    st.integers(1, 10**12), _TIED_VALUE, st.integers(1, NANOS_LIMIT), st.integers(1, 30_000)
).filter(lambda price: price > 0)
_VOLUME = st.one_of(st.integers(0, 10**24), _TIED_VALUE, st.integers(0, NANOS_LIMIT))
# event time offsets in µs: a few shared instants (ties on open and close) or any
_AT = st.one_of(st.integers(1, 4), st.integers(1, 10**6))
# (price, event time offset in µs, cumulative volume)
_TICKS = st.lists(st.tuples(_PRICE, _AT, _VOLUME), min_size=1, max_size=40)


def _rows(ticks: list[tuple[int, int, int]]) -> list[TickRow]:
    return [
        tick_row(Tick("X", "Y", last_nanos=price, volume_nanos=volume,
                      event_time_ns=1_700_000_000 * 10**9 + at * 1000,
                      feed_handler_id="f", feed_sequence=n + 1), b"")
        for n, (price, at, volume) in enumerate(ticks)
    ]  # fmt: skip


@given(_TICKS)
def test_bar_is_open_high_low_close_by_event_time(ticks: list[tuple[int, int, int]]) -> None:
    (bar,) = fold(_rows(ticks)).values()
    assert bar.high_nanos == max(price for price, _, _ in ticks)
    assert bar.low_nanos == min(price for price, _, _ in ticks)
    # earliest event opens, latest closes; on equal event times the larger price is kept
    assert bar.open_nanos == min(ticks, key=lambda tick: (tick[1], -tick[0]))[0]
    assert bar.close_nanos == max(ticks, key=lambda tick: (tick[1], tick[0]))[0]
    assert bar.volume_nanos == max(volume for _, _, volume in ticks)


@given(_TICKS)
def test_fold_and_merge_keep_every_value_exactly(ticks: list[tuple[int, int, int]]) -> None:
    """No value of the bar is rounded or approximated: each is one of the ticks' own values,
    to the nano, whatever its size (folded at once or merged one tick at a time)."""
    rows = _rows(ticks)
    (folded,) = fold(rows).values()
    merged = None
    for row in rows:
        (one,) = fold([row]).values()
        merged = merge(merged, one)
    assert merged == folded
    prices = {price for price, _, _ in ticks}
    assert {folded.open_nanos, folded.high_nanos, folded.low_nanos, folded.close_nanos} <= prices
    assert folded.volume_nanos in {volume for _, _, volume in ticks}


@given(_TICKS, st.randoms())
def test_merging_is_idempotent_and_order_free(
    ticks: list[tuple[int, int, int]], rng: random.Random
) -> None:
    rows = _rows(ticks)
    (whole,) = fold(rows).values()
    shuffled = list(rows)
    rng.shuffle(shuffled)
    half = len(shuffled) // 2
    parts = [bar for part in (shuffled[:half], shuffled[half:]) for bar in fold(part).values()]
    combined = None
    for bar in parts:
        combined = merge(combined, bar)
    assert combined == whole
    assert merge(whole, whole) == whole  # a replay changes nothing
    assert fold(rows[half:], into=fold(rows[:half])) == fold(rows)


# -- a model of Cassandra, written from its rules (not from our code) -----------------------
# Per cell, the higher write timestamp wins; on equal timestamps (no tombstones, no TTL here)
# the cell whose value bytes are larger, compared as unsigned bytes (Cells.resolveRegular,
# ValueAccessor.compare in Cassandra 5.0). A tuple<bigint, int> value is serialized as each
# component's 4-byte length then its big-endian two's complement bytes; a bigint as 8 bytes.


def _tuple_bytes(value: tuple[int, int]) -> bytes:
    units, nanos = value
    return struct.pack(">iqii", 8, units, 4, nanos)


def _bigint_bytes(value: int) -> bytes:
    return struct.pack(">q", value)


def _cassandra_upsert(cells: dict[str, tuple[int, bytes]], bar: DailyBar) -> None:
    stamps = bar_timestamps(bar)
    stored = bar_cells(bar)
    for column, stamp, value in (
        ("open", stamps.open, _tuple_bytes(stored.open)),
        ("first_event_ns", stamps.open, _bigint_bytes(bar.first_event_ns)),
        ("close", stamps.close, _tuple_bytes(stored.close)),
        ("last_event_ns", stamps.close, _bigint_bytes(bar.last_event_ns)),
        ("high", stamps.high, _tuple_bytes(stored.high)),
        ("low", stamps.low, _tuple_bytes(stored.low)),
        ("volume", stamps.volume, _tuple_bytes(stored.volume)),
    ):
        # CQL's USING TIMESTAMP takes [-(2**63 - 1), 2**63 - 1]; ours are never negative
        assert 0 <= stamp <= INT64_MAX, "a valid CQL write timestamp"
        cells[column] = max(cells.get(column, (stamp, value)), (stamp, value))


def _read(cells: dict[str, tuple[int, bytes]]) -> dict[str, int]:
    """The stored bar's values as cql/005_daily_bars.cql defines them: (units, nanos) is
    units + nanos / 1e9, and low keeps ~nanos."""
    values = {}
    for column, (_stamp, raw) in cells.items():
        if column.endswith("_ns"):
            (values[column],) = struct.unpack(">q", raw)
            continue
        _, units, _, nanos = struct.unpack(">iqii", raw)
        values[column] = units * NANOS_PER_UNIT + (-1 - nanos if column == "low" else nanos)
    return values


@given(_TICKS, st.randoms(), st.integers(1, 5))
def test_blind_upserts_in_any_order_leave_the_merged_bar(
    ticks: list[tuple[int, int, int]], rng: random.Random, writers: int
) -> None:
    """Writers that never read the stored bar, each upserting partial bars in any order
    (and some twice), leave exactly the bar of all the ticks, ties included."""
    rows = _rows(ticks)
    partial_bars = [bar for row in rows for bar in fold([row]).values()]
    partial_bars += rng.sample(partial_bars, len(partial_bars) // 2)  # delivered twice
    rng.shuffle(partial_bars)
    cells: dict[str, tuple[int, bytes]] = {}
    for start in range(writers):  # each writer folds its share first, as the pipeline does
        for bar in fold_bars(partial_bars[start::writers]):
            _cassandra_upsert(cells, bar)
    (expected,) = fold(rows).values()
    assert _read(cells) == {
        "open": expected.open_nanos,
        "first_event_ns": expected.first_event_ns,
        "close": expected.close_nanos,
        "last_event_ns": expected.last_event_ns,
        "high": expected.high_nanos,
        "low": expected.low_nanos,
        "volume": expected.volume_nanos,
    }


def fold_bars(bars: list[DailyBar]) -> list[DailyBar]:
    merged: DailyBar | None = None
    for bar in bars:
        merged = merge(merged, bar)
    return [] if merged is None else [merged]


def test_quotes_without_trades_use_the_mid() -> None:
    row = tick_row(Tick("X", "Y", bid_nanos=100, ask_nanos=102, event_time_ns=1), b"")
    (bar,) = fold([row]).values()
    assert bar.open_nanos == bar.close_nanos == 101


def test_cells_are_units_and_nanos_with_low_inverted() -> None:
    """cql/005: (units, nanos) = units + nanos / 1e9; low stores ~nanos = -1 - nanos."""
    top = INT64_MAX * NANOS_PER_UNIT + 999_999_999  # 9223372036854775807.999999999
    bar = DailyBar("X", "Y", "2025-11-22", 22_880, top, 22_880, 22_890, 10**24, 1, 2)
    cells = bar_cells(bar)
    assert (cells.open, cells.high, cells.low, cells.close, cells.volume) == (
        (0, 22_880),
        (INT64_MAX, 999_999_999),
        (0, -22_881),
        (0, 22_890),
        (10**15, 0),
    )
    stamps = bar_timestamps(bar)
    assert (stamps.open, stamps.close, stamps.high, stamps.low, stamps.volume) == (
        INT64_MAX - 1,
        2,
        INT64_MAX,
        INT64_MAX,
        10**15,
    )
