"""Tick writer settings: env prefix TICKWRITER_, plus the shared KAFKA_/CASSANDRA_/LOG_/METRICS_."""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

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
    # TickWriterService (internal gRPC); port 0 turns it off.
    grpc_address: str = "127.0.0.1"
    grpc_port: int = Field(default=50052, ge=0, le=65535)

    @field_validator("consume")
    @classmethod
    def _known_kinds(cls, value: str) -> str:
        kinds = [kind.strip() for kind in value.split(",") if kind.strip()]
        unknown = sorted(set(kinds) - set(_KINDS))
        if unknown or not kinds:
            raise ValueError(f"kinds are {', '.join(_KINDS)} (comma-separated), got {value!r}")
        return value

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
