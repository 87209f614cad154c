import pytest

from marketcore.ticks import Tick, TickProblem, check_tick

_GOOD = Tick("NASDAQ", "AAPL", bid_nanos=189_000_000, ask_nanos=189_010_000, event_time_ns=1)


def test_a_normal_quote_is_accepted() -> None:
    assert check_tick(_GOOD) is None


@pytest.mark.parametrize(
    ("tick", "problem"),
    [
        (Tick("", "AAPL", last_nanos=1, event_time_ns=1), TickProblem.MISSING_EXCHANGE),
        (Tick("NASDAQ", "", last_nanos=1, event_time_ns=1), TickProblem.MISSING_SYMBOL),
        (Tick("NAS|DAQ", "AAPL", last_nanos=1, event_time_ns=1), TickProblem.BAD_IDENTIFIER),
        (Tick("NASDAQ", "AAPL", bid_nanos=-1, event_time_ns=1), TickProblem.NEGATIVE_PRICE),
        (
            Tick("NASDAQ", "AAPL", last_nanos=1, volume_nanos=-5, event_time_ns=1),
            TickProblem.NEGATIVE_SIZE,
        ),
        (Tick("NASDAQ", "AAPL", event_time_ns=1), TickProblem.NO_PRICE),
        (
            Tick("NASDAQ", "AAPL", bid_nanos=2, ask_nanos=2, event_time_ns=1),
            TickProblem.CROSSED_QUOTE,
        ),
        (Tick("NASDAQ", "AAPL", last_nanos=1), TickProblem.NO_EVENT_TIME),
    ],
)
def test_unusable_ticks_are_refused_with_a_reason(tick: Tick, problem: TickProblem) -> None:
    rejection = check_tick(tick)
    assert rejection is not None
    assert rejection.problem is problem


def test_one_sided_quotes_are_accepted() -> None:
    assert check_tick(Tick("COINBASE", "BTC-USD", bid_nanos=5, event_time_ns=1)) is None
