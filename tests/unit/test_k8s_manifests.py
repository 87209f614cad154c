"""Everything under k8s/, checked offline: every file of the base (k8s/base) and what the base
and each overlay (k8s/overlays/dev, prod) render to with kustomize (``kubectl kustomize``).

- Built-in kinds against the Kubernetes 1.33 OpenAPI schemas (``kubernetes-validate``,
  strict: an unknown field fails, as kubectl's default strict field validation would).
- Custom resources against the CRDs in tests/data/k8s-crds (Strimzi 1.2.0, KEDA 2.20.2,
  Prometheus Operator 0.93.0, cert-manager 1.19.2), made strict the same way
  (``additionalProperties: false`` wherever a CRD names its fields), plus by hand the few CEL
  rules (``x-kubernetes-validations``) those CRDs carry, which JSON Schema ignores.
- An apiVersion/kind in neither source fails, so ``kafka.strimzi.io/v1beta2`` or a typo does.
- The pieces agree: topics.yaml is what the code renders, the shared env ConfigMap loads into
  marketinfra.settings and names the Kafka and Cassandra defined here, selectors match.
"""

from __future__ import annotations

import argparse
import copy
import functools
import re
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from jsonschema import Draft7Validator
from pydantic_settings import BaseSettings

from marketinfra.settings import (
    CassandraSettings,
    HealthSettings,
    KafkaSettings,
    LogSettings,
    MetricsSettings,
)
from marketinfra.topics import ALL_TOPICS
from mdgw.commands import k8s_derived, k8s_topics

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s" / "base"
OVERLAYS = ("base", "overlays/dev", "overlays/prod")
CRD_DIR = ROOT / "tests" / "data" / "k8s-crds"
KUBERNETES_VERSION = "1.33"
NAMESPACE = "mdgw"
# kafka-versions.yaml of Strimzi 1.2.0, the versions marked supported (tests/data/k8s-crds).
STRIMZI_SUPPORTED_KAFKA_VERSIONS = frozenset({"4.2.0", "4.2.1", "4.3.0", "4.3.1"})
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Manifest:
    source: str  # path relative to k8s/
    body: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return self.body["apiVersion"], self.body["kind"]

    @property
    def name(self) -> str:
        return str(self.body["metadata"]["name"])

    def __str__(self) -> str:
        return f"{self.source}:{self.body.get('kind')}/{self.body.get('metadata', {}).get('name')}"


def _documents(text: str) -> Iterator[dict[str, Any]]:
    """The resources of a YAML text; a v1 List gives its items (kustomize does the same)."""
    for body in yaml.safe_load_all(text):
        if body is None:
            continue
        if body.get("apiVersion") == "v1" and body.get("kind") == "List":
            yield from body["items"]
        else:
            yield body


def _load_manifests() -> tuple[Manifest, ...]:
    found = []
    for path in sorted(K8S.rglob("*.y*ml")):
        if path.name == "kustomization.yaml":
            continue
        found.extend(
            Manifest(str(path.relative_to(K8S)), body) for body in _documents(path.read_text())
        )
    return tuple(found)


MANIFESTS = _load_manifests()


