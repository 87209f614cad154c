"""Instrument identity and the Kafka key that keeps one instrument's ticks in order."""

from __future__ import annotations

from dataclasses import dataclass

KEY_SEPARATOR = "|"


class InvalidInstrumentError(ValueError):
    """An exchange or symbol that cannot be used as an identifier."""


@dataclass(frozen=True, slots=True)
class InstrumentKey:
    """A normalized (exchange, symbol) pair: ``NASDAQ``, ``AAPL``."""

    exchange: str
    symbol: str

    def __post_init__(self) -> None:
        for name, value in (("exchange", self.exchange), ("symbol", self.symbol)):
            if not value or KEY_SEPARATOR in value or value != value.strip():
                raise InvalidInstrumentError(f"invalid {name}: {value!r}")

    def kafka_key(self) -> bytes:
        """The ``ticks.raw`` key, ``EXCHANGE|SYMBOL``: one partition per instrument keeps order."""
        return f"{self.exchange}{KEY_SEPARATOR}{self.symbol}".encode()

    @classmethod
    def from_kafka_key(cls, key: bytes) -> InstrumentKey:
        exchange, sep, symbol = key.decode("utf-8", "replace").partition(KEY_SEPARATOR)
        if not sep:
            raise InvalidInstrumentError(f"not an EXCHANGE|SYMBOL key: {key!r}")
        return cls(exchange, symbol)

    def __str__(self) -> str:
        return f"{self.exchange}{KEY_SEPARATOR}{self.symbol}"
