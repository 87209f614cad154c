"""Settings of the local development servers (``mdgw infra``), read from the environment."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LocalInfraSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MDGW_INFRA_", frozen=True, extra="ignore", populate_by_name=True
    )

    # jars, data, logs and pid files; relative paths are relative to the working directory
    home: Path = Path(".mdgw")
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    kafka_controller_port: int = Field(default=9093, ge=1, le=65535)
    cassandra_port: int = Field(default=9042, ge=1, le=65535)
    cassandra_storage_port: int = Field(default=7000, ge=1, le=65535)
    cassandra_jmx_port: int = Field(default=7199, ge=1, le=65535)
    kafka_heap: str = "512m"
    cassandra_heap: str = "1G"
    start_timeout_s: float = Field(default=180.0, gt=0)
    # The JDK 17 to run the servers with; else `java` on PATH.
    java_home: Path | None = Field(
        default=None, validation_alias=AliasChoices("MDGW_INFRA_JAVA_HOME", "JAVA_HOME")
    )

    def resolved_home(self) -> Path:
        return self.home.resolve()