def _only(kind: str, name: str | None = None) -> Manifest:
    matches = [m for m in MANIFESTS if m.body["kind"] == kind and name in (None, m.name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''} under k8s/, found {len(matches)}"
    return matches[0]


# --- schemas -------------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """Forbid fields an object schema does not name, unless it keeps unknown fields."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _strict(value) for key, value in schema.items()}
    if (
        schema.get("type") == "object"
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False
    return schema


def _served_versions() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path in sorted(CRD_DIR.glob("*/*.yaml")):
        crd = yaml.safe_load(path.read_text())
        assert crd["apiVersion"] == "apiextensions.k8s.io/v1", path.name
        for version in crd["spec"]["versions"]:
            if version.get("served"):
                api_version = f"{crd['spec']['group']}/{version['name']}"
                yield (
                    api_version,
                    crd["spec"]["names"]["kind"],
                    version["schema"]["openAPIV3Schema"],
                )


@functools.cache
def _crd_validators() -> dict[tuple[str, str], Draft7Validator]:
    return {
        (api_version, kind): Draft7Validator(_strict(copy.deepcopy(schema)))
        for api_version, kind, schema in _served_versions()
    }


# The CEL rules of the CRDs above, by kind, field path and rule text, written as Python.
# A missing field makes CEL's `self.field` an error, which the API server reports as a
# failed rule, hence the .get(..., "") below.
_CelCheck = Callable[[dict[str, Any]], bool]
CEL_RULES: dict[tuple[str, str, str], _CelCheck] = {
    (
        "Kafka",
        "spec.kafka.rack",
        '(has(self.type) && self.type != "topology-label") || self.topologyKey != ""',
    ): lambda s: ("type" in s and s["type"] != "topology-label") or s.get("topologyKey", "") != "",
    (
        "Kafka",
        "spec.kafka.rack",
        'has(self.type) == false || self.type != "environment-variable" || self.envVarName != ""',
    ): lambda s: (
        "type" not in s or s["type"] != "environment-variable" or s.get("envVarName", "") != ""
    ),
    (
        "Kafka",
        "spec.kafka.metricsConfig",
        "self.type != 'jmxPrometheusExporter' || has(self.valueFrom)",
    ): lambda s: s.get("type") != "jmxPrometheusExporter" or "valueFrom" in s,
    (
        "Kafka",
        "spec.cruiseControl.metricsConfig",
        "self.type != 'jmxPrometheusExporter' || has(self.valueFrom)",
    ): lambda s: s.get("type") != "jmxPrometheusExporter" or "valueFrom" in s,
    (
        "Kafka",
        "spec.cruiseControl.metricsConfig",
        "self.type != 'strimziMetricsReporter'",
    ): lambda s: s.get("type") != "strimziMetricsReporter",
    (
        "KafkaUser",
        "spec.authentication",
        "self.type == 'tls' || (!has(self.validityDays) && !has(self.renewalDays))",
    ): lambda s: s.get("type") == "tls" or ("validityDays" not in s and "renewalDays" not in s),
    (
        "KafkaUser",
        "spec.authentication",
        "self.type != 'tls' || (has(self.renewalDays) == has(self.validityDays))",
    ): lambda s: s.get("type") != "tls" or (("renewalDays" in s) == ("validityDays" in s)),
    (
        "KafkaUser",
        "spec.authentication",
        "self.type != 'tls' || !has(self.renewalDays) || !has(self.validityDays) "
        "|| self.renewalDays < self.validityDays",
    ): lambda s: (
        s.get("type") != "tls"
        or "renewalDays" not in s
        or "validityDays" not in s
        or s["renewalDays"] < s["validityDays"]
    ),
    (
        "ScaledObject",
        "spec",
        "!has(self.minReplicaCount) || self.minReplicaCount <= (has(self.maxReplicaCount) "
        "? self.maxReplicaCount : 100)",
    ): lambda s: (
        "minReplicaCount" not in s or s["minReplicaCount"] <= s.get("maxReplicaCount", 100)
    ),
}


def _cel_rules_in(schema: dict[str, Any], path: str) -> Iterator[tuple[str, str]]:
    for rule in schema.get("x-kubernetes-validations", ()):
        yield path, rule["rule"]
    for name, child in schema.get("properties", {}).items():
        yield from _cel_rules_in(child, f"{path}.{name}" if path else name)
    if isinstance(schema.get("items"), dict):
        yield from _cel_rules_in(schema["items"], f"{path}[]")


def _values_at(document: Any, path: str) -> Iterator[Any]:
    head, _, rest = path.partition(".")
    items = head.endswith("[]")
    head = head.removesuffix("[]")
    value = document.get(head) if isinstance(document, dict) else None
    values = (value if isinstance(value, list) else []) if items else [value]
    for item in values:
        if item is None:
            continue
        if rest:
            yield from _values_at(item, rest)
        else:
            yield item


def _cel_errors(document: dict[str, Any]) -> list[str]:
    errors = []
    for (kind, path, rule), check in CEL_RULES.items():
        if document.get("kind") != kind:
            continue
        for value in _values_at(document, path):
            if not check(value):
                errors.append(f"{path}: fails x-kubernetes-validations rule {rule}")
    return errors


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Why the API server (with the CRDs of tests/data/k8s-crds installed) would refuse it."""
    try:
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        where = ".".join(str(part) for part in exc.absolute_path) or "(document)"
        return [f"{where}: {exc.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        pass  # not a built-in kind: a custom resource, or nothing
    else:
        return []
    api_version, kind = document.get("apiVersion"), document.get("kind")
    validator = _crd_validators().get((str(api_version), str(kind)))
    if validator is None:
        return [
            f"unknown apiVersion/kind {api_version}/{kind}: neither built into Kubernetes "
            f"{KUBERNETES_VERSION} nor defined by a CRD under tests/data/k8s-crds"
        ]
    errors = [
        f"{'.'.join(str(part) for part in error.absolute_path) or '(document)'}: {error.message}"
        for error in validator.iter_errors(document)
    ]
    # CRD schemas leave metadata as a bare object; check it as the API server does.
    as_configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": document["metadata"]}
    try:
        kubernetes_validate.validate(as_configmap, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as exc:
        errors.append(f"metadata: {exc.message}")
    return sorted(errors + _cel_errors(document))


# --- every document ------------------------------------------------------------------------


@pytest.mark.parametrize("manifest", MANIFESTS, ids=str)
def test_manifest_is_accepted_by_kubernetes_1_33_with_strimzi_1_2_0(manifest: Manifest) -> None:
    assert schema_errors(manifest.body) == []


@pytest.mark.parametrize("manifest", MANIFESTS, ids=str)
def test_manifest_lives_in_the_mdgw_namespace_under_a_valid_name(manifest: Manifest) -> None:
    name = manifest.name
    assert len(name) <= 253
    assert _DNS_SUBDOMAIN.match(name), name
    if manifest.body["kind"] == "Namespace":
        assert name == NAMESPACE
    else:
        assert manifest.body["metadata"].get("namespace") == NAMESPACE


def test_manifests_are_unique_by_kind_and_name() -> None:
    keys = [(m.body["kind"], m.name) for m in MANIFESTS]
    assert len(keys) == len(set(keys))


def test_kustomization_lists_every_manifest_file() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    assert set(listed) == {manifest.source for manifest in MANIFESTS}


# --- the validator itself catches what it should --------------------------------------------


def _broken(kind: str, change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    document = copy.deepcopy(next(m.body for m in MANIFESTS if m.body["kind"] == kind))
    change(document)
    return document


@pytest.mark.parametrize(
    ("kind", "change", "expected"),
    [
        pytest.param(
            "Kafka",
            lambda d: d["spec"].update(zookeeper={"replicas": 3}),
            "'zookeeper' was unexpected",
            id="field-removed-in-kafka-v1",
        ),
        pytest.param(
            "Kafka",
            lambda d: d["spec"]["kafka"].update(replicas=3),
            "'replicas' was unexpected",
            id="kafka-v1-takes-replicas-from-the-node-pool",
        ),
        pytest.param(
            "KafkaNodePool",
            lambda d: d["spec"].update(replica=d["spec"].pop("replicas")),
            "'replicas' is a required property",
            id="misspelt-required-field",
        ),
        pytest.param(
            "KafkaNodePool",
            lambda d: d["metadata"].update(lables={"a": "b"}),
            "'lables' was unexpected",
            id="misspelt-custom-resource-metadata",
        ),
        pytest.param(
            "KafkaTopic",
            lambda d: d["spec"].update(partitions="64"),
            "'64' is not of type 'integer'",
            id="wrong-type",
        ),
        pytest.param(
            "Kafka",
            lambda d: d.update(apiVersion="kafka.strimzi.io/v1beta2"),
            "unknown apiVersion/kind kafka.strimzi.io/v1beta2/Kafka",
            id="v1beta2-gone-in-strimzi-1",
        ),
        pytest.param(
            "Kafka",
            lambda d: d.update(kind="KafkaCluster"),
            "unknown apiVersion/kind kafka.strimzi.io/v1/KafkaCluster",
            id="unknown-kind",
        ),
        pytest.param(
            "Kafka",
            lambda d: d["spec"]["kafka"]["metricsConfig"].pop("valueFrom"),
            "fails x-kubernetes-validations rule self.type != 'jmxPrometheusExporter'",
            id="cel-rule",
        ),
        pytest.param(
            "Kafka",
            lambda d: d["spec"]["kafka"].update(rack={"type": "topology-label"}),
            'fails x-kubernetes-validations rule (has(self.type) && self.type != "topology-label")',
            id="cel-rule-missing-field",
        ),
        pytest.param(
            "StatefulSet",
            lambda d: d["spec"]["template"]["spec"]["containers"][0].update(imag="cassandra:5"),
            "'imag' was unexpected",
            id="misspelt-built-in-field",
        ),
        pytest.param(
            "StatefulSet",
            lambda d: d.update(apiVersion="apps/v1beta2"),
            "unknown apiVersion/kind apps/v1beta2/StatefulSet",
            id="built-in-version-removed",
        ),
        pytest.param(
            "StatefulSet",
            lambda d: d.update(apiVersion="apps.k8s.io/v1"),
            "is not one of ['apps/v1']",
            id="built-in-group-misspelt",
        ),
        pytest.param(
            "PodDisruptionBudget",
            lambda d: d["spec"].update(maxUnavailable=[1]),
            "is not valid under any of the given schemas",
            id="built-in-wrong-type",
        ),
    ],
)
def test_validator_rejects(
    kind: str, change: Callable[[dict[str, Any]], None], expected: str
) -> None:
    errors = schema_errors(_broken(kind, change))
    assert any(expected in error for error in errors), errors


def test_every_cel_rule_of_the_crds_is_checked_by_hand() -> None:
    in_crds = {
        (kind, path, rule)
        for _, kind, schema in _served_versions()
        for path, rule in _cel_rules_in(schema, "")
    }
    assert in_crds == set(CEL_RULES), "a CRD changed its x-kubernetes-validations: update CEL_RULES"


# --- Kafka ---------------------------------------------------------------------------------


def test_kafka_runs_kraft_with_one_pool_of_three_combined_nodes() -> None:
    kafka = _only("Kafka").body
    pool = _only("KafkaNodePool").body
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    assert pool["spec"]["replicas"] == 3  # an odd controller quorum that survives one loss
    volumes = pool["spec"]["storage"]["volumes"]
    assert pool["spec"]["storage"]["type"] == "jbod"
    assert all(v["type"] == "persistent-claim" and v["deleteClaim"] is False for v in volumes)
    assert [v.get("kraftMetadata") for v in volumes].count("shared") == 1
    assert {"cpu", "memory"} <= pool["spec"]["resources"]["requests"].keys()
    assert "memory" in pool["spec"]["resources"]["limits"]


def test_kafka_version_is_one_strimzi_1_2_0_supports() -> None:
    kafka = _only("Kafka").body["spec"]["kafka"]
    assert kafka["version"] in STRIMZI_SUPPORTED_KAFKA_VERSIONS
    major_minor = ".".join(kafka["version"].split(".")[:2])
    assert kafka["metadataVersion"].split("-")[0] == major_minor


def test_kafka_replicates_everything_three_ways_and_never_auto_creates_topics() -> None:
    kafka = _only("Kafka").body["spec"]
    config = kafka["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["offsets.topic.replication.factor"] == 3
    assert config["transaction.state.log.replication.factor"] == 3
    assert config["transaction.state.log.min.isr"] == 2
    assert config["auto.create.topics.enable"] is False
    (listener,) = kafka["kafka"]["listeners"]  # no unauthenticated listener
    assert (listener["name"], listener["port"], listener["tls"]) == ("tls", 9093, True)
    assert listener["authentication"] == {"type": "tls"}
    assert kafka["kafka"]["authorization"] == {"type": "simple"}
    assert {"topicOperator", "userOperator"} <= kafka["entityOperator"].keys()


def test_kafka_metrics_config_names_a_configmap_key_with_exporter_rules() -> None:
    kafka = _only("Kafka").body
    ref = kafka["spec"]["kafka"]["metricsConfig"]["valueFrom"]["configMapKeyRef"]
    configmap = _only("ConfigMap", ref["name"]).body
    assert configmap["metadata"]["namespace"] == kafka["metadata"]["namespace"]
    exporter = yaml.safe_load(configmap["data"][ref["key"]])
    assert exporter["rules"]
    for rule in exporter["rules"]:
        re.compile(rule["pattern"])
        assert rule["type"] in {"GAUGE", "COUNTER", "UNTYPED"}


def _exporter_config() -> dict[str, Any]:
    ref = _only("Kafka").body["spec"]["kafka"]["metricsConfig"]["valueFrom"]["configMapKeyRef"]
    config: dict[str, Any] = yaml.safe_load(
        _only("ConfigMap", ref["name"]).body["data"][ref["key"]]
    )
    return config


def _exported_as(
    mbean_line: str, config: dict[str, Any] | None = None
) -> tuple[str, dict[str, str]] | None:
    """What the JMX exporter makes of one `domain<key=value, ...><>attribute: value` line:
    the first rule whose pattern matches (unanchored) names it; names are sanitized.
    ``config``: the exporter's rules (default: Kafka's)."""
    config = config if config is not None else _exporter_config()
    for rule in config["rules"]:
        match = re.fullmatch(f".*(?:{rule['pattern']}).*", mbean_line)
        if match is None:
            continue

        def expand(template: str, match: re.Match[str] = match) -> str:
            return re.sub(r"\$(\d+)", lambda ref: match.group(int(ref.group(1))), template)

        name = re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9:_]", "_", expand(rule["name"])))
        if config.get("lowercaseOutputName"):
            name = name.lower()
        labels = {expand(k): expand(v) for k, v in rule.get("labels", {}).items()}
        return name, labels
    return None


@pytest.mark.parametrize(
    ("mbean_line", "metric"),
    [
        (
            "kafka.server<type=ReplicaManager, name=UnderReplicatedPartitions><>Value: 0",
            ("kafka_server_replicamanager_underreplicatedpartitions", {}),
        ),
        (
            "kafka.server<type=ReplicaManager, name=UnderMinIsrPartitionCount><>Value: 0",
            ("kafka_server_replicamanager_underminisrpartitioncount", {}),
        ),
        (
            "kafka.controller<type=KafkaController, name=OfflinePartitionsCount><>Value: 0",
            ("kafka_controller_kafkacontroller_offlinepartitionscount", {}),
        ),
        (
            "kafka.controller<type=KafkaController, name=ActiveControllerCount><>Value: 1",
            ("kafka_controller_kafkacontroller_activecontrollercount", {}),
        ),
        (
            "kafka.server<type=BrokerTopicMetrics, name=MessagesInPerSec, topic=ticks.raw>"
            "<>Count: 7",
            ("kafka_server_brokertopicmetrics_messagesin_total", {"topic": "ticks.raw"}),
        ),
        (
            "kafka.server<type=BrokerTopicMetrics, name=BytesInPerSec><>Count: 7",
            ("kafka_server_brokertopicmetrics_bytesin_total", {}),
        ),
        (
            "kafka.network<type=RequestMetrics, name=TotalTimeMs, request=Produce>"
            "<>99thPercentile: 3.5",
            (
                "kafka_network_requestmetrics_totaltimems",
                {"request": "Produce", "quantile": "0.99"},
            ),
        ),
        (
            "kafka.network<type=RequestChannel, name=RequestQueueSize><>Value: 0",
            ("kafka_network_requestchannel_requestqueuesize", {}),
        ),
        (
            "kafka.server<type=raft-metrics><>current-leader: 1.0",
            ("kafka_server_raftmetrics_current_leader", {}),
        ),
    ],
)
def test_kafka_metrics_rules_export_what_the_alerts_need(
    mbean_line: str, metric: tuple[str, dict[str, str]]
) -> None:
    assert _exported_as(mbean_line) == metric


@pytest.mark.parametrize(
    ("mbean_line", "metric"),
    [
        (
            "org.apache.cassandra.metrics<type=ClientRequest, scope=Write, name=Latency>"
            "<>99thPercentile: 812.0",
            ("cassandra_clientrequest_latency_p99_seconds", {"request": "Write"}),
        ),
        (
            "org.apache.cassandra.metrics<type=ClientRequest, scope=Read, name=Latency>"
            "<>99thPercentile: 812.0",
            ("cassandra_clientrequest_latency_p99_seconds", {"request": "Read"}),
        ),
        (
            "org.apache.cassandra.metrics<type=ClientRequest, scope=Write, name=Timeouts>"
            "<>Count: 3",
            ("cassandra_clientrequest_timeouts_total", {"request": "Write"}),
        ),
        (
            "org.apache.cassandra.metrics<type=Compaction, name=PendingTasks><>Value: 4",
            ("cassandra_compaction_pending_tasks", {}),
        ),
    ],
)
def test_cassandra_metrics_rules_export_what_the_alerts_need(
    mbean_line: str, metric: tuple[str, dict[str, str]]
) -> None:
    configmap = _only("ConfigMap", "cassandra-metrics").body
    config = yaml.safe_load(configmap["data"]["cassandra-metrics-config.yml"])
    assert _exported_as(mbean_line, config) == metric
    sts = _only("StatefulSet", "cassandra").body
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    agent = _env(container)["JVM_EXTRA_OPTS"]
    assert agent.endswith(":/etc/cassandra-metrics/cassandra-metrics-config.yml")
    assert "=7070:" in agent


# --- topics --------------------------------------------------------------------------------


def test_topics_yaml_is_what_the_code_renders() -> None:
    committed = (K8S / "kafka" / "topics.yaml").read_text()
    rendered = k8s_topics.render_topic_manifests(ALL_TOPICS, k8s_topics.REPLICATION_FACTOR)
    assert committed == rendered, (
        "k8s/base/kafka/topics.yaml is stale: run `mdgw k8s topics > k8s/base/kafka/topics.yaml`"
    )


def test_every_declared_topic_has_one_kafkatopic_for_this_cluster() -> None:
    kafka = _only("Kafka").body
    pool = _only("KafkaNodePool").body
    topics = {
        m.body["spec"]["topicName"]: m.body for m in MANIFESTS if m.body["kind"] == "KafkaTopic"
    }
    assert list(topics) == [spec.name for spec in ALL_TOPICS]
    assert (kafka["metadata"]["name"], kafka["metadata"]["namespace"]) == (
        k8s_topics.STRIMZI_CLUSTER,
        k8s_topics.NAMESPACE,
    )
    for spec in ALL_TOPICS:
        topic = topics[spec.name]
        assert _DNS_LABEL.match(topic["metadata"]["name"])
        assert topic["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
        assert topic["spec"]["partitions"] == spec.partitions
        assert (
            topic["spec"]["replicas"]
            == kafka["spec"]["kafka"]["config"]["default.replication.factor"]
        )
        assert topic["spec"]["replicas"] <= pool["spec"]["replicas"]
        assert topic["spec"]["config"] == spec.config(topic["spec"]["replicas"])
        assert topic["metadata"]["annotations"] == {
            "mdgw/record-key": spec.key,
            "mdgw/record-value": spec.value,
        }


def test_mdgw_k8s_topics_prints_the_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="mdgw")
    k8s_topics.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["k8s", "topics"])
    assert args.handler(args) == 0
    assert capsys.readouterr().out == (K8S / "kafka" / "topics.yaml").read_text()


def test_render_follows_the_replication_factor_it_is_given() -> None:
    (document,) = yaml.safe_load_all(k8s_topics.render_topic_manifests(ALL_TOPICS[:1], 1))
    assert document["spec"]["replicas"] == 1
    assert document["spec"]["config"]["min.insync.replicas"] == "1"


# --- Cassandra -----------------------------------------------------------------------------


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", ())}


def _pod_names(sts: dict[str, Any]) -> list[str]:
    name, service = sts["metadata"]["name"], sts["spec"]["serviceName"]
    namespace = sts["metadata"]["namespace"]
    return [f"{name}-{i}.{service}.{namespace}.svc" for i in range(sts["spec"]["replicas"])]


def test_cassandra_statefulset_is_three_5_0_nodes_behind_a_headless_service() -> None:
    sts = _only("StatefulSet", "cassandra").body
    service = _only("Service", sts["spec"]["serviceName"]).body
    pdb = _only("PodDisruptionBudget", "cassandra").body
    pod = sts["spec"]["template"]
    labels = pod["metadata"]["labels"]
    (container,) = pod["spec"]["containers"]

    assert sts["spec"]["replicas"] == 3
    assert container["image"] == "cassandra:5.0"
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True  # seeds resolve before ready
    for selector in (
        service["spec"]["selector"],
        sts["spec"]["selector"]["matchLabels"],
        pdb["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1
    (term,) = pod["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= labels.items()
    claims = {claim["metadata"]["name"] for claim in sts["spec"]["volumeClaimTemplates"]}
    volumes = {volume["name"] for volume in pod["spec"].get("volumes", ())}
    assert {mount["name"] for mount in container["volumeMounts"]} <= claims | volumes
    assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
    assert "nodetool statusbinary" in " ".join(container["readinessProbe"]["exec"]["command"])

    env = _env(container)
    assert env["CASSANDRA_ENDPOINT_SNITCH"] == "GossipingPropertyFileSnitch"
    assert {"CASSANDRA_CLUSTER_NAME", "CASSANDRA_DC", "CASSANDRA_RACK"} <= env.keys()
    assert env["CASSANDRA_SEEDS"].split(",") == _pod_names(sts)[:2]


@pytest.mark.parametrize(
    ("nodetool_prints", "ready"),
    [("running", True), ("not running", False), ("", False)],
)
def test_cassandra_readiness_probe_reads_statusbinary_exactly(
    tmp_path: Path, nodetool_prints: str, ready: bool
) -> None:
    sts = _only("StatefulSet", "cassandra").body
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    fake = tmp_path / "nodetool"
    fake.write_text(f'#!/bin/sh\n[ "$1" = statusbinary ] && echo "{nodetool_prints}"\n')
    fake.chmod(0o755)
    probe = subprocess.run(
        container["readinessProbe"]["exec"]["command"],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        check=False,
        timeout=10,
    )
    assert (probe.returncode == 0) is ready


# --- the services' shared env ---------------------------------------------------------------

SETTINGS: tuple[type[BaseSettings], ...] = (
    KafkaSettings,
    CassandraSettings,
    LogSettings,
    MetricsSettings,
    HealthSettings,
)


def _platform_env() -> dict[str, str]:
    return dict(_only("ConfigMap", "mdgw-platform-env").body["data"])


def test_platform_env_names_only_variables_the_settings_read() -> None:
    known = {
        f"{cls.model_config['env_prefix']}{field}".upper()
        for cls in SETTINGS
        for field in cls.model_fields
    }
    assert set(_platform_env()) <= known, set(_platform_env()) - known


def test_platform_env_loads_and_points_at_the_kafka_and_cassandra_defined_here(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for cls in SETTINGS:
        for field in cls.model_fields:
            monkeypatch.delenv(f"{cls.model_config['env_prefix']}{field}".upper(), raising=False)
    for name, value in _platform_env().items():
        monkeypatch.setenv(name, value)
    kafka_settings, cassandra_settings = KafkaSettings(), CassandraSettings()
    log_settings = LogSettings()

    kafka = _only("Kafka").body
    (tls,) = kafka["spec"]["kafka"]["listeners"]
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap.{kafka['metadata']['namespace']}.svc"
    assert kafka_settings.bootstrap_servers == f"{bootstrap}:{tls['port']}"
    assert kafka_settings.bootstrap_servers == k8s_derived.TLS_BOOTSTRAP
    assert kafka_settings.extra_config["security.protocol"] == "ssl"
    assert kafka_settings.replication_factor == k8s_topics.REPLICATION_FACTOR
    assert (
        kafka_settings.replication_factor
        == kafka["spec"]["kafka"]["config"]["default.replication.factor"]
    )

    sts = _only("StatefulSet", "cassandra").body
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    dc = _env(container)["CASSANDRA_DC"]
    assert cassandra_settings.hosts() == _pod_names(sts)
    assert cassandra_settings.local_dc == dc
    assert cassandra_settings.replication_strategy == "NetworkTopologyStrategy"
    (factor,) = cassandra_settings.datacenter_factors().values()
    assert cassandra_settings.datacenter_factors() == {dc: factor}
    assert factor == 3 <= sts["spec"]["replicas"]
    assert log_settings.format == "json"
