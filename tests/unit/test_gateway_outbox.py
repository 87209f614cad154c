from hypothesis import given
from hypothesis import strategies as st

from gateway.core.outbox import Outbox

MS = 1_000_000

# (instrument, value) offers; values per instrument increase, as Kafka delivers them per key
_OFFERS = st.lists(st.sampled_from("ABCD"), max_size=200).map(
    lambda keys: [(key, n) for n, key in enumerate(keys)]
)


def _drain(outbox: Outbox[str, tuple[str, int]], offers, take_every: int, batch: int):
    sent = []
    for step, (key, value) in enumerate(offers):
        outbox.offer(key, (key, value), now_ns=step * MS)
        if step % take_every == 0:
            sent += outbox.take(now_ns=step * MS, max_count=batch)
    end = len(offers) * MS + 10_000 * MS
    sent += outbox.take(now_ns=end, max_count=10_000)
    return sent


@given(_OFFERS, st.integers(1, 7), st.integers(1, 5))
def test_latest_value_wins_and_nothing_goes_backwards(offers, take_every: int, batch: int) -> None:
    sent = _drain(Outbox(), offers, take_every, batch)
    for key in "ABCD":
        values = [value for k, value in sent if k == key]
        assert values == sorted(values), "an older value after a newer one"
        offered = [value for k, value in offers if k == key]
        if offered:
            assert values[-1] == offered[-1], "the latest value must reach the client"


@given(_OFFERS)
def test_without_conflation_pressure_every_update_is_sent_in_order(offers) -> None:
    sent = _drain(Outbox(), offers, take_every=1, batch=10)
    assert sent == [(key, value) for key, value in offers]


def test_throttle_sends_each_instrument_at_most_once_per_window() -> None:
    outbox: Outbox[str, int] = Outbox(throttle_ns=100 * MS)
    outbox.offer("AAPL", 1, now_ns=0)
    assert outbox.take(now_ns=0, max_count=10) == [1]
    outbox.offer("AAPL", 2, now_ns=10 * MS)
    outbox.offer("AAPL", 3, now_ns=20 * MS)
    assert outbox.take(now_ns=50 * MS, max_count=10) == []  # inside the window
    assert outbox.next_ready_ns() == 100 * MS
    assert outbox.take(now_ns=100 * MS, max_count=10) == [3]  # latest value, once
    assert outbox.conflated == 1


def test_longest_waiting_instrument_goes_first() -> None:
    outbox: Outbox[str, str] = Outbox()
    outbox.offer("B", "b1", now_ns=1)
    outbox.offer("A", "a1", now_ns=2)
    outbox.offer("B", "b2", now_ns=3)  # replaces b1 but keeps B's place
    assert outbox.take(now_ns=4, max_count=1) == ["b2"]
    assert outbox.take(now_ns=4, max_count=1) == ["a1"]


def test_a_slow_client_is_cut_off_with_a_reason() -> None:
    outbox: Outbox[str, int] = Outbox(max_lag_ns=5_000 * MS)
    outbox.offer("AAPL", 1, now_ns=0)
    for n in range(2, 1000):  # keeps coming, never taken: memory stays one slot
        outbox.offer("AAPL", n, now_ns=n * MS)
    assert len(outbox) == 1
    assert outbox.lag_exceeded(now_ns=4_000 * MS) is None
    reason = outbox.lag_exceeded(now_ns=6_000 * MS)
    assert reason is not None
    assert "client too slow" in reason
    assert "limit 5000 ms" in reason
