"""The dev overlay's workloads as the Pods the podman smoke test plays (``mdgw k8s smoke``):
valid Pods, the workloads' own security and commands kept, only the cluster-only parts
replaced, and no two pods sharing a port or a volume."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from mdgw.commands.podman_pods import SIMULATOR, SMOKE_WORKLOADS, SmokePlan, podman_pods
from tests.unit.test_k8s_manifests import schema_errors
from tests.unit.test_k8s_workloads import rendered

PLAN = SmokePlan.with_ports(
    27100,
    kafka_bootstrap="127.0.0.1:27092",
    cassandra_host="127.0.0.1",
    cassandra_port=9042,
    keyspace="smoke_test",
    image="localhost/mdgw:dev",
    tls_dir=Path("/tmp/tls"),
    auth_tokens='{"t": {"account": "smoke", "permissions": ["market_data", "trading"]}}',
    tickwriter_tokens='{"t": {"account": "smoke", "permissions": ["write_ticks"]}}',
    symbols="SIM0-USD,SIM1-USD",
)


@pytest.fixture(scope="module")
def pods() -> list[dict[str, Any]]:
    return podman_pods(rendered("overlays/dev"), PLAN)


def _env(container: dict[str, Any]) -> dict[str, str]:
    names = [item["name"] for item in container["env"]]
    assert len(names) == len(set(names))
    return {item["name"]: item["value"] for item in container["env"]}


def _containers(pod: dict[str, Any]) -> list[dict[str, Any]]:
    return [*pod["spec"].get("initContainers", ()), *pod["spec"]["containers"]]


def test_the_setup_job_comes_first_then_the_venue_and_the_services(
    pods: list[dict[str, Any]],
) -> None:
    names = [pod["metadata"]["name"] for pod in pods]
    assert names[0] == "mdgw-setup"
    assert sorted(names) == sorted([SIMULATOR, *SMOKE_WORKLOADS.values()])


def test_each_is_a_valid_pod_on_host_networking(pods: list[dict[str, Any]]) -> None:
    for pod in pods:
        assert schema_errors(pod) == []
        assert pod["spec"]["hostNetwork"] is True


def test_the_workloads_keep_their_command_user_and_read_only_root(
    pods: list[dict[str, Any]],
) -> None:
    for pod in pods:
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        for container in _containers(pod):
            assert container["image"] == PLAN.image
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            assert container["args"]


def test_cluster_only_parts_are_replaced(pods: list[dict[str, Any]]) -> None:
    by_name = {pod["metadata"]["name"]: pod for pod in pods}
    for pod in pods:
        for volume in pod["spec"]["volumes"]:
            assert "secret" not in volume
        for container in _containers(pod):
            env = _env(container)
            if container["name"] == "simulator":
                continue
            assert env["KAFKA_BOOTSTRAP_SERVERS"] == PLAN.kafka_bootstrap
            assert env["KAFKA_EXTRA_CONFIG"] == "{}"
            assert env["CASSANDRA_KEYSPACE"] == PLAN.keyspace
    (writer,) = by_name["tickwriter-0"]["spec"]["containers"]
    assert _env(writer)["TICKWRITER_GROUP_INSTANCE_ID"] == "tickwriter-0"
    (market,) = by_name["gateway"]["spec"]["containers"]
    (owner,) = by_name["gateway-trading-0"]["spec"]["containers"]
    assert (_env(market)["GATEWAY_TRADING"], _env(owner)["GATEWAY_TRADING"]) == ("off", "own")
    assert _env(market)["GATEWAY_AUTH_TOKENS"] == PLAN.auth_tokens
    assert _env(market)["GATEWAY_TLS_CERT_FILE"].startswith("/etc/mdgw/tls/")
    (feed,) = by_name["feedhandler-coinbase"]["spec"]["containers"]
    assert _env(feed)["FEEDHANDLER_URL"] == f"ws://127.0.0.1:{PLAN.venue_port}"


def test_no_two_pods_share_a_port_or_a_volume(pods: list[dict[str, Any]]) -> None:
    ports: Counter[str] = Counter()
    volumes: Counter[str] = Counter()
    for pod in pods:
        for volume in pod["spec"]["volumes"]:
            volumes[volume["name"]] += 1
        listening = set()
        for container in _containers(pod):
            env = _env(container)
            listening |= {
                env[name]
                for name in ("HEALTH_PORT", "METRICS_PORT", "GATEWAY_PORT", "TICKWRITER_GRPC_PORT")
                if name in env and env[name] != "0"
            }
        ports.update(listening)
    assert max(ports.values()) == 1
    assert max(volumes.values()) == 1
