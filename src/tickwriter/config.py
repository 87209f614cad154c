"""Tick writer settings: env prefix TICKWRITER_, plus the shared KAFKA_/CASSANDRA_/LOG_/METRICS_."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from marketinfra.grpc_security import is_loopback
from marketinfra.settings import CommonSettings
from marketinfra.topics import ORDERS_LIFECYCLE, TICKS_DLQ, TICKS_RAW, TRADES_EXECUTED

_KINDS = ("ticks", "trades", "orders")


class TickWriterSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="TICKWRITER_", frozen=True, extra="ignore")

    group_id: str = "tickwriter"
    # Static membership: a restart within session.timeout.ms keeps its partitions (no rebalance).
    group_instance_id: str = ""
    session_timeout_ms: int = Field(default=45_000, ge=6_000)
    ticks_topic: str = TICKS_RAW.name
    trades_topic: str = TRADES_EXECUTED.name
    orders_topic: str = ORDERS_LIFECYCLE.name
    dlq_topic: str = TICKS_DLQ.name
    # Which of the three topics this process consumes (comma-separated names of the above).
    consume: str = "ticks,trades,orders"
    # Micro-batching: flush at this many records, after this long, or when nothing is waiting.
    flush_max_records: int = Field(default=200, ge=1)
    flush_max_wait_ms: float = Field(default=50.0, ge=0)
    # Rows per UNLOGGED batch (one partition each). Measured with `mdgw bench tickwriter` on one
    # node (2 cores): 8 rows wrote ~4x faster than 16 (big batches serialize on one replica's
    # mutation stage; small ones spread over its threads); 1-2 rows pay per-request overhead.
    rows_per_batch: int = Field(default=8, ge=1)
    max_in_flight: int = Field(default=32, ge=1)
    # Checkpoint (upsert the day's bars, then commit offsets) at most this often. Rows are
    # written every flush; a crash re-reads at most this much, and rewriting is idempotent.
    checkpoint_interval_ms: float = Field(default=250.0, ge=0)
    # librdkafka statistics (consumer lag per partition) every this often; 0 turns them off.
    stats_interval_ms: int = Field(default=1000, ge=0)
    retry_base_s: float = Field(default=0.2, gt=0)
    retry_cap_s: float = Field(default=5.0, gt=0)
    # Liveness (restart me): unable to write for this long (0: never), longer than any
    # Cassandra outage the writer should ride out by itself (it resumes alone when a node is
    # back); or the consume loop not turning for loop_stuck_s.
    restart_after_unable_s: float = Field(default=900.0, ge=0)
    loop_stuck_s: float = Field(default=60.0, gt=0)
    # TickWriterService (internal gRPC); port 0 turns it off. Callers are checked as the
    # gateway checks them: TLS (mutual with a client CA) and bearer tokens, or plaintext on
    # loopback only (grpc_insecure, `mdgw tickwriter --insecure`) for local development.
    grpc_address: str = "127.0.0.1"
    grpc_port: int = Field(default=50052, ge=0, le=65535)
    grpc_insecure: bool = False
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None
    # JSON object: token -> {"account": "...", "permissions": ["write_ticks"]}. Empty is
    # allowed only in insecure mode (every caller may then write).
    auth_tokens: SecretStr = SecretStr("")

    @field_validator("consume")
    @classmethod
    def _known_kinds(cls, value: str) -> str:
        kinds = [kind.strip() for kind in value.split(",") if kind.strip()]
        unknown = sorted(set(kinds) - set(_KINDS))
        if unknown or not kinds:
            raise ValueError(f"kinds are {', '.join(_KINDS)} (comma-separated), got {value!r}")
        return value

    def grpc_problem(self) -> str | None:
        """Why TickWriterService cannot be served as configured, or None (checked at start:
        the replay commands share these settings but serve nothing)."""
        if not self.grpc_port:
            return None
        if self.grpc_insecure:
            if not is_loopback(self.grpc_address):
                return (
                    "TICKWRITER_GRPC_INSECURE listens on loopback only; "
                    f"TICKWRITER_GRPC_ADDRESS={self.grpc_address}"
                )
            return None
        if self.tls_cert_file is None or self.tls_key_file is None:
            return (
                "TickWriterService needs TICKWRITER_TLS_CERT_FILE and TICKWRITER_TLS_KEY_FILE "
                "(`mdgw certs` makes development ones), or TICKWRITER_GRPC_INSECURE=true "
                "(`mdgw tickwriter --insecure`) for loopback-only plaintext, or "
                "TICKWRITER_GRPC_PORT=0 to serve none"
            )
        if not self.auth_tokens.get_secret_value():
            return "TICKWRITER_AUTH_TOKENS is empty: no client could authenticate"
        return None

    def consumed_topics(self) -> dict[str, str]:
        """Topic name -> kind ("ticks", "trades", "orders") for the kinds this process consumes."""
        names = {
            "ticks": self.ticks_topic,
            "trades": self.trades_topic,
            "orders": self.orders_topic,
        }
        kinds = [kind.strip() for kind in self.consume.split(",") if kind.strip()]
        unknown = set(kinds) - set(names)
        if unknown:
            raise ValueError(f"TICKWRITER_CONSUME has unknown kinds: {sorted(unknown)}")
        return {names[kind]: kind for kind in kinds}
