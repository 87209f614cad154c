"""The records ``mdgw bench trading``'s raw ceiling commits per order are the gateway's: the
order core's four (NEW, the execution, FILLED, the position) keyed as the trading log keys
them (status by order id, execution by account, position by ``account|symbol``)."""

from __future__ import annotations

from pathlib import Path

from gateway import trading_bench
from gateway.trading.convert import TradingTopics
from marketinfra.settings import KafkaSettings


def test_the_ceiling_writes_the_order_cores_four_records_per_order(tmp_path: Path) -> None:
    reference = tmp_path / "reference.json"
    reference.write_text('{"exchanges": {"BENCH": {"tick": "0.01", "lot": "1"}}}')
    settings = trading_bench._settings(KafkaSettings(), "run", reference)
    topics = TradingTopics("raw.orders", "raw.trades", "raw.positions")
    records = trading_bench.OrderRecords(settings, topics).of("abcd1234-7")
    assert [r.topic for r in records] == ["raw.orders", "raw.trades", "raw.orders", "raw.positions"]
    assert [r.key for r in records] == [b"abcd1234-7", b"bench", b"abcd1234-7", b"bench|BENCH-USD"]
