from hypothesis import given
from hypothesis import strategies as st

from marketcore.ticks import Tick
from tickwriter.daily_bars import fold, merge
from tickwriter.rows import tick_row

_PRICES = st.lists(
    st.tuples(st.integers(1, 10**12), st.integers(1, 10**6)), min_size=1, max_size=40
)


def _rows(prices: list[tuple[int, int]]):
    return [
        tick_row(Tick("X", "Y", last_micros=price, event_time_ns=1_700_000_000 * 10**9 + at * 1000,
                      feed_handler_id="f", feed_sequence=n + 1), b"")
        for n, (price, at) in enumerate(prices)
    ]  # fmt: skip


@given(_PRICES)
def test_bar_is_open_high_low_close_by_event_time(prices: list[tuple[int, int]]) -> None:
    (bar,) = fold(_rows(prices)).values()
    by_time = sorted(prices, key=lambda item: (item[1], item[0]))
    assert bar.high_micros == max(price for price, _ in prices)
    assert bar.low_micros == min(price for price, _ in prices)
    assert bar.open_micros == by_time[0][0]
    assert bar.close_micros == max(prices, key=lambda item: (item[1], item[0]))[0]


@given(_PRICES, st.randoms())
def test_merging_is_idempotent_and_order_free(prices: list[tuple[int, int]], rng) -> None:
    rows = _rows(prices)
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


def test_quotes_without_trades_use_the_mid() -> None:
    row = tick_row(Tick("X", "Y", bid_micros=100, ask_micros=102, event_time_ns=1), b"")
    (bar,) = fold([row]).values()
    assert bar.open_micros == bar.close_micros == 101
