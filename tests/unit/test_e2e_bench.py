"""``mdgw bench e2e``'s pure parts: hop summaries, goals, the rate search; the venue's
messages as the ITCH 5.0 specification lays them out."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hdrh.histogram import HdrHistogram

from feedhandlers.venues.itch.parse import ItchParser
from mdgw.e2e.report import Goal, HopSummary, Search, goal_met, summarize, within
from mdgw.e2e.venue import since_midnight_ns, stock_directory, trade

MS = 1_000_000


def _histogram(values_ms: list[float]) -> HdrHistogram:
    histogram = HdrHistogram(1, 60_000_000_000, 3)
    for value in values_ms:
        histogram.record_value(int(value * MS))
    return histogram


def test_a_hop_summary_reads_percentiles_in_milliseconds() -> None:
    summary = summarize(_histogram([1.0] * 98 + [20.0, 50.0]))
    assert summary.count == 100
    assert summary.p50_ms == pytest.approx(1.0, rel=1e-3)
    assert summary.p99_ms == pytest.approx(20.0, rel=1e-3)
    assert summary.max_ms == pytest.approx(50.0, rel=1e-3)


def test_an_empty_hop_is_not_measured_rather_than_met() -> None:
    empty = summarize(_histogram([]))
    assert empty.count == 0
    assert goal_met(Goal("g", "hop", 3.0, 10.0), empty) is None
    assert within(2.0, empty, summarize(_histogram([1.0]))) is None


def test_a_goal_needs_both_its_p50_and_its_p99() -> None:
    goal = Goal("feed -> client", "receipt_client", 3.0, 10.0)
    assert goal_met(goal, HopSummary(10, 2.0, 5.0, 9.0, 9.5, 12.0)) is True
    assert goal_met(goal, HopSummary(10, 2.0, 5.0, 11.0, 12.0, 12.0)) is False
    assert goal_met(goal, HopSummary(10, 4.0, 5.0, 9.0, 9.5, 12.0)) is False


def test_within_its_ceiling_compares_p50_and_p99_with_a_floor_of_a_tenth_of_a_ms() -> None:
    ceiling = HopSummary(10, 1.0, 2.0, 4.0, 5.0, 6.0)
    assert within(2.0, HopSummary(10, 2.0, 3.0, 8.0, 9.0, 9.0), ceiling) is True
    assert within(2.0, HopSummary(10, 2.1, 3.0, 8.0, 9.0, 9.0), ceiling) is False
    tiny = HopSummary(10, 0.01, 0.01, 0.02, 0.02, 0.02)
    assert within(2.0, HopSummary(10, 0.15, 0.2, 0.2, 0.2, 0.2), tiny) is True


def test_the_search_halves_the_interval_towards_the_highest_rate_that_met() -> None:
    search = Search(1000.0, 10000.0)
    assert search.next_rate() == 5500
    search = search.after(5500, met=False)
    assert (search.low, search.high) == (1000.0, 5500)
    search = search.after(search.next_rate(), met=True)
    assert (search.low, search.high) == (3250, 5500)
    assert not search.settled(100)
    assert Search(3250, 3300).settled(100)


def test_the_venue_trade_is_a_44_byte_itch_p_message_stamped_with_its_due_time() -> None:
    # ITCH 5.0, 1.3.2 Trade Message (Non-Cross): 44 bytes, timestamp in bytes 5-10
    due_ns = int(datetime(2026, 3, 10, 14, 30, tzinfo=UTC).timestamp()) * 10**9 + 123_456_789
    message = trade(1, "ZTEST000", 1_234_500, 7, since_midnight_ns(due_ns))
    assert len(message) == 44
    assert message[:1] == b"P"
    # 14:30 UTC on 10 March 2026 is 10:30 in New York (EDT since 8 March)
    assert int.from_bytes(message[5:11], "big") == (10 * 3600 + 30 * 60) * 10**9 + 123_456_789
    parser = ItchParser()
    parser.parse(stock_directory(1, "ZTEST000"), due_ns)
    (tick,) = parser.parse(message, due_ns + 5_000).ticks
    assert (tick.symbol, tick.event_time_ns, tick.last_nanos) == (
        "ZTEST000",
        due_ns,
        123_450_000_000,
    )
