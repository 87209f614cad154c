"""Typed settings read from the environment, in this module only.

Each service composes these into its own settings class (env prefix per
service) built once in ``main()`` and passed down. Defaults suit local
development against ``mdgw infra up``; Kubernetes sets the env vars.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_REPO_CQL_DIR = Path(__file__).resolve().parents[2] / "cql"


class KafkaSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True, extra="ignore")

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "mdgw"
    # Replication of the topics we declare: 1 on a laptop, 3 in Kubernetes.
    replication_factor: int = Field(default=1, ge=1)
    # Producer batching delay, for producers off the latency path (dead letters, migrations).
    # Ticks use FEEDHANDLER_LINGER_MS (1 ms, see feedhandlers.config), the trading journal 0:
    # at a low rate a record waits the whole linger (mdgw bench e2e: receipt -> Kafka).
    linger_ms: float = Field(default=5.0, ge=0)
    # How long a produce may stay unacknowledged before it is reported failed.
    delivery_timeout_ms: int = Field(default=120_000, ge=1000)
    # Applies to metadata, admin and consumer-group calls.
    request_timeout_ms: int = Field(default=10_000, ge=100)
    # Extra librdkafka settings (security.protocol, sasl.*, ...) as a JSON object.
    extra_config: dict[str, str] = Field(default_factory=dict)


class CassandraSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CASSANDRA_", frozen=True, extra="ignore")

    contact_points: str = "127.0.0.1"  # comma-separated hosts
    port: int = 9042
    keyspace: str = "market_data_v2"  # the schema version: v1 tables held micros
    local_dc: str = "datacenter1"
    # SimpleStrategy for one local node; NetworkTopologyStrategy with per-DC
    # factors ("dc1:3,dc2:3") in Kubernetes.
    replication_strategy: Literal["SimpleStrategy", "NetworkTopologyStrategy"] = "SimpleStrategy"
    replication_factor: int = Field(default=1, ge=1)
    datacenter_replication: str = ""
    username: str = ""
    password: SecretStr = SecretStr("")
    connect_timeout_s: float = Field(default=5.0, gt=0)
    request_timeout_s: float = Field(default=5.0, gt=0)
    # The driver's reconnection schedule for a node that went down: exponential from the base
    # delay up to the max delay between attempts, and never giving up (its default gives up
    # after 64 attempts; a writer then stays paused for good, see marketinfra.cassandra).
    reconnect_base_delay_s: float = Field(default=0.5, gt=0)
    reconnect_max_delay_s: float = Field(default=5.0, gt=0)
    # Where the CQL files live: the repo's cql/ unless set (container images copy it).
    cql_dir: Path = _REPO_CQL_DIR

    @field_validator("keyspace")
    @classmethod
    def _plain_identifier(cls, value: str) -> str:
        if not value.replace("_", "").isalnum() or not value[0].isalpha():
            raise ValueError(f"keyspace must be a plain CQL identifier: {value!r}")
        return value

    def hosts(self) -> list[str]:
        return [host.strip() for host in self.contact_points.split(",") if host.strip()]

    def datacenter_factors(self) -> dict[str, int]:
        factors: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in self.datacenter_replication.split(","))):
            name, _, factor = item.partition(":")
            if not name or not factor.isdigit():
                raise ValueError(f"datacenter_replication item must be DC:N, got {item!r}")
            factors[name] = int(factor)
        return factors


class LogSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOG_", frozen=True, extra="ignore")

    # json in containers, console for people at a terminal
    format: Literal["console", "json"] = "console"
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="METRICS_", frozen=True, extra="ignore")

    # /metrics is served on its own port; 0 turns the endpoint off.
    port: int = Field(default=0, ge=0, le=65535)
    address: str = "127.0.0.1"


class HealthSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HEALTH_", frozen=True, extra="ignore")

    # gRPC health checking, plaintext, on its own port (kubelet probes); 0 turns it off.
    port: int = Field(default=0, ge=0, le=65535)
    address: str = "127.0.0.1"


class CommonSettings(BaseSettings):
    """What every process of the project needs; services extend it."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)
    log: LogSettings = Field(default_factory=LogSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
