from datetime import date

import pytest

from marketcore.instruments import InstrumentKey, InvalidInstrumentError
from marketcore.trading_calendar import trade_date, trade_date_text


def test_kafka_key_is_exchange_bar_symbol() -> None:
    key = InstrumentKey("NASDAQ", "AAPL")
    assert key.kafka_key() == b"NASDAQ|AAPL"
    assert InstrumentKey.from_kafka_key(b"NASDAQ|AAPL") == key
    assert str(key) == "NASDAQ|AAPL"


@pytest.mark.parametrize(
    ("exchange", "symbol"), [("", "AAPL"), ("NASDAQ", ""), ("A|B", "X"), ("X", " Y")]
)
def test_instrument_key_refuses_unusable_identifiers(exchange: str, symbol: str) -> None:
    with pytest.raises(InvalidInstrumentError):
        InstrumentKey(exchange, symbol)


def test_from_kafka_key_refuses_keys_without_separator() -> None:
    with pytest.raises(InvalidInstrumentError):
        InstrumentKey.from_kafka_key(b"AAPL")


# 2024-03-15 03:30:00 UTC is still 2024-03-14 in New York (23:30 EDT).
_EARLY_UTC_NS = 1_710_473_400 * 1_000_000_000


def test_us_equity_trade_date_uses_new_york_time() -> None:
    assert trade_date("NASDAQ", _EARLY_UTC_NS) == date(2024, 3, 14)


def test_other_venues_use_utc_dates() -> None:
    assert trade_date("COINBASE", _EARLY_UTC_NS) == date(2024, 3, 15)
    assert trade_date_text("COINBASE", _EARLY_UTC_NS) == "2024-03-15"
