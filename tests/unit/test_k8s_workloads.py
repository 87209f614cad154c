"""The service workloads under k8s/, as kustomize renders the base and each overlay:

- every rendered document of base, dev and prod passes the same strict validation as the files;
- the generated resources (k8s/base/generated/derived.yaml) are what the code renders;
- each container runs a real ``mdgw`` command, with only variables some settings class reads,
  and its service's settings load from that environment;
- security context, resources and probes on the plaintext health port for every workload;
- the trading owner is one StatefulSet replica, every other gateway has trading off;
- every Secret a pod uses comes from a KafkaUser, a cert-manager Certificate, Strimzi's cluster
  CA, or is one of the documented operator-made Secrets;
- autoscaling targets and bounds come from the topic declarations; selectors select;
- the metric names in alerts and the dashboard are ones something exports.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings

from feedhandlers import metrics as feed_metrics
from feedhandlers.config import FeedHandlerSettings
from gateway import metrics as gateway_metrics
from gateway.config import GatewaySettings
from marketinfra.settings import CommonSettings, HealthSettings
from marketinfra.topics import TICKS_RAW
from mdgw.cli import build_parser
from mdgw.commands import k8s_derived
from tests.unit.test_k8s_manifests import K8S, MANIFESTS, OVERLAYS, _documents, schema_errors
from tickwriter import metrics as writer_metrics
from tickwriter.config import TickWriterSettings

ROOT = K8S.parents[1]
# Secrets the operator creates by hand (never in the repo); README "Deployment" says how.
OPERATOR_SECRETS = frozenset(
    {"gateway-auth-tokens", "tickwriter-auth-tokens", "cassandra-credentials"}
)
SERVICE_SETTINGS: dict[str, type[CommonSettings]] = {
    "feed": FeedHandlerSettings,
    "tickwriter": TickWriterSettings,
    "gateway": GatewaySettings,
    "schema": CommonSettings,
    "topics": CommonSettings,
}


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl not found: its built-in kustomize renders the overlays")
    result = subprocess.run(
        [kubectl, "kustomize", str(K8S.parent / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(_documents(result.stdout))


def _one(documents: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in documents if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


BASE = tuple(m.body for m in MANIFESTS)


def _workloads(documents: tuple[dict[str, Any], ...] = BASE) -> Iterator[dict[str, Any]]:
    for document in documents:
        if document["kind"] in ("Deployment", "StatefulSet", "Job"):
            labels = document["spec"]["template"]["metadata"].get("labels", {})
            if labels.get("mdgw/workload") == "true":
                yield document


def _containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return [*spec.get("initContainers", ()), *spec["containers"]]


def _id(workload: dict[str, Any]) -> str:
    return f"{workload['kind']}/{workload['metadata']['name']}"


WORKLOADS = tuple(_workloads())


# --- rendering ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_document_is_accepted(overlay: str) -> None:
    errors = {f"{d['kind']}/{d['metadata']['name']}": schema_errors(d) for d in rendered(overlay)}
    assert {key: value for key, value in errors.items() if value} == {}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_rendered_container_names_a_real_image(overlay: str) -> None:
    images = {
        container["image"]
        for workload in _workloads(rendered(overlay))
        for container in _containers(workload)
    }
    expected = {
        "base": "mdgw:0.1.0",
        "overlays/dev": "localhost/mdgw:dev",
        "overlays/prod": "registry.example.com/mdgw:0.1.0",
    }[overlay]
    assert images == {expected}


def test_dev_runs_one_of_each_and_prod_spreads_over_zones_with_rack_aware_kafka() -> None:
    dev, prod = rendered("overlays/dev"), rendered("overlays/prod")
    assert _one(dev, "StatefulSet", "tickwriter")["spec"]["replicas"] == 1
    assert _one(dev, "Deployment", "gateway")["spec"]["replicas"] == 1
    kafka = _one(prod, "Kafka", "mdgw")["spec"]["kafka"]
    assert kafka["rack"] == {"topologyKey": "topology.kubernetes.io/zone"}
    assert "RackAwareReplicaSelector" in kafka["config"]["replica.selector.class"]
    for kind, name in (("Deployment", "gateway"), ("StatefulSet", "tickwriter")):
        spread = _one(prod, kind, name)["spec"]["template"]["spec"]["topologySpreadConstraints"]
        zone = next(c for c in spread if c["topologyKey"] == "topology.kubernetes.io/zone")
        assert zone["whenUnsatisfiable"] == "DoNotSchedule"


def test_derived_yaml_is_what_the_code_renders() -> None:
    committed = (K8S / "generated" / "derived.yaml").read_text()
    assert committed == k8s_derived.render_derived(), (
        "k8s/base/generated/derived.yaml is stale: "
        "run `mdgw k8s derived > k8s/base/generated/derived.yaml`"
    )


# --- each container -------------------------------------------------------------------------


def _configmap_data(name: str) -> dict[str, str]:
    (found,) = [d for d in BASE if d["kind"] == "ConfigMap" and d["metadata"]["name"] == name]
    return dict(found["data"])


def _environment(container: dict[str, Any]) -> dict[str, str]:
    """What the container's process sees; a Secret's value is a stand-in of the right shape."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", ()):
        env |= _configmap_data(source["configMapRef"]["name"])
    for item in container.get("env", ()):
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item["valueFrom"]:
            env[item["name"]] = '{"t": {"account": "a", "permissions": ["market_data"]}}'
        else:
            env[item["name"]] = "tickwriter-0"
    return env


