"""The dev overlay's service workloads as plain Pods that ``podman kube play`` runs on this
machine, for the smoke test (``mdgw k8s smoke``).

podman runs Pods and Deployments but no StatefulSet, Job, Secret or Strimzi resource, and these
machines have no cluster network. So each workload becomes one Pod, from its own pod template
(same image, command, security context, read-only root, probes' ports), with only what cannot
exist here replaced:

- host networking, and per-pod ports (health, metrics, gRPC) so the pods can share it;
- environment from the rendered ConfigMaps written inline, then pointed at the local Kafka
  (plaintext: no Strimzi, no KafkaUser certificates) and Cassandra (one node, the smoke
  test's own keyspace);
- Secrets: the gateway's TLS directory becomes a host directory of development certificates,
  the token table a value; Kafka's certificate volumes are dropped;
- ``fieldRef: metadata.name`` (the tick writer's static membership) becomes the pod's name;
- an emptyDir is named after its pod (podman makes a named volume of it, which pods with the
  same volume name would share).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# workload kind/name -> the pod's name (a StatefulSet's first pod keeps its ordinal)
SMOKE_WORKLOADS: dict[tuple[str, str], str] = {
    ("Job", "mdgw-setup"): "mdgw-setup",
    ("Deployment", "feedhandler-coinbase"): "feedhandler-coinbase",
    ("StatefulSet", "tickwriter"): "tickwriter-0",
    ("Deployment", "gateway"): "gateway",
    ("StatefulSet", "gateway-trading"): "gateway-trading-0",
}
SIMULATOR = "venue-simulator"
_DROPPED_VOLUMES = frozenset({"kafka-ca", "kafka-user"})


# cert-manager's Secrets: the development certificates stand in (valid for 127.0.0.1)
_TLS_SECRETS = frozenset({"gateway-tls", "tickwriter-tls"})


@dataclass(frozen=True, slots=True)
class PodPorts:
    health: int
    metrics: int
    grpc: int | None = None


@dataclass(frozen=True, slots=True)
class SmokePlan:
    kafka_bootstrap: str
    cassandra_host: str
    cassandra_port: int
    keyspace: str
    image: str
    tls_dir: Path  # tls.crt, tls.key, ca.crt, readable by the pods' user
    auth_tokens: str  # GATEWAY_AUTH_TOKENS
    tickwriter_tokens: str  # TICKWRITER_AUTH_TOKENS
    venue_port: int
    symbols: str
    ports: Mapping[str, PodPorts] = field(default_factory=dict)  # by pod name

    @classmethod
    def with_ports(cls, base_port: int, **values: Any) -> SmokePlan:
        """Ports from ``base_port`` up: the venue, then health/metrics/gRPC per pod."""
        ports = {}
        for index, pod in enumerate([SIMULATOR, *SMOKE_WORKLOADS.values()]):
            first = base_port + 1 + 3 * index
            ports[pod] = PodPorts(health=first, metrics=first + 1, grpc=first + 2)
        return cls(venue_port=base_port, ports=ports, **values)


def podman_pods(documents: Iterable[Mapping[str, Any]], plan: SmokePlan) -> list[dict[str, Any]]:
    """The simulator and the smoke workloads as Pods, the setup Job's first."""
    documents = list(documents)
    configmaps = {
        d["metadata"]["name"]: dict(d.get("data", {}))
        for d in documents
        if d["kind"] == "ConfigMap"
    }
    workloads = {(d["kind"], d["metadata"]["name"]): d for d in documents}
    pods = []
    for key, pod_name in SMOKE_WORKLOADS.items():
        if key not in workloads:
            raise ValueError(f"the overlay renders no {key[0]} {key[1]}")
        pods.append(_pod(workloads[key], pod_name, configmaps, plan))
    feed = next(pod for pod in pods if pod["metadata"]["name"] == "feedhandler-coinbase")
    pods.insert(1, _simulator(feed, plan))
    return pods


def _pod(
    workload: Mapping[str, Any],
    name: str,
    configmaps: Mapping[str, Mapping[str, str]],
    plan: SmokePlan,
) -> dict[str, Any]:
    template = copy.deepcopy(workload["spec"]["template"])
    spec = template["spec"]
    spec["hostNetwork"] = True
    spec["restartPolicy"] = "Never" if workload["kind"] == "Job" else "Always"
    spec.pop("topologySpreadConstraints", None)
    spec["volumes"] = [
        _volume(volume, name, plan)
        for volume in spec.get("volumes", ())
        if volume["name"] not in _DROPPED_VOLUMES
    ]
    ports = plan.ports[name]
    for container in [*spec.get("initContainers", ()), *spec["containers"]]:
        container["image"] = plan.image
        container["env"] = _env(container, name, configmaps, plan, ports)
        container.pop("envFrom", None)
        container["volumeMounts"] = [
            {**mount, "name": f"{name}-{mount['name']}"}
            for mount in container.get("volumeMounts", ())
            if mount["name"] not in _DROPPED_VOLUMES
        ]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            container.pop(probe, None)  # podman has no gRPC probes; the smoke test asks itself
        container.pop("ports", None)  # host networking: the env says where each listens
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": template["metadata"].get("labels", {})},
        "spec": spec,
    }


