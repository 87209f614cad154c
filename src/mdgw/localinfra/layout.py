"""Where each local server keeps its jars, configs, data, logs and pid file."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mdgw.localinfra.settings import LocalInfraSettings

SERVERS = ("kafka", "cassandra")
RESOURCES = resources.files("mdgw.localinfra") / "resources"


@dataclass(frozen=True, slots=True)
class ServerPaths:
    name: str
    lib: Path
    conf: Path
    data: Path
    log: Path
    pid: Path
    tmp: Path

    def make_dirs(self) -> None:
        for directory in (
            self.lib,
            self.conf,
            self.data,
            self.log.parent,
            self.pid.parent,
            self.tmp,
        ):
            directory.mkdir(parents=True, exist_ok=True)


def server_paths(settings: LocalInfraSettings, name: str) -> ServerPaths:
    home = settings.resolved_home()
    return ServerPaths(
        name=name,
        lib=home / "lib" / name,
        conf=home / "conf" / name,
        data=home / "data" / name,
        log=home / "logs" / f"{name}.out",
        pid=home / "run" / f"{name}.pid",
        tmp=home / "tmp" / name,
    )


def server_ports(settings: LocalInfraSettings, name: str) -> dict[str, int]:
    if name == "kafka":
        return {"client": settings.kafka_port, "controller": settings.kafka_controller_port}
    return {
        "cql": settings.cassandra_port,
        "storage": settings.cassandra_storage_port,
        "jmx": settings.cassandra_jmx_port,
    }


def client_address(settings: LocalInfraSettings, name: str) -> str:
    port = settings.kafka_port if name == "kafka" else settings.cassandra_port
    return f"127.0.0.1:{port}"
