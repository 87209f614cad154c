"""Random walks of a synthetic market, as pure functions of the randomness they are given.

Prices are integers in ticks of the instrument (a tick of 0.01 and a price of 12345 ticks
is 123.45). The walk moves the mid by -1, 0 or +1 tick per step and keeps a spread of
1 to ``max_spread_ticks``, so bid < ask always and prices stay at or above ``floor_ticks``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

RandomUnit = Callable[[], float]  # uniform in [0, 1)


@dataclass(frozen=True, slots=True)
class Quote:
    bid_ticks: int
    ask_ticks: int

    def __post_init__(self) -> None:
        if not 0 < self.bid_ticks < self.ask_ticks:
            raise ValueError(f"not a valid quote: {self}")


@dataclass(slots=True)
class QuoteWalk:
    bid_ticks: int
    spread_ticks: int = 1
    max_spread_ticks: int = 4
    floor_ticks: int = 10
    history: list[Quote] = field(default_factory=list)

    def quote(self) -> Quote:
        return Quote(self.bid_ticks, self.bid_ticks + self.spread_ticks)

    def step(self, random_unit: RandomUnit) -> Quote:
        """Move one step; the new quote always has bid < ask and bid >= floor."""
        move = int(random_unit() * 3) - 1  # -1, 0, +1
        self.bid_ticks = max(self.floor_ticks, self.bid_ticks + move)
        spread_move = int(random_unit() * 3) - 1
        self.spread_ticks = min(self.max_spread_ticks, max(1, self.spread_ticks + spread_move))
        return self.quote()


def ladder(
    quote: Quote, levels: int, size_of: Callable[[int], int]
) -> tuple[dict[int, int], dict[int, int]]:
    """A book around ``quote``: ``levels`` bids below and asks above, one tick apart.

    ``size_of(price_ticks)`` gives each level's size (in lots); the caller decides how.
    """
    bids = {quote.bid_ticks - k: size_of(quote.bid_ticks - k) for k in range(levels)}
    asks = {quote.ask_ticks + k: size_of(quote.ask_ticks + k) for k in range(levels)}
    return {p: s for p, s in bids.items() if p > 0}, asks