def _volume(volume: Mapping[str, Any], pod_name: str, plan: SmokePlan) -> dict[str, Any]:
    name = f"{pod_name}-{volume['name']}"
    if "secret" in volume:
        if volume["secret"]["secretName"] not in _TLS_SECRETS:
            raise ValueError(f"no stand-in for the Secret {volume['secret']['secretName']}")
        return {"name": name, "hostPath": {"path": str(plan.tls_dir), "type": "Directory"}}
    return {**volume, "name": name}


def _token_secrets(plan: SmokePlan) -> dict[str, str]:
    """The operator-made token Secrets, by name: the plan's stand-ins."""
    return {
        "gateway-auth-tokens": plan.auth_tokens,
        "tickwriter-auth-tokens": plan.tickwriter_tokens,
    }


def _env(
    container: Mapping[str, Any],
    pod_name: str,
    configmaps: Mapping[str, Mapping[str, str]],
    plan: SmokePlan,
    ports: PodPorts,
) -> list[dict[str, str]]:
    env: dict[str, str] = {}
    for source in container.get("envFrom", ()):
        env.update(configmaps[source["configMapRef"]["name"]])
    for item in container.get("env", ()):
        if "value" in item:
            env[item["name"]] = item["value"]
            continue
        reference = item["valueFrom"]
        if "fieldRef" in reference and reference["fieldRef"]["fieldPath"] == "metadata.name":
            env[item["name"]] = pod_name
        elif reference.get("secretKeyRef", {}).get("name") in (tokens := _token_secrets(plan)):
            env[item["name"]] = tokens[reference["secretKeyRef"]["name"]]
        elif not reference.get("secretKeyRef", {}).get("optional", False):
            raise ValueError(f"no stand-in for {item['name']} of {pod_name}")
    env |= {
        "KAFKA_BOOTSTRAP_SERVERS": plan.kafka_bootstrap,
        "KAFKA_EXTRA_CONFIG": "{}",
        "KAFKA_REPLICATION_FACTOR": "1",
        "CASSANDRA_CONTACT_POINTS": plan.cassandra_host,
        "CASSANDRA_PORT": str(plan.cassandra_port),
        "CASSANDRA_KEYSPACE": plan.keyspace,
        "CASSANDRA_LOCAL_DC": "datacenter1",
        "CASSANDRA_REPLICATION_STRATEGY": "SimpleStrategy",
        "CASSANDRA_REPLICATION_FACTOR": "1",
        "CASSANDRA_DATACENTER_REPLICATION": "",
        "HEALTH_ADDRESS": "127.0.0.1",
        "HEALTH_PORT": str(ports.health),
        "METRICS_ADDRESS": "127.0.0.1",
        "METRICS_PORT": str(ports.metrics),
    }
    if "GATEWAY_PORT" in env:
        env |= {"GATEWAY_ADDRESS": "127.0.0.1", "GATEWAY_PORT": str(ports.grpc)}
        env |= {"GATEWAY_TLS_CLIENT_CA_FILE": ""} if "GATEWAY_TLS_CLIENT_CA_FILE" in env else {}
    if "TICKWRITER_GRPC_PORT" in env:
        env |= {"TICKWRITER_GRPC_ADDRESS": "127.0.0.1", "TICKWRITER_GRPC_PORT": str(ports.grpc)}
    if "FEEDHANDLER_VENUE" in env:
        env |= {
            "FEEDHANDLER_URL": f"ws://127.0.0.1:{plan.venue_port}",
            "FEEDHANDLER_SYMBOLS": plan.symbols,
        }
    return [{"name": key, "value": value} for key, value in env.items()]


def _simulator(feed: Mapping[str, Any], plan: SmokePlan) -> dict[str, Any]:
    """A synthetic venue for the feed handler to read, from the same image."""
    pod = copy.deepcopy(dict(feed))
    pod["metadata"] = {"name": SIMULATOR, "labels": {"app.kubernetes.io/name": SIMULATOR}}
    (container,) = pod["spec"]["containers"]
    container["name"] = "simulator"
    count = len(plan.symbols.split(","))
    container["args"] = ["simulate", "--venue", "coinbase", "--port", str(plan.venue_port)]
    container["args"] += ["--symbols", str(count), "--rate", "50"]
    container["env"] = [{"name": "LOG_FORMAT", "value": "json"}]
    tmp = {"name": f"{SIMULATOR}-tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}
    pod["spec"]["volumes"] = [tmp]
    container["volumeMounts"] = [{"name": tmp["name"], "mountPath": "/tmp"}]
    return pod
