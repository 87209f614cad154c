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


def test_unthrottled_next_ready_is_the_first_in_line() -> None:
    outbox: Outbox[str, int] = Outbox(depth=2)
    assert outbox.next_ready_ns() is None
    outbox.offer("A", 1, now_ns=5)
    outbox.offer("B", 2, now_ns=7)
    outbox.offer("A", 3, now_ns=9)
    assert outbox.next_ready_ns() == 5
    assert outbox.take(now_ns=10, max_count=1) == [1]
    assert outbox.next_ready_ns() == 7  # B waited longer than A's second value
    assert outbox.take(now_ns=10, max_count=1) == [2]
    assert outbox.next_ready_ns() == 9


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


def test_time_inside_the_throttle_window_is_not_lag() -> None:
    outbox: Outbox[str, int] = Outbox(throttle_ns=10_000 * MS, max_lag_ns=1_000 * MS)
    outbox.offer("AAPL", 1, now_ns=0)
    assert outbox.take(now_ns=0, max_count=10) == [1]
    outbox.offer("AAPL", 2, now_ns=1 * MS)
    assert outbox.lag_exceeded(now_ns=9_000 * MS) is None  # waiting by the client's choice
    assert outbox.lag_exceeded(now_ns=10_500 * MS) is None  # ready for 500 ms
    assert outbox.lag_exceeded(now_ns=11_500 * MS) is not None  # ready for 1500 ms


def test_seed_never_overtakes_a_live_value() -> None:
    outbox: Outbox[str, str] = Outbox()
    assert outbox.seed("A", "stored", now_ns=0)
    assert not outbox.seed("A", "stored again", now_ns=1)
    outbox.offer("B", "live", now_ns=2)
    assert not outbox.seed("B", "stored", now_ns=3)  # pending live value
    assert outbox.take(now_ns=4, max_count=10) == ["stored", "live"]
    assert not outbox.seed("B", "stored", now_ns=5)  # live value already sent


def test_offer_reports_a_new_slot_and_drain_ignores_the_throttle() -> None:
    outbox: Outbox[str, int] = Outbox(throttle_ns=1_000 * MS)
    assert outbox.offer("A", 1, now_ns=0)
    assert outbox.take(now_ns=0, max_count=10) == [1]
    assert outbox.offer("A", 2, now_ns=1)
    assert not outbox.offer("A", 3, now_ns=2)  # replaced: the sender needs no wake-up
    assert outbox.offer("B", 4, now_ns=3)
    assert outbox.take(now_ns=4, max_count=10) == [4]  # A still in its window
    assert outbox.drain() == [3]
    assert len(outbox) == 0
    assert outbox.next_ready_ns() is None


@given(
    st.lists(st.tuples(st.sampled_from("ABCDE"), st.integers(0, 3)), max_size=120),
    st.integers(0, 40),
)
def test_take_sends_ready_instruments_longest_waiting_first(steps, throttle_ms: int) -> None:
    """Against a direct model of the rule: sort ready slots by when they started waiting."""
    outbox: Outbox[str, tuple[str, int]] = Outbox(throttle_ns=throttle_ms * MS)
    model_pending: dict[str, tuple[int, tuple[str, int]]] = {}
    model_sent: dict[str, int] = {}
    for step, (key, takes) in enumerate(steps):
        now = step * 7 * MS
        outbox.offer(key, (key, step), now)
        since = model_pending[key][0] if key in model_pending else now
        model_pending[key] = (since, (key, step))
        if takes:
            ready = sorted(
                (since, k)
                for k, (since, _) in model_pending.items()
                if now - model_sent.get(k, now - throttle_ms * MS) >= throttle_ms * MS
            )[:takes]
            expected = [model_pending.pop(k)[1] for _, k in ready]
            for _, k in ready:
                model_sent[k] = now
            assert outbox.take(now, takes) == expected


@given(_OFFERS, st.integers(1, 7), st.integers(1, 5), st.integers(2, 6))
def test_with_depth_order_holds_and_the_latest_value_arrives(
    offers, take_every: int, batch: int, depth: int
) -> None:
    sent = _drain(Outbox(depth=depth), offers, take_every, batch)
    for key in "ABCD":
        values = [value for k, value in sent if k == key]
        assert values == sorted(set(values)), "an older value after a newer one, or twice"
        offered = [value for k, value in offers if k == key]
        if offered:
            assert values[-1] == offered[-1], "the latest value must reach the client"


def test_depth_keeps_a_burst_for_a_client_that_keeps_up() -> None:
    outbox: Outbox[str, int] = Outbox(depth=4)
    for value in range(1, 11):  # a burst of one instrument, taken after it all arrived
        outbox.offer("AAPL", value, now_ns=value)
    assert len(outbox) == 4
    assert outbox.take(now_ns=20, max_count=100) == [1, 2, 3, 10]  # oldest kept, newest last
    assert outbox.conflated == 6
    assert len(outbox) == 0


def test_depth_takes_round_robin_so_one_busy_instrument_cannot_starve_others() -> None:
    outbox: Outbox[str, str] = Outbox(depth=8)
    for n in range(5):
        outbox.offer("BUSY", f"b{n}", now_ns=n)
    outbox.offer("QUIET", "q0", now_ns=10)
    assert outbox.take(now_ns=11, max_count=3) == ["b0", "q0", "b1"]
    assert outbox.take(now_ns=11, max_count=10) == ["b2", "b3", "b4"]


def test_a_queue_older_than_its_max_age_collapses_to_the_latest_value() -> None:
    outbox: Outbox[str, int] = Outbox(depth=8, queue_max_age_ns=100 * MS, max_lag_ns=1_000 * MS)
    for value in range(1, 6):
        outbox.offer("AAPL", value, now_ns=value * MS)
    outbox.offer("MSFT", 1, now_ns=150 * MS)
    outbox.offer("MSFT", 2, now_ns=160 * MS)
    assert outbox.lag_exceeded(now_ns=200 * MS) is None  # behind, so conflated, not cut off
    assert outbox.conflated == 4
    assert outbox.take(now_ns=200 * MS, max_count=10) == [5, 1, 2]  # MSFT's queue is young
    assert outbox.lag_exceeded(now_ns=200 * MS) is None


def test_a_client_behind_even_on_the_latest_values_is_cut_off() -> None:
    outbox: Outbox[str, int] = Outbox(depth=8, queue_max_age_ns=100 * MS, max_lag_ns=500 * MS)
    for value in range(1, 4):
        outbox.offer("AAPL", value, now_ns=value * MS)
    assert outbox.lag_exceeded(now_ns=600 * MS) is not None  # pending since 1 ms


def test_a_client_that_stopped_reading_is_cut_off_while_the_feed_flows() -> None:
    """Collapsing keeps the queue's age: fresh values do not make a stalled client look live."""
    outbox: Outbox[str, int] = Outbox(depth=4, queue_max_age_ns=100 * MS, max_lag_ns=500 * MS)
    verdict = None
    for step in range(1, 100):  # a value every 10 ms, checked like the watchdog does
        outbox.offer("AAPL", step, now_ns=step * 10 * MS)
        if step % 10 == 0:
            verdict = verdict or outbox.lag_exceeded(now_ns=step * 10 * MS)
    assert verdict is not None
    assert len(outbox) <= 4