def _known_variables() -> set[str]:
    known: set[str] = set()

    def walk(settings: type[BaseSettings]) -> None:
        prefix = str(settings.model_config.get("env_prefix", ""))
        for name, field in settings.model_fields.items():
            annotation = field.annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
                walk(annotation)
            else:
                known.add(f"{prefix}{name}".upper())

    for settings in (FeedHandlerSettings, TickWriterSettings, GatewaySettings):
        walk(settings)
    return known


@pytest.mark.parametrize("workload", WORKLOADS, ids=_id)
def test_each_container_runs_an_mdgw_command_whose_settings_load_from_its_env(
    workload: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    known = _known_variables()
    for container in _containers(workload):
        assert container["image"] == "mdgw"
        build_parser().parse_args(container["args"])  # exits (fails) on an unknown command
        env = _environment(container)
        assert set(env) <= known, set(env) - known
        for name in known:
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings_class = SERVICE_SETTINGS[container["args"][0]]
        try:
            settings = settings_class()
        except ValidationError as exc:
            pytest.fail(f"{_id(workload)} {container['name']}: {exc}")
        assert settings.health == HealthSettings(port=8081, address="0.0.0.0")


@pytest.mark.parametrize("workload", WORKLOADS, ids=_id)
def test_each_pod_runs_unprivileged_on_a_read_only_root_with_bounded_resources(
    workload: dict[str, Any],
) -> None:
    pod = workload["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in _containers(workload):
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert "memory" in container["resources"]["limits"]
        mounts = {mount["mountPath"] for mount in container.get("volumeMounts", ())}
        assert "/tmp" in mounts  # the only writable place


@pytest.mark.parametrize("workload", [w for w in WORKLOADS if w["kind"] != "Job"], ids=_id)
def test_each_service_is_probed_over_grpc_on_its_health_port(workload: dict[str, Any]) -> None:
    health_port = int(_configmap_data("mdgw-platform-env")["HEALTH_PORT"])
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    expected = {
        "startupProbe": "liveness",
        "livenessProbe": "liveness",
        "readinessProbe": "readiness",
    }
    for probe, service in expected.items():
        assert container[probe]["grpc"] == {"port": health_port, "service": service}
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports["health"] == health_port
    metrics_port = int(_configmap_data("mdgw-platform-env")["METRICS_PORT"])
    assert ports["metrics"] == metrics_port


# --- the gateway, the trading owner, the tick writer, the feed handlers ----------------------


def _service_env(workload: dict[str, Any]) -> dict[str, str]:
    (container,) = workload["spec"]["template"]["spec"]["containers"]
    return _environment(container)


def test_only_one_single_replica_statefulset_owns_trading() -> None:
    gateways = [w for w in WORKLOADS if _service_env(w).get("GATEWAY_TRADING") is not None]
    owners = [w for w in gateways if _service_env(w)["GATEWAY_TRADING"] == "own"]
    assert [_id(w) for w in owners] == ["StatefulSet/gateway-trading"]
    (owner,) = owners
    assert owner["spec"]["replicas"] == 1
    assert owner["spec"]["updateStrategy"]["type"] == "RollingUpdate"  # old pod gone first
    assert all(_service_env(w)["GATEWAY_TRADING"] == "off" for w in gateways if w is not owner)
    assert not any(
        d["kind"] in ("HorizontalPodAutoscaler", "ScaledObject")
        and d["spec"]["scaleTargetRef"]["name"] == "gateway-trading"
        for d in BASE
    )


def test_gateway_replicas_sit_behind_a_headless_service_and_scale_on_cpu() -> None:
    service = _one(BASE, "Service", "gateway")
    assert service["spec"]["clusterIP"] == "None"  # DNS gives every pod: client round_robin
    hpa = _one(BASE, "HorizontalPodAutoscaler", "gateway")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "gateway",
    }
    env = _service_env(_one(BASE, "Deployment", "gateway"))
    assert float(env["GATEWAY_MAX_CONNECTION_AGE_S"]) <= 900  # new replicas get traffic


def test_tick_writers_are_static_members_scaled_by_lag_at_most_one_per_partition() -> None:
    writer = _one(BASE, "StatefulSet", "tickwriter")
    (container,) = writer["spec"]["template"]["spec"]["containers"]
    instance = next(e for e in container["env"] if e["name"] == "TICKWRITER_GROUP_INSTANCE_ID")
    assert instance["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert _one(BASE, "Service", writer["spec"]["serviceName"])["spec"]["clusterIP"] == "None"
    scaled = _one(BASE, "ScaledObject", "tickwriter")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "tickwriter"
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert scaled["spec"]["maxReplicaCount"] == TICKS_RAW.partitions
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["metadata"]["topic"] == TickWriterSettings().ticks_topic
    assert trigger["metadata"]["consumerGroup"] == _service_env(writer)["TICKWRITER_GROUP_ID"]
    assert (
        trigger["metadata"]["bootstrapServers"]
        == _configmap_data("mdgw-platform-env")["KAFKA_BOOTSTRAP_SERVERS"]
    )


def test_each_venue_connection_is_one_pod_replaced_never_doubled() -> None:
    feeds = [w for w in WORKLOADS if w["metadata"]["name"].startswith("feedhandler-")]
    assert len(feeds) >= 3
    for feed in feeds:
        assert feed["spec"]["replicas"] == 1
        assert feed["spec"]["strategy"] == {"type": "Recreate"}
        assert f"feedhandler-{_service_env(feed)['FEEDHANDLER_VENUE']}" == feed["metadata"]["name"]


# --- secrets, users, selectors ---------------------------------------------------------------


def _secrets_used(workload: dict[str, Any]) -> set[str]:
    pod = workload["spec"]["template"]["spec"]
    names = {v["secret"]["secretName"] for v in pod.get("volumes", ()) if "secret" in v}
    for container in _containers(workload):
        for item in container.get("env", ()):
            reference = item.get("valueFrom", {}).get("secretKeyRef")
            if reference is not None:
                names.add(reference["name"])
    return names


def test_every_secret_a_pod_uses_is_issued_here_or_made_by_the_operator() -> None:
    users = {d["metadata"]["name"] for d in BASE if d["kind"] == "KafkaUser"}
    certificates = {d["spec"]["secretName"] for d in BASE if d["kind"] == "Certificate"}
    issued = users | certificates | {f"{k8s_derived.STRIMZI_CLUSTER}-cluster-ca-cert"}
    for workload in WORKLOADS:
        assert _secrets_used(workload) <= issued | OPERATOR_SECRETS, _id(workload)
    assert not any(d["kind"] == "Secret" for d in BASE)  # no secret material in the repo


def test_each_workload_talks_to_kafka_as_its_own_user() -> None:
    users = {d["metadata"]["name"]: d for d in BASE if d["kind"] == "KafkaUser"}
    seen = set()
    for workload in WORKLOADS:
        (user,) = _secrets_used(workload) & users.keys()
        seen.add(user)
        assert users[user]["spec"]["authentication"] == {"type": "tls"}
    assert seen == {"feedhandler", "tickwriter", "gateway", "mdgw-setup"}


def test_the_feed_handler_user_may_only_write_ticks() -> None:
    user = _one(BASE, "KafkaUser", "feedhandler")
    topics = {
        acl["resource"]["name"]: set(acl["operations"])
        for acl in user["spec"]["authorization"]["acls"]
        if acl["resource"]["type"] == "topic"
    }
    assert topics == {FeedHandlerSettings().ticks_topic: {"Write", "Describe"}}


def _selects(selector: dict[str, str], documents: tuple[dict[str, Any], ...]) -> bool:
    for document in documents:
        template = document.get("spec", {}).get("template", {})
        labels = (
            template.get("metadata", {}).get("labels", {})
            if document["kind"]
            in (
                "Deployment",
                "StatefulSet",
            )
            else {}
        )
        if labels and selector.items() <= labels.items():
            return True
    return False


def test_services_and_budgets_of_our_workloads_select_pods() -> None:
    ours = {"feedhandler", "tickwriter", "gateway", "gateway-trading"}
    for document in BASE:
        if (
            document["kind"] == "Service"
            and document["metadata"]["labels"].get("app.kubernetes.io/name") in ours
        ):
            assert _selects(document["spec"]["selector"], BASE), document["metadata"]["name"]
        if document["kind"] == "PodDisruptionBudget":
            selector = document["spec"]["selector"]["matchLabels"]
            assert _selects(selector, BASE), document["metadata"]["name"]


def test_network_policies_let_workloads_reach_the_kafka_listener_and_cql() -> None:
    policy = _one(BASE, "NetworkPolicy", "mdgw-workloads-egress-platform")
    ports = {port["port"] for rule in policy["spec"]["egress"] for port in rule["ports"]}
    (listener,) = _one(BASE, "Kafka", "mdgw")["spec"]["kafka"]["listeners"]
    assert {listener["port"], 9042, 53} <= ports


# --- metric names ----------------------------------------------------------------------------

_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def _exported_families() -> set[str]:
    names = set()
    for registry in (
        feed_metrics.REGISTRY,
        writer_metrics.REGISTRY,
        gateway_metrics.REGISTRY,
        gateway_metrics.SUPERVISOR_REGISTRY,
    ):
        for family in registry.collect():
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names


def _our_names(text: str) -> set[str]:
    """Our services' series in PromQL text (not inside recording-rule names), as families."""
    names = set()
    for name in re.findall(r"(?<![:\w])((?:feedhandler|tickwriter|gateway)_[a-z_]*[a-z])", text):
        suffix = next((s for s in _SUFFIXES if name.endswith(s)), "")
        names.add(name.removesuffix(suffix) if suffix else name)
    return names


def test_alerts_and_the_dashboard_use_only_metrics_our_services_export() -> None:
    exported = _exported_families()
    alerts = (K8S / "monitoring" / "alerts.yaml").read_text()
    dashboard = json.loads((K8S / "monitoring" / "dashboards" / "mdgw-pipeline.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", ())
    ]
    used = _our_names(alerts) | _our_names("\n".join(expressions))
    # a log event named in an alert's text, and the families of the event-loop regex
    used -= {"gateway_trading_log_failed"}
    loop_lag = {f"{service}_event_loop_lag_seconds" for service in ("feedhandler", "tickwriter")}
    assert used | loop_lag <= exported, (used | loop_lag) - exported
    recorded = {
        rule["record"]
        for document in yaml.safe_load_all((K8S / "generated" / "derived.yaml").read_text())
        if document["kind"] == "PrometheusRule"
        for group in document["spec"]["groups"]
        for rule in group["rules"]
    }
    for name in set(re.findall(r"mdgw:[a-z_:0-9]+", alerts + "\n".join(expressions))):
        assert name in recorded, name
