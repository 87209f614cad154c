import random

from hypothesis import given
from hypothesis import strategies as st

from marketcore.ticks import Tick
from tickwriter.daily_bars import DailyBar, bar_timestamps, fold, merge
from tickwriter.rows import TickRow, tick_row

# (price, event time offset in µs, cumulative volume)
_TICKS = st.lists(
    st.tuples(st.integers(1, 10**12), st.integers(1, 10**6), st.integers(0, 10**9)),
    min_size=1,
    max_size=40,
)


def _rows(ticks: list[tuple[int, int, int]]) -> list[TickRow]:
    return [
        tick_row(Tick("X", "Y", last_micros=price, volume_micros=volume,
                      event_time_ns=1_700_000_000 * 10**9 + at * 1000,
                      feed_handler_id="f", feed_sequence=n + 1), b"")
        for n, (price, at, volume) in enumerate(ticks)
    ]  # fmt: skip


@given(_TICKS)
def test_bar_is_open_high_low_close_by_event_time(ticks: list[tuple[int, int, int]]) -> None:
    (bar,) = fold(_rows(ticks)).values()
    assert bar.high_micros == max(price for price, _, _ in ticks)
    assert bar.low_micros == min(price for price, _, _ in ticks)
    # earliest event opens, latest closes; on equal event times the larger price is kept
    assert bar.open_micros == min(ticks, key=lambda tick: (tick[1], -tick[0]))[0]
    assert bar.close_micros == max(ticks, key=lambda tick: (tick[1], tick[0]))[0]
    assert bar.volume_micros == max(volume for _, _, volume in ticks)


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


def _cassandra_upsert(cells: dict[str, tuple[int, int]], bar: DailyBar) -> None:
    """Cassandra's rule per cell: the highest write timestamp wins; on a tie, the larger value."""
    stamps = bar_timestamps(bar)
    for column, stamp, value in (
        ("open_micros", stamps.open, bar.open_micros),
        ("first_event_ns", stamps.open, bar.first_event_ns),
        ("close_micros", stamps.close, bar.close_micros),
        ("last_event_ns", stamps.close, bar.last_event_ns),
        ("high_micros", stamps.high, bar.high_micros),
        ("low_micros", stamps.low, bar.low_micros),
        ("volume_micros", stamps.volume, bar.volume_micros),
    ):
        assert 0 <= stamp < 2**63, "a valid CQL write timestamp"
        cells[column] = max(cells.get(column, (stamp, value)), (stamp, value))


@given(_TICKS, st.randoms(), st.integers(1, 5))
def test_blind_upserts_in_any_order_leave_the_merged_bar(
    ticks: list[tuple[int, int, int]], rng: random.Random, writers: int
) -> None:
    """Writers that never read the stored bar, each upserting partial bars in any order
    (and some twice), leave exactly the bar of all the ticks."""
    rows = _rows(ticks)
    partial_bars = [bar for row in rows for bar in fold([row]).values()]
    partial_bars += rng.sample(partial_bars, len(partial_bars) // 2)  # delivered twice
    rng.shuffle(partial_bars)
    cells: dict[str, tuple[int, int]] = {}
    for start in range(writers):  # each writer folds its share first, as the pipeline does
        for bar in fold_bars(partial_bars[start::writers]):
            _cassandra_upsert(cells, bar)
    (expected,) = fold(rows).values()
    stored = {column: value for column, (_stamp, value) in cells.items()}
    assert stored == {
        "open_micros": expected.open_micros,
        "first_event_ns": expected.first_event_ns,
        "close_micros": expected.close_micros,
        "last_event_ns": expected.last_event_ns,
        "high_micros": expected.high_micros,
        "low_micros": expected.low_micros,
        "volume_micros": expected.volume_micros,
    }


def fold_bars(bars: list[DailyBar]) -> list[DailyBar]:
    merged: DailyBar | None = None
    for bar in bars:
        merged = merge(merged, bar)
    return [] if merged is None else [merged]


def test_quotes_without_trades_use_the_mid() -> None:
    row = tick_row(Tick("X", "Y", bid_micros=100, ask_micros=102, event_time_ns=1), b"")
    (bar,) = fold([row]).values()
    assert bar.open_micros == bar.close_micros == 101
