"""The Coinbase simulator's coin-quoted products (ADA-BTC, GRT-ETH: priced in BTC/ETH at eight
decimals, like the real ones) through the handler: the frames say eight decimals, and every
record the pipeline encodes carries the simulator's book, trade and volume exactly, sub-micro
prices and sizes included. Expected values come from the simulator's own integer state (its
price ticks and size lots), never from our parser."""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from feedhandlers.pipeline import FeedPipeline
from feedhandlers.simulator.coinbase_feed import CoinbaseFeed, SimProduct
from feedhandlers.venues.coinbase.parse import CoinbaseParser
from financial.marketdata.v2.prices_pb2 import PriceUpdate
from tests.support import ListSink, nanos

T0 = 1_618_677_810_244_075_000
EIGHT_DECIMALS = re.compile(r"^[0-9]+\.[0-9]{8}$")
PRODUCTS = ["ADA-BTC", "GRT-ETH", "BTC-USD"]
FIELDS = ("bid", "ask", "bid_size", "ask_size", "last", "last_size", "volume")


def _expected(product: SimProduct) -> dict[str, int]:
    """The simulator's state in nanos: prices are ticks of 10**-price_decimals, sizes lots of
    10**-size_decimals."""
    price = 10 ** (9 - product.price_decimals)
    size = 10 ** (9 - product.size_decimals)
    bid, ask = max(product.bids), min(product.asks)
    return {
        "bid": bid * price,
        "ask": ask * price,
        "bid_size": product.bids[bid] * size,
        "ask_size": product.asks[ask] * size,
        "last": product.last_ticks * price,
        "last_size": product.last_lots * size,
        "volume": product.volume_lots * size,
    }


def _numbers(message: dict[str, Any]) -> list[str]:
    """Every price and size text of a simulator message."""
    texts = [message[k] for k in ("price", "size", "best_bid", "best_ask", "last_size",
                                   "volume_24h") if k in message]  # fmt: skip
    for key in ("bids", "asks"):
        texts += [text for level in message.get(key, []) for text in level]
    texts += [text for change in message.get("changes", []) for text in change[1:] if text != "0"]
    return texts


def test_coin_quoted_products_are_exact_through_the_handler() -> None:
    feed = CoinbaseFeed(PRODUCTS, seed=11)
    sink = ListSink()
    pipeline = FeedPipeline(CoinbaseParser(), sink, "sim")
    events = [(p, [("level2", feed.snapshot(p, T0))]) for p in PRODUCTS]
    mismatched: Counter[str] = Counter()
    sub_micro: Counter[str] = Counter()  # exact values finer than a micro, by field
    checked = 0
    for n in range(4000):
        if n >= len(PRODUCTS):
            events.append(feed.next_event(T0 + n * 1000))
        product_id, messages = events[n]
        before = len(sink.records)
        for _, message in messages:
            decoded = json.loads(message)
            if product_id != "BTC-USD":
                assert all(EIGHT_DECIMALS.match(text) for text in _numbers(decoded)), decoded
            pipeline.on_frame(message, T0 + n * 1000)
        new = [PriceUpdate.FromString(value) for _, value in sink.records[before:]]
        if not new:
            continue  # a book move below the top: nothing published
        got = {name: nanos(getattr(new[-1], name)) for name in FIELDS}
        assert new[-1].symbol == product_id
        for name, want in _expected(feed.products[product_id]).items():
            mismatched[name] += got[name] != want
            if product_id != "BTC-USD":
                sub_micro[name] += got[name] % 1000 != 0
        checked += 1
    assert pipeline.counters.rejected == Counter()
    assert pipeline.counters.sizes_dropped == 0
    assert +mismatched == Counter()
    assert checked > 1000
    # the point of the coin-quoted products: prices and sizes finer than a micro
    assert set(+sub_micro) == set(FIELDS)


def test_coin_quoted_prices_start_near_krakens_ada_xbt() -> None:
    feed = CoinbaseFeed(["ADA-BTC", "BTC-USD"])
    snapshot = json.loads(feed.snapshot("ADA-BTC", T0))
    assert snapshot["bids"][0][0] == "0.00002288"  # 22_880 nanos
    assert feed.products["ADA-BTC"].price_decimals == feed.products["ADA-BTC"].size_decimals == 8
    assert json.loads(feed.snapshot("BTC-USD", T0))["bids"][0][0] == "101.00"  # cents
