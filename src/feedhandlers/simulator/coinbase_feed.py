"""A synthetic market written in Coinbase Exchange's WebSocket format.

Written from Coinbase's documented message shapes, independently of our parser (stdlib
``json``, its own decimal formatting): a test that passes through both checks real
protocol handling, not one module against itself.

Per product: a random-walk quote (``walk.QuoteWalk``), a ladder of ``levels`` price levels
per side, trades at the bid or the ask. Products quoted in a coin (``ADA-BTC``, ``GRT-ETH``)
are priced and sized like the real ones: eight decimals, starting at 0.00002288, so the whole
pipeline sees prices and sizes finer than a micro. Each event is either a book move
(``l2update`` with the changed levels) or a trade (``match`` then ``ticker``). ``truth`` is
the top of book the feed last published per product, for tests to compare with what came out.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from feedhandlers.simulator.walk import Quote, QuoteWalk, ladder

_TRADE_SHARE = 0.3
_COIN_QUOTES = ("BTC", "ETH")
# 0.00002288 at eight decimals: where Kraken's ADA/XBT trades (0.000022910 bid in our capture)
_COIN_START_TICKS = 2288


def decimal_text(units: int, decimals: int) -> str:
    """``units`` * 10**-decimals as decimal text, without floats: (12345, 2) -> "123.45"."""
    whole, fraction = divmod(units, 10**decimals)
    return f"{whole}.{fraction:0{decimals}d}" if decimals else str(whole)


def iso_time(now_ns: int) -> str:
    seconds, nanos = divmod(now_ns, 1_000_000_000)
    stamp = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{nanos // 1000:06d}Z"


@dataclass(slots=True)
class SimProduct:
    product_id: str
    walk: QuoteWalk
    price_decimals: int = 2
    size_decimals: int = 3
    bids: dict[int, int] = field(default_factory=dict)
    asks: dict[int, int] = field(default_factory=dict)
    sequence: int = 0
    trade_id: int = 0
    last_ticks: int = 0
    last_lots: int = 0
    volume_lots: int = 0
    lot_scale: int = 1  # random sizes are multiplied by this (coin-quoted: 0.001 to 50 units)


class CoinbaseFeed:
    def __init__(
        self, product_ids: list[str], *, seed: int = 7, levels: int = 5, start_ticks: int = 10_000
    ) -> None:
        self._random = random.Random(seed)
        self.levels = levels
        self.products: dict[str, SimProduct] = {}
        for index, product_id in enumerate(product_ids):
            if product_id.upper().endswith(tuple(f"-{coin}" for coin in _COIN_QUOTES)):
                walk = QuoteWalk(bid_ticks=_COIN_START_TICKS + 100 * index)
                product = SimProduct(
                    product_id, walk, price_decimals=8, size_decimals=8, lot_scale=100_000
                )
            else:
                walk = QuoteWalk(bid_ticks=start_ticks + 100 * index)
                product = SimProduct(product_id, walk)
            product.bids, product.asks = ladder(walk.quote(), levels, self._sizer(product))
            self.products[product_id] = product
        # product id -> (best bid text, best ask text) as last published
        self.truth: dict[str, tuple[str, str]] = {}

    def _lots(self, product: SimProduct, most: int) -> int:
        # coin-quoted sizes keep odd last digits, so some are finer than a micro
        scale = product.lot_scale
        lots = self._random.randint(1, most)
        return lots if scale == 1 else lots * scale + self._random.randrange(scale)

    def _sizer(self, product: SimProduct) -> Callable[[int], int]:
        return lambda _price_ticks: self._lots(product, 50_000)

    def _text(self, product: SimProduct, ticks: int) -> str:
        return decimal_text(ticks, product.price_decimals)

    def _size_text(self, product: SimProduct, lots: int) -> str:
        return decimal_text(lots, product.size_decimals)

    def _publish_truth(self, product: SimProduct) -> None:
        self.truth[product.product_id] = (
            self._text(product, max(product.bids)),
            self._text(product, min(product.asks)),
        )

    # --- messages ------------------------------------------------------------------------

    @staticmethod
    def subscriptions(channels: list[str], product_ids: list[str]) -> str:
        return json.dumps(
            {
                "type": "subscriptions",
                "channels": [{"name": name, "product_ids": product_ids} for name in channels],
            }
        )

    def snapshot(self, product_id: str, now_ns: int) -> str:
        product = self.products[product_id]
        self._publish_truth(product)
        return json.dumps(
            {
                "type": "snapshot",
                "product_id": product_id,
                "bids": [
                    [self._text(product, p), self._size_text(product, s)]
                    for p, s in sorted(product.bids.items(), reverse=True)
                ],
                "asks": [
                    [self._text(product, p), self._size_text(product, s)]
                    for p, s in sorted(product.asks.items())
                ],
                "time": iso_time(now_ns),
            }
        )

    def heartbeat(self, product_id: str, now_ns: int) -> str:
        product = self.products[product_id]
        return json.dumps(
            {
                "type": "heartbeat",
                "sequence": product.sequence,
                "last_trade_id": product.trade_id,
                "product_id": product_id,
                "time": iso_time(now_ns),
            }
        )

    def next_event(self, now_ns: int) -> tuple[str, list[tuple[str, str]]]:
        """One market event on a random product: (product id, [(channel, message), ...])."""
        product = self._random.choice(list(self.products.values()))
        if self._random.random() < _TRADE_SHARE:
            return product.product_id, self._trade(product, now_ns)
        return product.product_id, [("level2", self._book_move(product, now_ns))]

    def _book_move(self, product: SimProduct, now_ns: int) -> str:
        quote: Quote = product.walk.step(self._random.random)
        bids, asks = ladder(quote, self.levels, self._sizer(product))
        changes: list[list[str]] = []
        for side, old, new in (("buy", product.bids, bids), ("sell", product.asks, asks)):
            for price in sorted(old.keys() - new.keys()):
                changes.append([side, self._text(product, price), "0"])
            for price, size in sorted(new.items()):
                if old.get(price) != size:
                    changes.append(
                        [side, self._text(product, price), self._size_text(product, size)]
                    )
        product.bids, product.asks = bids, asks
        self._publish_truth(product)
        return json.dumps(
            {
                "type": "l2update",
                "product_id": product.product_id,
                "changes": changes,
                "time": iso_time(now_ns),
            }
        )

    def _trade(self, product: SimProduct, now_ns: int) -> list[tuple[str, str]]:
        buy = self._random.random() < 0.5
        price = min(product.asks) if buy else max(product.bids)
        lots = self._lots(product, 5_000)
        product.sequence += 1
        product.trade_id += 1
        product.last_ticks, product.last_lots = price, lots
        product.volume_lots += lots
        time_text = iso_time(now_ns)
        match = {
            "type": "match",
            "trade_id": product.trade_id,
            "side": "sell" if buy else "buy",  # Coinbase: the maker's side
            "size": self._size_text(product, lots),
            "price": self._text(product, price),
            "product_id": product.product_id,
            "sequence": product.sequence,
            "time": time_text,
        }
        ticker = {
            "type": "ticker",
            "sequence": product.sequence,
            "product_id": product.product_id,
            "price": self._text(product, price),
            "volume_24h": self._size_text(product, product.volume_lots),
            "best_bid": self._text(product, max(product.bids)),
            "best_ask": self._text(product, min(product.asks)),
            "side": "buy" if buy else "sell",
            "time": time_text,
            "trade_id": product.trade_id,
            "last_size": self._size_text(product, lots),
        }
        return [("matches", json.dumps(match)), ("ticker", json.dumps(ticker))]
