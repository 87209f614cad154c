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
        (Tick("NASDAQ", "A" * 65, last_nanos=1, event_time_ns=1), TickProblem.OVERSIZED_FIELD),
        (Tick("N" * 65, "AAPL", last_nanos=1, event_time_ns=1), TickProblem.OVERSIZED_FIELD),
        (
            Tick("NASDAQ", "AAPL", last_nanos=1, event_time_ns=1, venue_symbol="v" * 65),
            TickProblem.OVERSIZED_FIELD,
        ),
        (
            Tick("NASDAQ", "AAPL", last_nanos=1, event_time_ns=1, feed_handler_id="f" * 257),
            TickProblem.OVERSIZED_FIELD,
        ),
    ],
)
def test_unusable_ticks_are_refused_with_a_reason(tick: Tick, problem: TickProblem) -> None:
    rejection = check_tick(tick)
    assert rejection is not None
    assert rejection.problem is problem


def test_one_sided_quotes_are_accepted() -> None:
    assert check_tick(Tick("COINBASE", "BTC-USD", bid_nanos=5, event_time_ns=1)) is None


def test_identifiers_at_their_limits_are_accepted_and_a_refusal_never_quotes_the_value() -> None:
    at_limit = Tick(
        "N" * 64, "A" * 64, last_nanos=1, event_time_ns=1, venue_symbol="v" * 64,
        feed_handler_id="f" * 256,
    )  # fmt: skip
    assert check_tick(at_limit) is None
    rejection = check_tick(Tick("NASDAQ", "S" * 500_000, last_nanos=1, event_time_ns=1))
    assert rejection is not None
    assert rejection.detail == "symbol is 500000 characters; at most 64"
