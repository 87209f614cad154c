"""Gateway settings: env prefix GATEWAY_ (server) and GATEWAY_CLIENT_ (the client and CLI),
plus the shared KAFKA_/CASSANDRA_/LOG_/METRICS_. Built once in ``main()`` and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.core.limits import DEFAULT_MAX_BATCH_ORDERS, DEFAULT_MAX_SYMBOLS_PER_STREAM
from marketinfra.grpc_security import is_loopback
from marketinfra.settings import CommonSettings
from marketinfra.topics import ORDERS_LIFECYCLE, POSITIONS_UPDATES, TICKS_RAW, TRADES_EXECUTED

_MIB = 1024 * 1024
DEFAULT_PORT = 50051


class GatewaySettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", frozen=True, extra="ignore")

    address: str = "127.0.0.1"  # 0.0.0.0 in containers (TLS only)
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)  # 0: any free port (tests)
    # Plaintext, for local development only: refused unless the address is loopback.
    insecure: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Set: mutual TLS, every client must present a certificate signed by this CA.
    tls_client_ca_file: Path | None = None
    # JSON object: token -> {"account": "...", "permissions": ["market_data", "trading"]}.
    # Empty is allowed only in insecure mode (every caller is then the "dev" account).
    auth_tokens: SecretStr = SecretStr("")
    ticks_topic: str = TICKS_RAW.name
    # SO_REUSEPORT: several processes on one port (the kernel spreads connections).
    reuse_port: bool = False
    # Names this process in each stream's x-gateway-worker metadata; empty: host.pid.
    worker_name: str = ""
    reflection: bool = True
    # Streams: a client is cut off (RESOURCE_EXHAUSTED) once an update has been ready for it
    # this long without being taken; conflation keeps it current until then.
    max_lag_ms: int = Field(default=5_000, ge=100)
    # Unthrottled streams: values kept per instrument before the newest pending one is
    # replaced (throttled streams keep 1: the latest of the window). See core/outbox.py.
    stream_depth: int = Field(default=32, ge=1, le=1024)
    max_streams: int = Field(default=10_000, ge=1)
    max_symbols_per_stream: int = Field(default=DEFAULT_MAX_SYMBOLS_PER_STREAM, ge=1)
    # Connections: clients reconnect (and so spread over new replicas) after about this long.
    max_connection_age_s: float = Field(default=1_800.0, gt=0)
    max_connection_age_grace_s: float = Field(default=300.0, ge=0)
    max_connection_idle_s: float = Field(default=900.0, gt=0)
    keepalive_time_s: float = Field(default=60.0, gt=0)
    keepalive_timeout_s: float = Field(default=20.0, gt=0)
    # Clients may ping this often (gRPC's default refuses client pings under 5 minutes).
    min_client_ping_interval_s: float = Field(default=10.0, gt=0)
    max_receive_message_bytes: int = Field(default=1 * _MIB, ge=1024)
    max_send_message_bytes: int = Field(default=4 * _MIB, ge=1024)
    max_concurrent_streams: int = Field(default=1_000, ge=1)  # per connection
    # Shutdown: NOT_SERVING, wait shutdown_delay_s (load balancers notice), end the streams,
    # then let RPCs in flight finish within shutdown_grace_s.
    shutdown_delay_s: float = Field(default=0.0, ge=0)
    shutdown_grace_s: float = Field(default=10.0, ge=0)
    # GetQuote without an exchange, for a symbol not in memory: the exchanges asked in the store.
    store_exchanges: str = "NASDAQ,NYSE,ARCA,BATS,IEX,COINBASE,KRAKEN,BINANCE"
    store_timeout_s: float = Field(default=2.0, gt=0)
    # Records handed from the Kafka thread to the event loop at once.
    feed_batch_max: int = Field(default=500, ge=1)

    # -- trading (SubmitOrders, LiveTrading) --------------------------------------------------
    # "own": this process keeps the order book and writes the trading log; "off": the trading
    # RPCs answer UNIMPLEMENTED; "relay": forward them to the owner at trading_relay_socket
    # (set by `mdgw gateway --workers N` on every worker but the first).
    trading: Literal["own", "relay", "off"] = "own"
    # An owner also serves the trading RPCs here for its relays (a Unix socket path).
    trading_relay_socket: Path | None = None
    # Kafka transactional.id of the trading log's writer: one owner per id; a new owner fences
    # the previous one. Give each independent gateway deployment its own.
    trading_id: str = "mdgw-trading"
    orders_topic: str = ORDERS_LIFECYCLE.name
    trades_topic: str = TRADES_EXECUTED.name
    positions_topic: str = POSITIONS_UPDATES.name
    # JSON instrument rules (tick, lot, hours, halts) over the built-in defaults; re-read when
    # it changes. See gateway/trading/reference_file.py.
    trading_reference_file: Path | None = None
    # Risk limits per account, in whole currency units and orders.
    max_order_notional: int = Field(default=1_000_000, ge=1)
    max_open_notional: int = Field(default=5_000_000, ge=1)
    max_orders_per_second: float = Field(default=100.0, gt=0)
    order_burst: int = Field(default=200, ge=1)
    price_band_bps: int = Field(default=1_000, ge=1)  # limit within 10% of the reference price
    max_batch_orders: int = Field(
        default=DEFAULT_MAX_BATCH_ORDERS, ge=1
    )  # orders in one SubmitOrders call
    trading_recovery_timeout_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _security_is_coherent(self) -> Self:
        if self.insecure:
            if not is_loopback(self.address):
                raise ValueError(
                    f"GATEWAY_INSECURE listens on loopback only; GATEWAY_ADDRESS={self.address}"
                )
        else:
            if self.tls_cert_file is None or self.tls_key_file is None:
                raise ValueError(
                    "set GATEWAY_TLS_CERT_FILE and GATEWAY_TLS_KEY_FILE (`mdgw certs` makes "
                    "development ones), or GATEWAY_INSECURE=true for loopback-only plaintext"
                )
            if not self.auth_tokens.get_secret_value():
                raise ValueError("GATEWAY_AUTH_TOKENS is empty: no client could authenticate")
        if self.trading == "relay" and self.trading_relay_socket is None:
            raise ValueError("GATEWAY_TRADING=relay needs GATEWAY_TRADING_RELAY_SOCKET")
        return self

    def exchanges_to_probe(self) -> list[str]:
        return [name.strip() for name in self.store_exchanges.split(",") if name.strip()]


class ClientSettings(BaseSettings):
    """Where and how ``mdgw stream``/``mdgw quote`` (and ``GatewayClient.from_settings``)
    connect."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_CLIENT_", frozen=True, extra="ignore")

    # host:port, or dns:///name:port to spread calls over every address of a name
    target: str = f"127.0.0.1:{DEFAULT_PORT}"
    insecure: bool = False
    token: SecretStr = SecretStr("")
    ca_file: Path | None = None  # trust this CA (default: the system roots)
    cert_file: Path | None = None  # mutual TLS: our certificate and key
    key_file: Path | None = None
    server_name: str = ""  # expected name in the server certificate, if not the target host
    timeout_s: float = Field(default=5.0, gt=0)  # unary calls
    # Streams get a deadline too; the client resubscribes when it passes.
    stream_timeout_s: float = Field(default=3_600.0, gt=0)
