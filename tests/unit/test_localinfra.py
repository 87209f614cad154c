import os
import socket
import time
from pathlib import Path

import pytest

from mdgw.localinfra import LocalInfraError, LocalInfraSettings, status, up
from mdgw.localinfra.configs import new_kafka_cluster_id, render_cassandra, render_kafka
from mdgw.localinfra.java import find_java
from mdgw.localinfra.layout import server_paths


@pytest.fixture
def settings(tmp_path: Path) -> LocalInfraSettings:
    return LocalInfraSettings(
        home=tmp_path / "infra",
        kafka_port=19092,
        kafka_controller_port=19093,
        cassandra_port=19042,
        cassandra_storage_port=17000,
        cassandra_jmx_port=17199,
    )


def test_missing_jdk_at_java_home_is_a_clear_error(tmp_path: Path) -> None:
    settings = LocalInfraSettings(home=tmp_path, java_home=tmp_path / "no-such-jdk")
    with pytest.raises(LocalInfraError, match=r"no Java found: .* does not exist"):
        find_java(settings)


def test_no_java_on_path_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.delenv("MDGW_INFRA_JAVA_HOME", raising=False)
    started = time.monotonic()
    with pytest.raises(LocalInfraError, match="no Java found: install OpenJDK 17 or set JAVA_HOME"):
        up(LocalInfraSettings(home=tmp_path))
    assert time.monotonic() - started < 2


def test_taken_port_is_named_at_once(settings: LocalInfraSettings) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        taken = settings.model_copy(update={"kafka_port": port})
        started = time.monotonic()
        with pytest.raises(LocalInfraError, match=f"port {port} \\(the kafka client port\\)"):
            up(taken, only=["kafka"])
        assert time.monotonic() - started < 5


def test_stale_pid_file_counts_as_stopped(settings: LocalInfraSettings) -> None:
    paths = server_paths(settings, "kafka")
    paths.make_dirs()
    paths.pid.write_text(f"{os.getpid()}\n")  # alive, but not a Kafka JVM
    kafka = next(item for item in status(settings) if item.name == "kafka")
    assert kafka.state == "stopped"
    assert kafka.pid is None


def test_configs_carry_the_configured_ports(settings: LocalInfraSettings) -> None:
    kafka_paths = server_paths(settings, "kafka")
    kafka_paths.make_dirs()
    properties = render_kafka(settings, kafka_paths).read_text()
    assert "listeners=PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093" in properties
    assert f"log.dirs={kafka_paths.data}" in properties
    cassandra_paths = server_paths(settings, "cassandra")
    cassandra_paths.make_dirs()
    yaml_text = render_cassandra(settings, cassandra_paths).read_text()
    assert "native_transport_port: 19042" in yaml_text
    assert 'seeds: "127.0.0.1:17000"' in yaml_text
    assert "${" not in yaml_text


def test_kafka_cluster_id_has_kafka_uuid_shape() -> None:
    cluster_id = new_kafka_cluster_id()
    assert len(cluster_id) == 22
    assert not cluster_id.startswith("-")


def test_fresh_refuses_to_wipe_running_servers(settings: LocalInfraSettings) -> None:
    # Nothing runs under this home, so --fresh only wipes (here: nothing) and then needs Java;
    # the guard is exercised against the real servers in tests/integration.
    assert all(item.state == "stopped" for item in status(settings))
