"""What ``mdgw bench e2e`` reports: percentiles of a hop, the goals, the rate search. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

PERCENTILES = (50.0, 90.0, 99.0, 99.9)


class Histogram(Protocol):
    """What is read of an ``hdrh.histogram.HdrHistogram`` (values in ns)."""

    def get_total_count(self) -> int: ...

    def get_value_at_percentile(self, percentile: float) -> int: ...

    def get_max_value(self) -> int: ...


@dataclass(frozen=True, slots=True)
class HopSummary:
    count: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float

    def row(self) -> str:
        if not self.count:
            return f"{'-':>8} {'-':>8} {'-':>8} {'-':>8} {'-':>9} {0:>8}"
        return (
            f"{self.p50_ms:8.2f} {self.p90_ms:8.2f} {self.p99_ms:8.2f} {self.p999_ms:8.2f} "
            f"{self.max_ms:9.2f} {self.count:8d}"
        )


def summarize(histogram: Histogram) -> HopSummary:
    count = histogram.get_total_count()
    if not count:
        return HopSummary(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    p50, p90, p99, p999 = (histogram.get_value_at_percentile(p) / 1e6 for p in PERCENTILES)
    return HopSummary(count, p50, p90, p99, p999, histogram.get_max_value() / 1e6)


@dataclass(frozen=True, slots=True)
class Goal:
    """``hop`` of the case at ``rate`` ticks/s to ``subscribers`` clients, within limits."""

    name: str
    hop: str
    p50_ms: float
    p99_ms: float


def goal_met(goal: Goal, summary: HopSummary) -> bool | None:
    """None when the hop was not measured."""
    if not summary.count:
        return None
    return summary.p50_ms <= goal.p50_ms and summary.p99_ms <= goal.p99_ms


def within(ratio_limit: float, figure: HopSummary, ceiling: HopSummary) -> bool | None:
    """Whether a hop's p50 and p99 are within ``ratio_limit`` times its ceiling's (None: one of
    them not measured). A ceiling under 0.1 ms counts as 0.1 ms: below that the comparison
    says more about clock resolution than about the hop."""
    if not figure.count or not ceiling.count:
        return None
    return figure.p50_ms <= ratio_limit * max(ceiling.p50_ms, 0.1) and (
        figure.p99_ms <= ratio_limit * max(ceiling.p99_ms, 0.1)
    )


@dataclass(frozen=True, slots=True)
class Search:
    """Bisection for the highest rate whose p99 meets the target: ``low`` met it (or is the
    floor), ``high`` did not (or is the ceiling of the search)."""

    low: float
    high: float

    def next_rate(self) -> float:
        return round((self.low + self.high) / 2)

    def after(self, rate: float, met: bool) -> Search:
        return Search(rate, self.high) if met else Search(self.low, rate)

    def settled(self, resolution: float) -> bool:
        return self.high - self.low <= resolution
