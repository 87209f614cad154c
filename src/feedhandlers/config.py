"""Feed-handler settings: env prefix FEEDHANDLER_, plus the shared KAFKA_/LOG_/METRICS_.

``mdgw feed`` flags override the environment (they are passed as init arguments).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from marketinfra.settings import CommonSettings
from marketinfra.topics import TICKS_RAW

# librdkafka reports every record within delivery.timeout.ms; its timeout scan and an
# in-flight request's own timeout can add seconds, never this much.
_DELIVERY_STALL_MARGIN_S = 30.0

Venue = Literal["coinbase", "binance", "binance-usdm", "kraken", "fix", "itch"]
VENUES: tuple[Venue, ...] = ("coinbase", "binance", "binance-usdm", "kraken", "fix", "itch")


class FeedHandlerSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="FEEDHANDLER_", frozen=True, extra="ignore")

    venue: Venue = "coinbase"
    # Our symbols (BASE-QUOTE, comma-separated; ITCH: tickers), each venue spells them its
    # own way; "*": every symbol of a feed that carries all (ITCH).
    symbols: str = "BTC-USD,ETH-USD"
    # Venue channels (comma-separated); empty: the venue's defaults (quote, trades, book).
    channels: str = ""
    # WebSocket URL (empty: the venue's public endpoint); FIX: tcp://host:port; ITCH:
    # tcp://host:port (SoupBinTCP) or udp://host:port (MoldUDP64, the address to bind).
    url: str = ""
    ticks_topic: str = TICKS_RAW.name
    # Stable id of this process in every tick; empty: venue.host.pid.start-time (unique per
    # process, so feed_sequence, which restarts at 1, never reuses an id).
    feed_handler_id: str = ""
    # Producer linger (overrides KAFKA_LINGER_MS for ticks). Measured with `mdgw bench feed`
    # on 2 cores: 1 ms kept the throughput of 5 ms (10.6k vs 10.7k ticks/s) at p50 1.3 ms
    # frame->ack instead of 3.8 ms; 0 ms cost 18% of the throughput for p50 0.6 ms.
    linger_ms: float = Field(default=1.0, ge=0, le=1000)
    # Producer buffer (see adapters/kafka_sink.py for the policy when Kafka is down).
    buffer_max_messages: int = Field(default=100_000, ge=1)
    buffer_max_kbytes: int = Field(default=65_536, ge=1)
    overflow_max_instruments: int = Field(default=10_000, ge=0)
    # On SIGTERM, how long to wait for Kafka to acknowledge every accepted tick.
    stop_timeout_s: float = Field(default=30.0, ge=0)
    stats_interval_ms: int = Field(default=5_000, ge=100)
    # Delivery watchdog (marketcore.watchdog): while ticks wait in the producer, no
    # acknowledgement for delivery_slow_s makes the handler not ready (Kafka down or
    # refusing); no delivery report at all (not even an error) for delivery_stall_s (0: the
    # producer's KAFKA_DELIVERY_TIMEOUT_MS plus 30 s), which librdkafka promises never
    # happens, fails liveness: the orchestrator restarts the handler.
    delivery_slow_s: float = Field(default=10.0, gt=0)
    delivery_stall_s: float = Field(default=0.0, ge=0)
    # The connection: silence watchdog, keep-alive pings, reconnect backoff.
    silence_timeout_s: float = Field(default=10.0, gt=0)
    open_timeout_s: float = Field(default=10.0, gt=0)
    ping_interval_s: float = Field(default=20.0, gt=0)
    ping_timeout_s: float = Field(default=20.0, gt=0)
    reconnect_base_s: float = Field(default=0.5, gt=0)
    reconnect_cap_s: float = Field(default=30.0, gt=0)
    # Kraken book depth (10, 25, 100, 500 or 1000).
    book_depth: int = Field(default=10, ge=10, le=1000)
    # FIX 4.4: our and the venue's CompIDs, HeartBtInt, and the exchange code of its ticks.
    fix_sender_comp_id: str = "MDGW"
    fix_target_comp_id: str = "VENUE"
    fix_heartbeat_s: int = Field(default=30, ge=1)
    fix_exchange: str = "FIX"
    # ITCH file replays: the session date of the file's timestamps, when its name has none
    # (``01302019.NASDAQ_ITCH50``). Live feeds date each message from its receipt time.
    itch_date: date | None = None
    # ITCH: the SoupBinTCP login.
    itch_username: str = ""
    itch_password: SecretStr = SecretStr("")

    @field_validator("symbols")
    @classmethod
    def _some_symbols(cls, value: str) -> str:
        if not [item for item in value.split(",") if item.strip()]:
            raise ValueError("at least one symbol")
        return value

    def symbol_list(self) -> list[str]:
        """Our symbols; ``*`` means every symbol the feed carries (ITCH): an empty list."""
        if self.symbols.strip() == "*":
            return []
        return [item.strip().upper() for item in self.symbols.split(",") if item.strip()]

    def tcp_address(self) -> tuple[str, int]:
        """``tcp://host:port`` -> (host, port); raises ValueError when it is not that."""
        return _address(self.url, "tcp")

    def udp_address(self) -> tuple[str, int]:
        return _address(self.url, "udp")

    def channel_list(self) -> list[str]:
        return [item.strip() for item in self.channels.split(",") if item.strip()]

    def delivery_stall_after_s(self) -> float:
        """The watchdog's "no report at all" limit (see ``delivery_stall_s``)."""
        if self.delivery_stall_s:
            return max(self.delivery_stall_s, self.delivery_slow_s)
        return self.kafka.delivery_timeout_ms / 1000 + _DELIVERY_STALL_MARGIN_S


def _address(url: str, scheme: str) -> tuple[str, int]:
    host, sep, port = url.removeprefix(f"{scheme}://").rpartition(":")
    if not url.startswith(f"{scheme}://") or not sep or not host or not port.isdigit():
        raise ValueError(f"expected FEEDHANDLER_URL={scheme}://host:port, got {url!r}")
    return host, int(port)
