"""Duplicate ticks (gateway.core.dedupe): Kafka delivers at least once, so the same record may
come twice, long after the first; the gateway takes each tick once, per instrument and feed
handler, with bounded memory whatever the producer writes."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.core.dedupe import SeenTicks
from gateway.fakes import MemoryQuoteStore, decoded
from gateway.market import MarketData
from gateway.metrics import REGISTRY
from marketcore.instruments import InstrumentKey
from tests.support import price_update

AAPL = InstrumentKey("NASDAQ", "AAPL")
MSFT = InstrumentKey("NASDAQ", "MSFT")
T0 = 1_700_000_000_000_000_000

Tick = tuple[InstrumentKey, str, int, int]  # instrument, feed handler id, sequence, event ns


def _duplicate(seen: SeenTicks, key: InstrumentKey, feed: str, sequence: int, ns: int) -> bool:
    return seen.is_duplicate(key.exchange, key.symbol, feed, sequence, ns)


def _taken(seen: SeenTicks, ticks: list[Tick]) -> list[Tick]:
    return [tick for tick in ticks if not _duplicate(seen, *tick)]


def test_a_redelivered_tick_is_dropped_and_the_next_one_taken() -> None:
    seen = SeenTicks()
    ticks = [(AAPL, "fh-1", 1, T0), (AAPL, "fh-1", 2, T0 + 1), (AAPL, "fh-1", 1, T0)]
    ticks.append((AAPL, "fh-1", 3, T0 + 2))
    assert _taken(seen, ticks) == [ticks[0], ticks[1], ticks[3]]


def test_instruments_and_feed_handlers_count_apart() -> None:
    seen = SeenTicks()
    ticks = [(AAPL, "fh-1", 5, T0), (MSFT, "fh-1", 5, T0), (AAPL, "fh-2", 5, T0)]
    assert _taken(seen, ticks) == ticks


def test_a_tick_without_a_sequence_is_never_a_duplicate() -> None:
    seen = SeenTicks()
    assert _taken(seen, [(AAPL, "fh-1", 0, T0)] * 3) == [(AAPL, "fh-1", 0, T0)] * 3


def test_a_handler_restarted_under_a_fixed_id_is_taken_as_it_counts_from_one() -> None:
    seen = SeenTicks()
    before = [(AAPL, "fixed", n, T0 + n) for n in range(1, 6)]
    after = [(AAPL, "fixed", n, T0 + 1_000 + n) for n in range(1, 4)]
    redelivered = (AAPL, "fixed", 2, T0 + 1_002)
    assert _taken(seen, [*before, *after, redelivered]) == [*before, *after]


def test_memory_stays_within_its_bound_under_invented_ids_and_symbols() -> None:
    seen = SeenTicks(max_entries=30)
    for n in range(1_000):
        seen.is_duplicate("X", f"S{n % 50}", f"spoof-{n}", 1, T0)
    assert len(seen) == 30
    assert seen.evicted == 1_000 - 30


def test_a_forgotten_feed_is_entered_again_by_its_next_tick_and_loses_none() -> None:
    seen = SeenTicks(max_entries=4)
    taken = 0
    for n in range(1, 101):
        taken += not _duplicate(seen, AAPL, "real", n, T0 + n)
        for spoof in range(4):  # enough invented ids between two ticks to push it out
            _duplicate(seen, AAPL, f"spoof-{n}-{spoof}", 1, T0)
    assert taken == 100


# -- properties -------------------------------------------------------------------------------

feeds = st.sampled_from(["fh-a", "fh-b", "fh-c"])
instruments = st.sampled_from([AAPL, MSFT, InstrumentKey("COINBASE", "BTC-USD")])


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Tick], list[Tick]]:
    """Several feeds' ticks, interleaved (each stream in order, as a partition keeps it), with
    redeliveries of earlier ticks injected anywhere later: (originals, delivered)."""
    streams = draw(st.lists(st.tuples(instruments, feeds), min_size=1, max_size=4, unique=True))
    counts = draw(st.lists(st.integers(1, 8), min_size=len(streams), max_size=len(streams)))
    turns = draw(st.permutations([i for i, count in enumerate(counts) for _ in range(count)]))
    next_sequence = [1] * len(streams)
    originals: list[Tick] = []
    for stream in turns:
        key, feed = streams[stream]
        n = next_sequence[stream]
        next_sequence[stream] += 1
        originals.append((key, feed, n, T0 + n * 10))
    # each copy: (which original, how many deliveries after it): a retry's copy, any time later
    copies = draw(st.lists(st.tuples(st.integers(0, len(originals) - 1), st.integers(0, 40))))
    delivered = list(originals)
    for index, later in sorted(copies, key=lambda copy: -copy[0]):
        position = min(len(delivered), index + 1 + later)
        delivered.insert(position, originals[index])
    return originals, delivered


@given(deliveries())
def test_each_tick_is_taken_once_whatever_the_redeliveries(
    case: tuple[list[Tick], list[Tick]],
) -> None:
    originals, delivered = case
    assert _taken(SeenTicks(), delivered) == originals


@given(deliveries(), st.integers(1, 3))
def test_a_fresh_tick_is_never_dropped_however_small_the_bound(
    case: tuple[list[Tick], list[Tick]], max_entries: int
) -> None:
    originals, delivered = case
    taken = _taken(SeenTicks(max_entries), delivered)
    assert set(originals) <= set(taken)  # duplicates may slip past an eviction, never a loss


@given(st.lists(st.tuples(instruments, feeds, st.integers(1, 20)), max_size=60))
def test_out_of_order_ticks_of_one_feed_are_taken_only_when_newer(
    ticks: list[tuple[InstrumentKey, str, int]],
) -> None:
    """Event time follows the sequence (one feed's counter): what is taken per stream is
    strictly increasing, and every tick newer than all before it is taken."""
    seen = SeenTicks()
    highest: dict[tuple[InstrumentKey, str], int] = {}
    for key, feed, sequence in ticks:
        duplicate = _duplicate(seen, key, feed, sequence, T0 + sequence)
        newer = sequence > highest.get((key, feed), 0)
        assert duplicate is not newer
        if newer:
            highest[(key, feed)] = sequence


# -- wired into the gateway's market state ----------------------------------------------------


def _duplicates_counted() -> float:
    return REGISTRY.get_sample_value("gateway_feed_records_total", {"result": "duplicate"}) or 0.0


def test_market_data_drops_a_redelivered_tick_before_the_view_and_streams() -> None:
    market = MarketData(MemoryQuoteStore(), [], 5 * 10**9, started_ns=T0, wall_ns=lambda: T0)
    heard: list[int] = []
    market.listeners.append(lambda updates: heard.extend(u.tick.feed_sequence for u in updates))
    ticks = [
        price_update(
            exchange="NASDAQ",
            symbol="AAPL",
            bid_nanos=100_000_000_000 + n,
            ask_nanos=100_100_000_000,
            event_time_ns=T0 + n,
            received_time_ns=T0 + n,
            feed_handler_id="fh-1",
            feed_sequence=n,
        )
        for n in (1, 2)
    ]
    before = _duplicates_counted()
    market.apply(decoded([ticks[0], ticks[1], ticks[0], ticks[1]]))
    assert heard == [1, 2]
    assert _duplicates_counted() - before == 2
