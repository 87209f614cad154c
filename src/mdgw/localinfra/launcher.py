"""``up``, ``down`` and ``status`` of the local Kafka and Cassandra servers."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from mdgw.localinfra import configs, processes
from mdgw.localinfra.errors import LocalInfraError
from mdgw.localinfra.jars import ensure_jars
from mdgw.localinfra.java import find_java
from mdgw.localinfra.layout import (
    SERVERS,
    ServerPaths,
    client_address,
    server_paths,
    server_ports,
)
from mdgw.localinfra.readiness import cassandra_ready, kafka_ready
from mdgw.localinfra.settings import LocalInfraSettings

Progress = Callable[[str], None]
_STOP_GRACE_S = {"kafka": 30.0, "cassandra": 60.0}
_LOG_LINES_ON_FAILURE = 40


@dataclass(frozen=True, slots=True)
class ServerStatus:
    name: str
    state: str  # ready | starting | stopped
    pid: int | None
    address: str
    detail: str = ""


def _ignore(_message: str) -> None:
    return None


def _is_ready(settings: LocalInfraSettings, name: str) -> bool:
    if name == "kafka":
        return kafka_ready(settings.kafka_port)
    return cassandra_ready(settings.cassandra_port)


def server_status(settings: LocalInfraSettings, name: str) -> ServerStatus:
    paths = server_paths(settings, name)
    address = client_address(settings, name)
    pid = processes.running_pid(paths, configs.MAIN_CLASSES[name])
    if pid is None:
        stale = " (stale pid file)" if paths.pid.exists() else ""
        return ServerStatus(name, "stopped", None, address, stale.strip(" ()"))
    state = "ready" if _is_ready(settings, name) else "starting"
    return ServerStatus(name, state, pid, address)


def status(settings: LocalInfraSettings) -> list[ServerStatus]:
    return [server_status(settings, name) for name in SERVERS]


def up(
    settings: LocalInfraSettings,
    *,
    fresh: bool = False,
    only: Iterable[str] = SERVERS,
    on_progress: Progress | None = None,
) -> list[ServerStatus]:
    """Start what is not running, then wait until every server answers. Harmless when up."""
    report = on_progress or _ignore
    wanted = [name for name in SERVERS if name in set(only)]
    running = {name for name in wanted if server_status(settings, name).pid is not None}
    if fresh and running:
        raise LocalInfraError(
            f"--fresh wipes data, but {', '.join(sorted(running))} is running: "
            "run `mdgw infra down` first"
        )
    to_start = [name for name in wanted if name not in running]
    if to_start:
        java = find_java(settings)
        _check_ports_free(settings, to_start)
        for name in to_start:
            paths = server_paths(settings, name)
            if fresh and paths.data.exists():
                shutil.rmtree(paths.data)
            paths.make_dirs()
            if ensure_jars(paths):
                report(f"{name}: resolved jars from Maven Central into {paths.lib}")
        # Cassandra boots slowest, so it goes first and Kafka's storage format overlaps with it.
        for name in sorted(to_start, key=lambda server: server != "cassandra"):
            pid = _start(java, settings, name)
            report(f"{name}: started (pid {pid}), log {server_paths(settings, name).log}")
    for name in running:
        report(f"{name}: already running")
    _wait_until_ready(settings, wanted, report)
    return [server_status(settings, name) for name in wanted]


def down(
    settings: LocalInfraSettings,
    on_progress: Progress | None = None,
    only: Iterable[str] = SERVERS,
) -> list[ServerStatus]:
    report = on_progress or _ignore
    for name in [server for server in SERVERS if server in set(only)]:
        paths = server_paths(settings, name)
        if processes.stop(paths, configs.MAIN_CLASSES[name], _STOP_GRACE_S[name]):
            report(f"{name}: stopped")
    return status(settings)


def log_tail(settings: LocalInfraSettings, server: str, lines: int = 60) -> str:
    if server not in SERVERS:
        raise LocalInfraError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")
    return processes.log_tail(server_paths(settings, server).log, lines)


def _check_ports_free(settings: LocalInfraSettings, names: list[str]) -> None:
    for name in names:
        for role, port in server_ports(settings, name).items():
            if processes.port_in_use(port):
                raise LocalInfraError(
                    f"port {port} (the {name} {role} port) on 127.0.0.1 is taken by another "
                    f"process; free it (e.g. `ss -ltnp 'sport = :{port}'` shows who holds it) or "
                    f"choose another with MDGW_INFRA_* settings"
                )


def _start(java: Path, settings: LocalInfraSettings, name: str) -> int:
    paths = server_paths(settings, name)
    if name == "kafka":
        configs.render_kafka(settings, paths)
        if not (paths.data / "meta.properties").exists():
            _format_kafka_storage(java, settings, paths)
        command = configs.kafka_server_command(java, settings, paths)
    else:
        configs.render_cassandra(settings, paths)
        command = configs.cassandra_server_command(java, settings, paths)
    return processes.spawn(command, paths)


def _format_kafka_storage(java: Path, settings: LocalInfraSettings, paths: ServerPaths) -> None:
    """KRaft needs its log directory formatted with a cluster id once, before the first start."""
    command = configs.kafka_format_command(java, settings, paths)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LocalInfraError("formatting Kafka storage took over 120 s") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise LocalInfraError(f"formatting Kafka storage failed:\n{tail}")


def _wait_until_ready(settings: LocalInfraSettings, names: list[str], report: Progress) -> None:
    started = time.monotonic()
    deadline = started + settings.start_timeout_s
    pending = list(names)
    while pending:
        for name in list(pending):
            paths = server_paths(settings, name)
            if processes.running_pid(paths, configs.MAIN_CLASSES[name]) is None:
                pid = processes.read_pid(paths)
                how = processes.reap(pid) if pid is not None else "no pid file"
                raise LocalInfraError(
                    f"{name} exited during start-up ({how}); last lines of {paths.log}:\n"
                    + processes.log_tail(paths.log, _LOG_LINES_ON_FAILURE)
                )
            if _is_ready(settings, name):
                pending.remove(name)
                report(
                    f"{name}: ready at {client_address(settings, name)} "
                    f"after {time.monotonic() - started:.0f} s"
                )
        if pending and time.monotonic() > deadline:
            name = pending[0]
            raise LocalInfraError(
                f"{name} not ready after {settings.start_timeout_s:.0f} s "
                f"(MDGW_INFRA_START_TIMEOUT_S); last lines of its log:\n"
                + log_tail(settings, name, _LOG_LINES_ON_FAILURE)
            )
        if pending:
            time.sleep(0.5)
