"""A price-level (L2) order book kept for its top: best bid and best ask with their sizes.

Prices and sizes are integers at ``BOOK_DECIMALS`` (1e-12), finer than any venue spells
them, so a book can hold every level a venue sends even when a price has more than nine
decimals; the top is converted to nanos (1e-9) only when a tick is built, and a value that
does not fit is refused there (see ``normalization``). A size of zero deletes a level.

Prices are kept sorted (``bisect``): setting a level costs O(log n) to find plus a list
insert or delete, and the best level is at one end of the list.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from dataclasses import dataclass
from functools import lru_cache

from marketcore.fixed_point import NANOS_DECIMALS
from marketcore.scaled_decimal import parse_scaled

BOOK_DECIMALS = 12
# Largest price or size a book accepts (1e18 units): far above any real market, and inside
# the wire range (``fixed_point.NANOS_LIMIT``), so every exact top converts.
BOOK_LIMIT = 10 ** (18 + BOOK_DECIMALS)
_TO_NANOS = 10 ** (BOOK_DECIMALS - NANOS_DECIMALS)


@lru_cache(maxsize=1 << 16)
def parse_book_value(text: str) -> int:
    """A venue's price or size text at the book scale, exactly (``parse_scaled``); raises
    NotRepresentableError. Remembered: a book's level prices, and many of its sizes, come
    back in update after update (in the Coinbase capture 80% of prices and 65% of sizes had
    been seen before), and a hit costs a quarter of a parse."""
    return parse_scaled(text, BOOK_DECIMALS, BOOK_LIMIT)


def book_to_nanos(value: int) -> int | None:
    """A book price or size in nanos, or None when it has more than nine decimals."""
    nanos, remainder = divmod(value, _TO_NANOS)
    return None if remainder else nanos


class BookSide:
    """One side: price -> size. ``descending`` for bids (best = highest)."""

    __slots__ = ("_descending", "_prices", "_sizes")

    def __init__(self, *, descending: bool) -> None:
        self._descending = descending
        self._prices: list[int] = []  # ascending
        self._sizes: dict[int, int] = {}

    def set(self, price: int, size: int) -> None:
        """Set the size at ``price``; zero removes the level."""
        if size:
            if price not in self._sizes:
                insort(self._prices, price)
            self._sizes[price] = size
        elif self._sizes.pop(price, None) is not None:
            del self._prices[bisect_left(self._prices, price)]

    def size(self, price: int) -> int:
        """The size at ``price`` (0 when there is no such level)."""
        return self._sizes.get(price, 0)

    def best_price(self) -> int:
        """The best price, or 0 when the side is empty."""
        if not self._prices:
            return 0
        return self._prices[-1] if self._descending else self._prices[0]

    def best(self) -> tuple[int, int]:
        """(price, size) of the best level, or (0, 0) when the side is empty."""
        if not self._prices:
            return (0, 0)
        price = self._prices[-1] if self._descending else self._prices[0]
        return (price, self._sizes[price])

    def top(self, count: int) -> list[tuple[int, int]]:
        """The best ``count`` levels, best first."""
        prices = self._prices[::-1][:count] if self._descending else self._prices[:count]
        return [(price, self._sizes[price]) for price in prices]

    def truncate(self, depth: int) -> list[int]:
        """Keep only the best ``depth`` levels (venues stop sending levels beyond it);
        returns the prices dropped."""
        extra = len(self._prices) - depth
        if extra <= 0:
            return []
        dropped = self._prices[:extra] if self._descending else self._prices[depth:]
        for price in dropped:
            del self._sizes[price]
        if self._descending:
            del self._prices[:extra]
        else:
            del self._prices[depth:]
        return dropped

    def clear(self) -> None:
        self._prices.clear()
        self._sizes.clear()

    def __contains__(self, price: object) -> bool:
        return price in self._sizes

    def __len__(self) -> int:
        return len(self._prices)


@dataclass(frozen=True, slots=True)
class TopOfBook:
    """Best bid and ask at the book scale; 0 means the side is empty."""

    bid: int
    bid_size: int
    ask: int
    ask_size: int

    @property
    def crossed(self) -> bool:
        """Bid at or above the ask with both sides present (crossed or locked)."""
        return bool(self.bid and self.ask and self.bid >= self.ask)


EMPTY_TOP = TopOfBook(0, 0, 0, 0)


class OrderBook:
    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids = BookSide(descending=True)
        self.asks = BookSide(descending=False)

    def top(self) -> TopOfBook:
        bid, bid_size = self.bids.best()
        ask, ask_size = self.asks.best()
        return TopOfBook(bid, bid_size, ask, ask_size)

    def clear(self) -> None:
        self.bids.clear()
        self.asks.clear()
